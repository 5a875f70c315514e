"""VP diffusion schedule with linear β (DDPM), ε-prediction (DESIGN §5).

``x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε`` with ``β_t = linspace(β_min, β_max, T)`` and
``ᾱ_t = Π_{s≤t} (1 − β_s)``, ``t ∈ {0, …, T−1}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class VPSchedule:
    """Linear-β variance-preserving schedule."""

    n_steps: int = 1000
    beta_min: float = 1e-4
    beta_max: float = 0.02
    alpha_bar: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        betas = torch.linspace(self.beta_min, self.beta_max, self.n_steps, dtype=torch.float64)
        object.__setattr__(self, "alpha_bar", torch.cumprod(1.0 - betas, 0).float())

    def ab(self, t: torch.Tensor | int, like: torch.Tensor | None = None) -> torch.Tensor:
        """``ᾱ_t`` for integer timesteps ``t``, in ``like``'s dtype; on ``like``'s device, except
        that one timestep gives a 0-dim CPU tensor, which joins arithmetic on any device as a
        scalar (copying it to a GPU would synchronise the stream at every sampling step)."""
        t = torch.as_tensor(t, dtype=torch.long)
        value = self.alpha_bar[t.cpu()]
        if like is not None:
            value = value.to(device=like.device if value.dim() else None, dtype=like.dtype)
        return value

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t`` from ``x_0 (B, ...)``, noise ``ε (B, ...)`` and timesteps ``t (B,)``."""
        ab = self.ab(torch.as_tensor(t).reshape(-1), x0).reshape(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def tweedie(self, xt: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """Posterior mean ``x̂_0 = (x_t − √(1 − ᾱ_t) ε̂) / √ᾱ_t`` for a scalar timestep."""
        ab = self.ab(t, xt)
        return (xt - (1 - ab).sqrt() * eps) / ab.sqrt()

    def sampling_timesteps(self, nfe: int, power: float = 1.0) -> list[int]:
        """``nfe`` timesteps, strictly descending, from ``t_top = (T // nfe)·(nfe − 1)`` to 0.

        Step ``i`` of ``nfe − 1`` sits at ``t_top·(i / (nfe − 1))^power``, rounded: power 1
        spaces them evenly (50 → 980, 960, …, 0), larger powers pack them towards ``t = 0``
        (2 is DDIM's "quadratic" spacing), where the last denoising steps set the image's
        detail. Rounding ties are pushed up one timestep, which never passes ``t_top``.
        """
        if not 1 <= nfe <= self.n_steps:
            raise ValueError(f"NFE must be in [1, {self.n_steps}], got {nfe}")
        if power < 1:
            raise ValueError(f"the timestep power must be at least 1, got {power}")
        top = self.n_steps // nfe * (nfe - 1)
        steps: list[int] = []
        for i in range(nfe):
            t = round(top * (i / max(nfe - 1, 1)) ** power)
            steps.append(max(t, steps[-1] + 1) if steps else t)
        return steps[::-1]
