"""The DDS sampler's pieces: the initial state and the update between timesteps
(docs/architecture.md §5).

All noise comes from one CPU ``torch.Generator`` and is moved to the device, so a run is
reproducible for a fixed seed whatever the device.
"""

from __future__ import annotations

import torch

from napari_ddip.device import to_device
from napari_ddip.prior.model import DiffusionPrior
from napari_ddip.prior.schedule import Schedule


def gaussian(
    shape: tuple[int, ...], generator: torch.Generator, like: torch.Tensor
) -> torch.Tensor:
    """Standard normal noise of ``shape`` drawn on the CPU, on ``like``'s device and dtype."""
    return to_device(torch.randn(shape, generator=generator), like.device, like.dtype)


def slerp(a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between ``a`` and ``b`` (same shape ``S``) at ``weights (n,)``.

    Returns ``(n, *S)``; each result has about the norm of ``a`` and ``b`` (Gaussian draws of
    many elements are nearly orthogonal, so this keeps the noise standard normal).
    """
    cos = (a * b).sum() / (a.norm() * b.norm())
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    w = weights.reshape(-1, *([1] * a.dim())).to(a)
    return (torch.sin((1 - w) * omega) * a + torch.sin(w * omega) * b) / torch.sin(omega)


def initial_state(
    schedule: Schedule,
    t: int,
    pinv_rows: torch.Tensor,
    channels: int,
    generator: torch.Generator,
    use_pinv: bool,
    use_slerp: bool,
) -> torch.Tensor:
    """``x_T`` of shape ``pinv_rows.shape`` ``(Z·channels, Y, X)`` (Chung & Ye 2024, Eq. 16).

    ``use_pinv``: ``√ᾱ_T·pinv(y) + σ_T·n`` instead of ``σ_T·n``; ``use_slerp``: the noise of
    slice ``z`` is the slerp between two draws at ``z / (Z − 1)``, so that neighbouring slices
    start correlated.
    """
    rows, h, w = pinv_rows.shape
    n_slices = rows // channels
    if use_slerp and n_slices > 1:
        a = gaussian((channels, h, w), generator, pinv_rows)
        b = gaussian((channels, h, w), generator, pinv_rows)
        weights = torch.linspace(0.0, 1.0, n_slices)
        noise = slerp(a, b, weights).reshape(rows, h, w)
    else:
        noise = gaussian((rows, h, w), generator, pinv_rows)
    noise = schedule.sigma(t, pinv_rows) * noise
    if not use_pinv:
        return noise
    return schedule.ab(t, pinv_rows).sqrt() * pinv_rows + noise


def dds_update(
    schedule: Schedule,
    x0: torch.Tensor,
    eps: torch.Tensor,
    t_next: int,
    eta: float,
    generator: torch.Generator,
    renoise: float = 1.0,
) -> torch.Tensor:
    """``x_next = √ᾱ·x̃₀ + λ·σ·(η·z + √(1−η²)·ε̂)`` at ``t_next``, ``λ = renoise``.

    η is the share of fresh noise whatever the step's size, not DDIM's η: for η > 0 the chain
    draws less variance than its prior however fine the steps (about 73 % at η 0.85 for a
    Gaussian prior; η 0 is DDIM and converges), which pulls a reconstruction toward the
    posterior mean — the better PSNR estimate (BENCHMARKS, "Sampler settings and the
    ellipse priors").
    ``renoise`` λ < 1 puts back less noise than the level ``t_next`` stands for; at 0 the next
    network call denoises ``x̃₀`` itself at that level (annealed plug-and-play, DPIR).
    """
    z = gaussian(tuple(x0.shape), generator, x0)
    noise = eta * z + (1 - eta**2) ** 0.5 * eps
    return schedule.ab(t_next, x0).sqrt() * x0 + renoise * schedule.sigma(t_next, x0) * noise


@torch.no_grad()
def sample_unconditional(
    prior: DiffusionPrior,
    n: int,
    shape: tuple[int, int],
    nfe: int = 50,
    eta: float = 0.85,
    seed: int = 0,
    device: torch.device | str = "cpu",
    timestep_power: float = 1.0,
) -> torch.Tensor:
    """``n`` samples ``(n, H, W)`` of the prior alone (DDS updates, no measurement), clipped to
    the training range ``[0, 1]`` — what the prior believes images look like (most
    faithfully at ``eta=0`` with fine steps; larger η draws them smoother, see
    :func:`dds_update`).
    ``timestep_power``: spacing of the ``nfe`` steps (``Schedule.sampling_timesteps``)."""
    generator = torch.Generator().manual_seed(seed)
    schedule = prior.schedule
    timesteps = schedule.sampling_timesteps(nfe, timestep_power)
    x = schedule.sigma(timesteps[0]) * torch.randn((n, *shape), generator=generator).to(device)
    x0 = x
    for j, t in enumerate(timesteps):
        x0 = schedule.tweedie(x, prior.eps(x, t, generator), t).clamp(0, 1)
        eps = schedule.implied_eps(x, x0, t)  # the noise the clipped x̂₀ implies
        if j + 1 < len(timesteps):
            x = dds_update(schedule, x0, eps, timesteps[j + 1], eta, generator)
    return x0
