"""Variance-preserving diffusion schedules, ε-prediction (docs/architecture.md §4).

The network's images are ``s·x`` for images ``x`` in the engine's units (about [0, 1]) and a
data scale ``s`` (``PriorConfig.data_scale``), noised as ``s·x_t = √ᾱ_t · s·x_0 + √(1 − ᾱ_t) · ε``,
``t ∈ {0, …, T−1}``. Everything here is in the engine's units: ``x_t = √ᾱ_t · x_0 + σ_t · ε``
with ``σ_t = √(1 − ᾱ_t) / s``; ``x_t / √ᾱ_t`` is the clean image plus noise of standard
deviation ``s_t = σ_t / √ᾱ_t``, the step's *noise level*.

Two ways to set ``ᾱ_t``:

- :class:`VPSchedule`, the trained diffusion priors': linear ``β_t = linspace(β_min, β_max, T)``
  and ``ᾱ_t = Π_{s≤t} (1 − β_s)`` (DDPM). With ``s = 1`` (the reference schedule) images of
  standard deviation ≈ 0.16 are drowned below SNR 0.05 by t = 200; a larger ``s`` spreads the
  schedule's noise levels over the range where the image is still visible, as for DDPM's
  [−1, 1] images. Its lowest level is ``s_0 = √β_min`` (0.01).
- :class:`LevelSchedule`, a denoiser prior's (which knows no trained timesteps): noise levels
  geometric from ``level_min`` at t = 0 to ``level_max`` at t = T − 1, ``ᾱ_t = 1/(1 + s_t²)``
  (the log-spaced levels of DPIR, Zhang et al. 2022, and of k-diffusion's schedules). Evenly
  spaced sampling steps then spend as many steps on each decade of noise, and the last ones
  reach below 0.01, where an undersampled measurement without noise (MRI) still gains detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


def _lookup(table: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor | None) -> torch.Tensor:
    """``table[t]`` for integer timesteps ``t``, as :meth:`Schedule.ab` describes."""
    t = torch.as_tensor(t, dtype=torch.long)
    value = table[t.cpu()]
    if like is not None:
        value = value.to(device=like.device if value.dim() else None, dtype=like.dtype)
    return value


@dataclass(frozen=True)
class Schedule:
    """A variance-preserving schedule of ``n_steps`` timesteps: everything that follows from
    ``ᾱ_t``; a subclass says how ``ᾱ_t`` is set (``_alpha_bar``)."""

    n_steps: int = 1000
    data_scale: float = 1.0
    alpha_bar: torch.Tensor = field(init=False, repr=False, compare=False)
    #: ``√(1 − ᾱ_t)``, from ``ᾱ_t`` in float64: at a level of 0.001, ``1 − ᾱ`` = 1e-6 is
    #: kept to only a few per cent by a float32 ``ᾱ``.
    noise_std: torch.Tensor = field(init=False, repr=False, compare=False)
    #: ``s_t = σ_t / √ᾱ_t``, each timestep's noise level in image units, increasing.
    levels: torch.Tensor = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        alpha_bar = self._alpha_bar()
        object.__setattr__(self, "alpha_bar", alpha_bar.float())
        object.__setattr__(self, "noise_std", (1 - alpha_bar).sqrt().float())
        levels = self.noise_std / self.data_scale / self.alpha_bar.sqrt()
        object.__setattr__(self, "levels", levels)

    def _alpha_bar(self) -> torch.Tensor:
        """``ᾱ_t`` ``(n_steps,)`` in float64, decreasing."""
        raise NotImplementedError

    def ab(self, t: torch.Tensor | int, like: torch.Tensor | None = None) -> torch.Tensor:
        """``ᾱ_t`` for integer timesteps ``t``, in ``like``'s dtype; on ``like``'s device, except
        that one timestep gives a 0-dim CPU tensor, which joins arithmetic on any device as a
        scalar (copying it to a GPU would synchronise the stream at every sampling step)."""
        return _lookup(self.alpha_bar, t, like)

    def sigma(self, t: torch.Tensor | int, like: torch.Tensor | None = None) -> torch.Tensor:
        """``σ_t = √(1 − ᾱ_t) / s``: the noise's standard deviation in ``x_t`` (as ``ab``)."""
        return _lookup(self.noise_std, t, like) / self.data_scale

    def add_noise(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x_t`` from ``x_0 (B, ...)``, noise ``ε (B, ...)`` and timesteps ``t (B,)``."""
        t = torch.as_tensor(t).reshape(-1)
        shape = (-1, *([1] * (x0.dim() - 1)))
        return self.ab(t, x0).reshape(shape).sqrt() * x0 + self.sigma(t, x0).reshape(shape) * eps

    def tweedie(self, xt: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """Posterior mean ``x̂_0 = (x_t − σ_t ε̂) / √ᾱ_t`` for a scalar timestep."""
        return (xt - self.sigma(t, xt) * eps) / self.ab(t, xt).sqrt()

    def implied_eps(self, xt: torch.Tensor, x0: torch.Tensor, t: int) -> torch.Tensor:
        """``ε = (x_t − √ᾱ_t x_0) / σ_t``: the noise that takes ``x0`` to ``xt`` at ``t``."""
        return (xt - self.ab(t, xt).sqrt() * x0) / self.sigma(t, xt)

    def level(self, t: int) -> float:
        """``s_t = σ_t / √ᾱ_t``: the noise level of ``x_t / √ᾱ_t`` in image units."""
        return float(self.levels[t])

    def timestep_at(self, level: float) -> int:
        """The last timestep whose noise level ``s_t`` is at most ``level`` (0 if none is)."""
        return max(int((self.levels <= level).sum()) - 1, 0)

    def nearest_timestep(self, level: float) -> int:
        """The timestep whose noise level ``s_t`` is nearest ``level``."""
        return int(torch.argmin((self.levels - float(level)).abs()))

    def sampling_timesteps(
        self, nfe: int, power: float = 1.0, start_level: float | None = None
    ) -> list[int]:
        """``nfe`` timesteps, strictly descending, from ``t_top = (T // nfe)·(nfe − 1)`` to 0,
        or from the last timestep at ``start_level`` if that is lower.

        Step ``i`` of ``nfe − 1`` sits at ``t_top·(i / (nfe − 1))^power``, rounded: power 1
        spaces them evenly (50 → 980, 960, …, 0), larger powers pack them towards ``t = 0``
        (2 is DDIM's "quadratic" spacing), where the last denoising steps set the image's
        detail. Rounding ties are pushed up one timestep, which never passes ``t_top``.
        ``start_level``: a sampler that starts from a noised estimate at that level
        (CCDF, Chung et al. 2022) spends all its steps below it.
        """
        if not 1 <= nfe <= self.n_steps:
            raise ValueError(f"NFE must be in [1, {self.n_steps}], got {nfe}")
        if power < 1:
            raise ValueError(f"the timestep power must be at least 1, got {power}")
        top = self.n_steps // nfe * (nfe - 1)
        if start_level is not None:
            top = min(top, self.timestep_at(start_level))
            if top < nfe - 1:
                raise ValueError(
                    f"{nfe} steps do not fit below the noise level {start_level} "
                    f"({top + 1} timesteps of this schedule do)"
                )
        steps: list[int] = []
        for i in range(nfe):
            t = round(top * (i / max(nfe - 1, 1)) ** power)
            steps.append(max(t, steps[-1] + 1) if steps else t)
        return steps[::-1]


@dataclass(frozen=True)
class VPSchedule(Schedule):
    """Linear-β schedule of the trained diffusion priors (DDPM; module docstring)."""

    beta_min: float = 1e-4
    beta_max: float = 0.02

    def _alpha_bar(self) -> torch.Tensor:
        betas = torch.linspace(self.beta_min, self.beta_max, self.n_steps, dtype=torch.float64)
        return torch.cumprod(1.0 - betas, 0)


@dataclass(frozen=True)
class LevelSchedule(Schedule):
    """A schedule given by its noise levels ``s_t = σ_t/√ᾱ_t``: geometric from ``level_min``
    (t = 0) to ``level_max`` (t = T − 1), ``ᾱ_t = 1/(1 + s_t²)`` (module docstring), in the
    engine's image units."""

    level_min: float = 1e-3
    level_max: float = 0.5

    def _alpha_bar(self) -> torch.Tensor:
        if not 0 < self.level_min < self.level_max:
            raise ValueError(
                f"need 0 < level_min < level_max, got {self.level_min}, {self.level_max}"
            )
        steps = torch.arange(self.n_steps, dtype=torch.float64) / max(self.n_steps - 1, 1)
        levels = self.level_min * (self.level_max / self.level_min) ** steps
        return 1.0 / (1.0 + levels**2)
