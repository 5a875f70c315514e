"""The diffusion prior: a UNet, its noise schedule and how it sees an image (patches or whole).

``DiffusionPrior.eps(x, t)`` is the single entry point the samplers use: it predicts the noise
of a batch of slices ``(B, H, W)`` at one timestep, tiling into random-shift patches when the
prior is a patch prior. The network itself predicts either ε or ``v = √ᾱ·ε − √(1−ᾱ)·x₀``
(``PriorConfig.prediction``); with v it predicts the image, not the noise, at high noise, where
recovering x̂₀ from an ε-prediction needs ε̂ ≈ x_t to within the data's tiny share of x_t.
The network sees the images multiplied by ``PriorConfig.data_scale`` (``prior.schedule``);
callers give and get images in the engine's units.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from napari_ddip.prior.patches import tiled_apply, with_coordinates
from napari_ddip.prior.schedule import VPSchedule
from napari_ddip.prior.unet import UNet, UNetConfig

PREDICTIONS = ("eps", "v")
#: Pixels per network call when the CPU runs the network without gradients: 16 patches of 64²
#: per call instead of all 200 of 8 slices at 256² make DDS 1.4–1.6× faster and its sampling
#: pass need tens of MB instead of 0.7–1.4 GB, with the same result up to float32 rounding
#: (activations that fit the caches; BENCHMARKS.md "Network calls in cache-sized chunks").
CPU_PIXELS_PER_CALL = 2**16


def call_batch(inputs: torch.Tensor) -> int:
    """How many of the network inputs ``(N, C, H, W)`` go through the network per call: about
    ``CPU_PIXELS_PER_CALL`` pixels' worth (at least one) on the CPU without gradients; all of
    them on an accelerator or with gradients (there chunks measured slower: D3IP at 256²)."""
    if inputs.device.type != "cpu" or torch.is_grad_enabled():
        return max(1, inputs.shape[0])
    return max(1, CPU_PIXELS_PER_CALL // (inputs.shape[-2] * inputs.shape[-1]))


@dataclass(frozen=True)
class PriorConfig:
    """Everything needed to rebuild a prior from its weights."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    patch_size: int | None = 64  # None: whole-image prior
    n_steps: int = 1000
    beta_min: float = 1e-4
    beta_max: float = 0.02
    image_size: int = 256  # training image side
    prediction: str = "eps"  # what the network outputs: "eps" or "v"
    data_scale: float = 1.0  # the network's images are data_scale × the engine's

    def __post_init__(self) -> None:
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if not self.data_scale > 0:
            raise ValueError(f"data_scale must be positive, got {self.data_scale}")

    def to_dict(self) -> dict:
        return {
            "unet": self.unet.to_dict(),
            "patch_size": self.patch_size,
            "n_steps": self.n_steps,
            "beta_min": self.beta_min,
            "beta_max": self.beta_max,
            "image_size": self.image_size,
            "prediction": self.prediction,
            "data_scale": self.data_scale,
        }

    @classmethod
    def from_dict(cls, d: dict) -> PriorConfig:
        d = dict(d)
        d["unet"] = UNetConfig.from_dict(d.get("unet", {}))
        return cls(**d)


class DiffusionPrior(nn.Module):
    """A trained ε- or v-prediction network plus its schedule and tiling mode."""

    def __init__(self, config: PriorConfig = PriorConfig()) -> None:
        super().__init__()
        self.config = config
        self.net = UNet(config.unet)
        self.schedule = VPSchedule(
            n_steps=config.n_steps,
            data_scale=config.data_scale,
            beta_min=config.beta_min,
            beta_max=config.beta_max,
        )

    @property
    def patch_size(self) -> int | None:
        return self.config.patch_size

    def eps(
        self,
        x: torch.Tensor,
        t: int,
        generator: torch.Generator | None = None,
        patch_batch: int | None = None,
    ) -> torch.Tensor:
        """Predicted noise for slices ``x (B, H, W)`` (the engine's units) at integer timestep
        ``t``.

        Patch priors draw the grid offset and the noise of the padding (what training saw
        outside the image at this noise level) from ``generator`` (CPU); ``patch_batch``
        bounds how many patches (whole-image prior: images) go through the network at once;
        None: all at once on a GPU, about ``CPU_PIXELS_PER_CALL`` pixels per call on the CPU.
        The chunking changes the result by float32 rounding at most (a last chunk of another
        size may run another kernel).
        """

        def run(inputs: torch.Tensor) -> torch.Tensor:
            outs = []
            for chunk in inputs.split(patch_batch or call_batch(inputs)):
                tt = torch.full((chunk.shape[0],), t, device=chunk.device, dtype=torch.long)
                outs.append(self.net(chunk, tt))
            return torch.cat(outs)

        x = x * self.config.data_scale
        if self.patch_size is None:
            out = run(with_coordinates(x))[:, 0]
        else:
            p = self.patch_size
            offset = torch.randint(0, p, (2,), generator=generator).tolist()
            pad_std = float((1 - self.schedule.ab(t)).sqrt())
            out = tiled_apply(run, x, p, (offset[0], offset[1]), pad_std, generator)
        return self.eps_from_output(out, x, t)

    def eps_from_output(self, out: torch.Tensor, x: torch.Tensor, t: int) -> torch.Tensor:
        """ε̂ from the network's output ``out`` for its noisy input ``x`` (the network's units)
        at timestep ``t``: ``out`` itself, or ``√ᾱ·v̂ + √(1−ᾱ)·x_t`` for a v-prediction
        network."""
        if self.config.prediction == "v":
            ab = self.schedule.ab(t, x)
            return ab.sqrt() * out + (1 - ab).sqrt() * x
        return out

    def training_output(self, noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What training compares with :meth:`target`: the network's output ``(B, 1, P, P)``
        for noisy patches with their coordinate channels ``noisy (B, 3, P, P)`` (the network's
        units) at timesteps ``t (B,)``."""
        return self.net(noisy, t)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """The training target of the network for clean ``x0`` (the network's units), ``noise``
        and ``ᾱ_t`` (any broadcastable shapes): ε, or ``v = √ᾱ·ε − √(1−ᾱ)·x₀``."""
        if self.config.prediction == "v":
            return ab.sqrt() * noise - (1 - ab).sqrt() * x0
        return noise

    def denoise(
        self, y: torch.Tensor, s: float, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``D(y, s)``: slices ``y (B, H, W)`` (the engine's units) with Gaussian noise of
        standard deviation ``s`` (image units), denoised by Tweedie at the timestep ``t``
        whose level is nearest ``s`` (``schedule.nearest_timestep``): ``√ᾱ_t·y`` is ``x_t``
        (``√ᾱ_t·x₀ + σ_t·ε`` when ``s = s_t``), and ``x̂₀ = (x_t − σ_t·ε̂)/√ᾱ_t``. The
        interface of :meth:`~napari_ddip.prior.denoiser.DenoiserPrior.denoise`, for one level
        per call; a patch prior draws its grid offset and padding from ``generator``."""
        t = self.schedule.nearest_timestep(s)
        xt = self.schedule.ab(t, y).sqrt() * y
        return self.schedule.tweedie(xt, self.eps(xt, t, generator), t)

    def tweedie(
        self, x: torch.Tensor, t: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x̂_0, ε̂)``: the one-step posterior-mean estimate and the predicted noise."""
        eps = self.eps(x, t, generator)
        return self.schedule.tweedie(x, eps, t), eps
