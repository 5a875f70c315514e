"""The denoising UNet: image + two coordinate channels in, noise ε̂ out (docs/architecture.md §4).

Convolutional, so it runs on patches (patch prior) and on whole images of any size (sizes that
are not a multiple of ``2**(levels-1)`` are reflect-padded inside :meth:`UNet.forward` and
cropped back). Every conv / linear layer that LoRA adapts lives inside a :class:`ResBlock` or
:class:`AttentionBlock`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Architecture hyper-parameters (stored next to the weights)."""

    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4, 4)
    blocks_per_level: int = 1
    attention_levels: tuple[int, ...] = (3,)
    in_channels: int = 3  # image + (y, x) coordinates
    out_channels: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UNetConfig:
        d = dict(d)
        for key in ("channel_mults", "attention_levels"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of timesteps ``t (B,)`` (0 … 999)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels // 4), channels)


class ResBlock(nn.Module):
    """GroupNorm–SiLU–conv twice, timestep added in between, with a residual connection."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1 = _norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over pixels with a residual connection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Strided 3×3 convolution halving the resolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2 upsampling followed by a 3×3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Stage(nn.Sequential):
    """A sequence of blocks that all receive the timestep embedding."""

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        for block in self:
            x = block(x, emb)
        return x


class UNet(nn.Module):
    """ε-prediction UNet (the ADM layout, small).

    ``forward(x (B, in_channels, H, W), t (B,)) -> (B, out_channels, H, W)``; every encoder
    stage output is a skip connection consumed by one decoder stage.
    """

    def __init__(self, config: UNetConfig = UNetConfig()) -> None:
        super().__init__()
        self.config = config
        c0 = config.base_channels
        emb_dim = 4 * c0
        self.time_mlp = nn.Sequential(
            nn.Linear(c0, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.stem = nn.Conv2d(config.in_channels, c0, 3, padding=1)
        levels = len(config.channel_mults)

        def res_stage(c_in: int, c_out: int, level: int) -> Stage:
            blocks: list[nn.Module] = [ResBlock(c_in, c_out, emb_dim)]
            if level in config.attention_levels:
                blocks.append(AttentionBlock(c_out))
            return Stage(*blocks)

        self.encoder = nn.ModuleList()
        skips, c = [c0], c0
        for level, mult in enumerate(config.channel_mults):
            for _ in range(config.blocks_per_level):
                self.encoder.append(res_stage(c, c0 * mult, level))
                c = c0 * mult
                skips.append(c)
            if level < levels - 1:
                self.encoder.append(Stage(Downsample(c)))
                skips.append(c)
        self.middle = Stage(ResBlock(c, c, emb_dim), AttentionBlock(c), ResBlock(c, c, emb_dim))
        self.decoder = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mults))):
            for i in range(config.blocks_per_level + 1):
                stage = res_stage(c + skips.pop(), c0 * mult, level)
                c = c0 * mult
                if level > 0 and i == config.blocks_per_level:
                    stage.append(Upsample(c))
                self.decoder.append(stage)
        self.out_norm = _norm(c)
        self.out = nn.Conv2d(c, config.out_channels, 3, padding=1)

    @property
    def multiple(self) -> int:
        """Spatial sizes must be multiples of this (handled by padding in :meth:`forward`)."""
        return 2 ** (len(self.config.channel_mults) - 1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        m = self.multiple
        pad_h, pad_w = (-height) % m, (-width) % m
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        if x.device.type == "cpu":
            # oneDNN's convolutions with few channels run 20 % faster on NHWC activations
            # (forward; 10 % forward + backward), measured on AVX2 (BENCHMARKS, "Channels-last
            # activations").
            x = x.contiguous(memory_format=torch.channels_last)
        emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))
        h = self.stem(x)
        skips = [h]
        for stage in self.encoder:
            h = stage(h, emb)
            skips.append(h)
        h = self.middle(h, emb)
        for stage in self.decoder:
            h = stage(torch.cat([h, skips.pop()], dim=1), emb)
        h = self.out(F.silu(self.out_norm(h)))
        return h[..., :height, :width].contiguous()
