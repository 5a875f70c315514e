"""A Gaussian denoiser of natural images used as a diffusion prior through Tweedie's formula.

The VP chain's ``x_t = √ᾱ_t x₀ + σ_t ε`` is, divided by ``√ᾱ_t``, the clean image plus Gaussian
noise of standard deviation ``s_t = σ_t / √ᾱ_t``. A denoiser ``D(·, s)`` trained for that noise
estimates ``E[x₀ | x_t]``, so it gives the sampler what an ε-network gives (Kadkhodaie &
Simoncelli 2021; Zhu et al. 2023, DiffPIR):

    x̂₀ = D(x_t / √ᾱ_t, s_t),      ε̂ = (x_t − √ᾱ_t x̂₀) / σ_t.

Two adjustments fit a colour denoiser to grey slices and to the high-noise end of the chain:

- a grey slice goes in as three equal channels, with the noise level given as ``√3·s``: the
  noise is the same draw in each channel, and the network, trained on independent noise per
  channel, averages it down by √3 (one-step denoising of MNI152 slices at ``s = 0.1``: 34.9 dB
  against 28.0 dB with the level ``s``);
- above the training range ``σ_max``, ``c·y`` with ``c = σ_max / level`` is denoised at
  ``σ_max`` and divided by ``c``: the same signal-to-noise ratio, inside the range the network
  knows; the same scaling keeps a slice brighter than 1 inside the [0, 1] range it was trained
  on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from napari_ddip.physics.noise import estimate_slice_noise_std
from napari_ddip.prior.ffdnet import FFDNet, FFDNetConfig
from napari_ddip.prior.model import call_batch
from napari_ddip.prior.schedule import LevelSchedule

#: The ``network`` value in a prior's JSON config that marks a denoiser prior.
DENOISER_NETWORKS = ("ffdnet",)


@dataclass(frozen=True)
class DenoiserPriorConfig:
    """A denoiser prior: its network, the noise range it was trained for and the schedule the
    sampler walks.

    ``sigma_max``: the largest training noise level in image units ([0, 1] images).
    ``level_min``, ``level_max``: the noise levels of the schedule's first and last timestep
    (:class:`~napari_ddip.prior.schedule.LevelSchedule`, geometric in between). A denoiser
    takes any level, so its schedule reaches below the diffusion priors' lowest (0.01), where
    an undersampled measurement without noise still gains detail (MNI152 ×8 MRI, DDS at NFE
    40: 33.3 dB with their linear β, 35.5 dB with levels from 0.001 to 0.5; BENCHMARKS, "How
    the defaults were chosen").
    ``estimated_level_factor``: ``κ``; each slice is denoised at the larger of the schedule's
    level ``s_t`` and ``κ·σ̂``, ``σ̂`` the noise level estimated from the slice itself
    (:func:`~napari_ddip.physics.noise.estimate_slice_noise_std`); 0: ``s_t`` alone. Between
    steps the sampler's image carries, besides the schedule's noise, the error of the last
    data consistency (streaks and measurement noise it let through), which the schedule does
    not know of.
    """

    ffdnet: FFDNetConfig = field(default_factory=FFDNetConfig)
    sigma_max: float = 75 / 255
    n_steps: int = 1000
    level_min: float = 1e-3
    level_max: float = 0.5
    estimated_level_factor: float = 1.0
    network: str = "ffdnet"

    def to_dict(self) -> dict:
        return {
            "network": self.network,
            "ffdnet": self.ffdnet.to_dict(),
            "sigma_max": self.sigma_max,
            "n_steps": self.n_steps,
            "level_min": self.level_min,
            "level_max": self.level_max,
            "estimated_level_factor": self.estimated_level_factor,
        }

    @classmethod
    def from_dict(cls, d: dict) -> DenoiserPriorConfig:
        d = dict(d)
        if d.get("network", "ffdnet") not in DENOISER_NETWORKS:
            raise ValueError(f"unknown denoiser network {d.get('network')!r}")
        d["ffdnet"] = FFDNetConfig(**d.get("ffdnet", {}))
        return cls(**d)


class DenoiserPrior(nn.Module):
    """A denoiser behind the interface of :class:`~napari_ddip.prior.model.DiffusionPrior`:
    ``eps(x, t)``, ``schedule``, ``net`` (what LoRA adapts) and ``config``."""

    patch_size = None

    def __init__(self, config: DenoiserPriorConfig = DenoiserPriorConfig()) -> None:
        super().__init__()
        self.config = config
        self.net = FFDNet(config.ffdnet)
        self.schedule = LevelSchedule(
            n_steps=config.n_steps, level_min=config.level_min, level_max=config.level_max
        )

    def denoise(
        self,
        y: torch.Tensor,
        s: float | torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``D(y, s)`` for grey slices ``y (B, H, W)`` with Gaussian noise of standard
        deviation ``s`` (image units; one number, or one per slice ``(B,)``; ``generator`` is
        unused: the denoiser draws nothing), with the
        adjustments of the module docstring: each slice is denoised as ``c·y`` at noise
        ``c·√3·s`` and divided by ``c``, with the largest ``c ≤ 1`` that keeps the noise level
        within the training range and the slice within [−1, 1] (a slice brighter than 1, as
        where the engine's 99th-percentile scale leaves bright spots above 1, is otherwise
        clipped by the network: 34.1 against 44.4 dB at ``s = 0.02`` on a b0 scan scaled to
        a peak of 2)."""
        channels = self.config.ffdnet.channels
        level = torch.as_tensor(s, dtype=torch.float32, device=y.device).expand(len(y))
        level = level * math.sqrt(channels)
        peak = y.detach().abs().amax(dim=(-2, -1)).float().clamp_min(1.0)
        gain = torch.minimum(1.0 / peak, self.config.sigma_max / level.clamp_min(1e-12))
        images = (gain[:, None, None] * y).unsqueeze(1).expand(-1, channels, -1, -1)
        sigmas = gain * level
        n = call_batch(images)
        outs = [
            self.net(chunk, sigma).mean(1)
            for chunk, sigma in zip(images.split(n), sigmas.split(n), strict=True)
        ]
        return torch.cat(outs) / gain[:, None, None]

    def training_output(self, noisy: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """ε̂ ``(B, 1, P, P)`` for noisy patches ``noisy (B, C, P, P)`` (channel 0 the image
        ``x_t``, the coordinate channels unused) at timesteps ``t (B,)``, by Tweedie from the
        denoiser at each patch's exact level ``s_t`` (fine-tuning knows the noise it added: no
        estimated level). Against the drawn noise (:meth:`target`), its squared error is the
        denoising error weighted by ``1/s_t²``: ``‖ε̂ − ε‖² = ‖x̂₀ − x₀‖² / s_t²``."""
        xt = noisy[:, 0]
        ab = self.schedule.ab(t, xt)[:, None, None]
        sigma = self.schedule.sigma(t, xt)[:, None, None]
        x0 = self.denoise(xt / ab.sqrt(), (sigma / ab.sqrt()).flatten())  # at s_t = σ_t/√ᾱ_t
        return ((xt - ab.sqrt() * x0) / sigma).unsqueeze(1)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """The training target of :meth:`training_output`: the noise ``ε`` itself (``x0`` and
        ``ab`` are unused; the signature is the diffusion prior's)."""
        return noise

    def eps(
        self, x: torch.Tensor, t: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``ε̂`` for slices ``x (B, H, W)`` (engine units) at timestep ``t`` by Tweedie from the
        denoiser's ``x̂₀`` (``generator`` is unused: the denoiser draws nothing). Each slice is
        denoised at the larger of the schedule's level and ``estimated_level_factor`` times
        the level estimated from the slice itself (:class:`DenoiserPriorConfig`)."""
        ab = float(self.schedule.ab(t))
        sigma = float(self.schedule.sigma(t))
        y = x / math.sqrt(ab)
        level = torch.full((len(x),), sigma / math.sqrt(ab), device=x.device)
        if self.config.estimated_level_factor > 0:
            estimate = self.config.estimated_level_factor * estimate_slice_noise_std(y)
            level = torch.maximum(level, estimate)
        return (x - math.sqrt(ab) * self.denoise(y, level)) / sigma
