"""FFDNet, a non-blind Gaussian denoiser of natural images (Zhang, Zuo & Zhang 2018).

The network sees the image at half resolution as ``4·C`` channels (a 2×2 pixel unshuffle), with
the noise level as one more constant channel, runs ``depth`` 3×3 convolutions of ``width``
channels (ReLU between them) and shuffles the ``4·C`` output channels back to full resolution:
the output is the denoised image itself, not the noise. Trained on images in [0, 1] with
Gaussian noise of standard deviation ``σ ∈ [0, 75/255]``.

K. Zhang, W. Zuo, L. Zhang, "FFDNet: Toward a fast and flexible solution for CNN-based image
denoising", IEEE Trans. Image Process. 27(9):4608–4622, 2018.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class FFDNetConfig:
    """Shape of an FFDNet: image channels ``C``, convolution width and number of convolutions."""

    channels: int = 3
    width: int = 96
    depth: int = 12

    def to_dict(self) -> dict:
        return asdict(self)


class FFDNet(nn.Module):
    """``D(x, σ)``: images ``x (B, C, H, W)`` in [0, 1] and noise levels ``σ (B,)`` → ``(B, C, H,
    W)``. Odd sides are padded by replicating the last row/column and cropped back."""

    def __init__(self, config: FFDNetConfig = FFDNetConfig()) -> None:
        super().__init__()
        self.config = config
        c, w = config.channels, config.width
        layers: list[nn.Module] = [nn.Conv2d(4 * c + 1, w, 3, padding=1), nn.ReLU()]
        for _ in range(config.depth - 2):
            layers += [nn.Conv2d(w, w, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(w, 4 * c, 3, padding=1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate")
        down = F.pixel_unshuffle(x, 2)
        level = sigma.to(down).reshape(-1, 1, 1, 1).expand(down.shape[0], 1, *down.shape[-2:])
        out = F.pixel_shuffle(self.model(torch.cat([down, level], 1)), 2)
        return out[..., :h, :w]

    def lora_layers(self) -> dict[str, nn.Conv2d]:
        """The layers LoRA adapts in a plain CNN: every convolution but the first (which
        reads the noise-level channel) and the last (which writes the image), by name."""
        convs = [(n, m) for n, m in self.model.named_modules() if isinstance(m, nn.Conv2d)]
        return {f"model.{n}": m for n, m in convs[1:-1]}
