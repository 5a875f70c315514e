"""A measurement as the prior sees it: scaled to the prior's intensities, complex images as pairs
of real slices, and the data-consistency step ``x̂₀ ↦ x̃₀`` of each method.

The prior was trained on images in ``[0, 1]``, so a measurement is divided by ``scale``, the 99th
percentile of ``|pinv(y)|`` (about the brightest tissue); the result is multiplied back. A complex
image ``(Z, Y, X)`` is handed to the prior as ``(2Z, Y, X)``: real and imaginary part of slice
``z`` are rows ``2z`` and ``2z + 1``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from napari_ddip.physics.noise import estimate_noise_std
from napari_ddip.physics.operator import LinearOperator, MaskedOperator
from napari_ddip.recon.config import ReconConfig
from napari_ddip.solvers.cg import conjugate_gradient
from napari_ddip.solvers.classical import admm_tv, default_tv_weight, image_scale, tv_noise

#: The axes of the total variation of each ADMM data consistency: DiffusionMBIR's TV along z
#: (across slices, what a 2D prior lacks) and 3D TV.
TV_AXES = {"mbir": (0,), "tv": (0, 1, 2)}


class Problem:
    """``y = A x`` on ``device`` in the prior's units.

    Args:
        op: forward operator (on ``device``).
        y: measurement ``(Z, ...)`` (on ``device``).
        cfg: resolved settings (``gamma``, CG and ADMM iterations).
    """

    def __init__(self, op: LinearOperator, y: torch.Tensor, cfg: ReconConfig) -> None:
        self.op, self.cfg = op, cfg
        self.n_slices = y.shape[0]
        self.channels = 2 if op.is_complex else 1
        with torch.no_grad():
            pinv = op.pinv(y)
            self.scale = image_scale(pinv, 0.99) or image_scale(pinv, 1.0)
            if not self.scale > 0:
                raise ValueError("the measurement is all zero: nothing to reconstruct")
            self.y = y / self.scale
            self.pinv = pinv / self.scale
            # ‖A‖² (the same for every slice up to the mask): scales γ and the mbir data term.
            self.norm = op.subset(slice(0, 1)).norm(self.pinv[:1])
            tv = tv_noise(op, y, cfg.noise_std)
            #: The measurement noise's standard deviation in the prior's units.
            self.noise = (estimate_noise_std(y) if tv is None else tv) / self.scale
            #: The measurement noise where it is known, given or estimated from a sinogram
            #: (``solvers.classical.tv_noise``; None for k-space without ``noise_std``): what
            #: the TV weight and the adaptation's discrepancy stop follow.
            self.known_noise = None if tv is None else self.noise
        #: The adaptation's split of the measurement entries (``holdout``): the operator its
        #: data consistency fits and the one its loss scores; the whole measurement for both
        #: without a hold-out.
        self.fitted, self.scored = self.op, self.op
        if cfg.holdout > 0:
            draw = torch.Generator().manual_seed(cfg.seed)
            shape = op.measurement_shape or tuple(y.shape[1:])
            held = (torch.rand(shape, generator=draw) < cfg.holdout).to(y.device)
            self.fitted, self.scored = MaskedOperator(op, ~held), MaskedOperator(op, held)

    # -- representation -------------------------------------------------------------------
    def rows(self, slices: slice | Sequence[int] | torch.Tensor) -> slice | torch.Tensor:
        """Prior rows of image slices ``slices``: a slice for a contiguous ``slice(a, b)``,
        else a ``(len·channels,)`` long tensor."""
        if isinstance(slices, slice):
            start, stop, _ = slices.indices(self.n_slices)
            return slice(start * self.channels, stop * self.channels)
        idx = torch.as_tensor(slices, dtype=torch.long).reshape(-1, 1)
        return (idx * self.channels + torch.arange(self.channels)).reshape(-1)

    def to_prior(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(Z, Y, X)`` → prior rows ``(Z·channels, Y, X)`` (real)."""
        if not x.is_complex():
            return x
        return torch.view_as_real(x).permute(0, 3, 1, 2).reshape(-1, *x.shape[1:])

    @functools.cached_property
    def pinv_noise(self) -> float:
        """The error of the pseudo-inverse as white noise, in the prior's units: the noise
        estimate of its finest scale (``estimate_noise_std`` of its real part), which on
        undersampled MRI measures the incoherent aliasing (×8 Poisson disc: about a ninth of
        the zero-filled image's RMS error, 0.0069 on the MNI tune slab, 0.0147 on the b0
        scan, 0.0037 on the MNI slab at 256²). Computed when first asked for."""
        return estimate_noise_std(self.pinv.real)

    def from_prior(self, v: torch.Tensor) -> torch.Tensor:
        """Prior rows ``(Z·channels, Y, X)`` → images ``(Z, Y, X)``."""
        if self.channels == 1:
            return v
        pairs = v.reshape(-1, 2, *v.shape[1:]).permute(0, 2, 3, 1).contiguous()
        return torch.view_as_complex(pairs)

    # -- data consistency -----------------------------------------------------------------
    def proximal_weight(self, level: float, cap: float | None) -> float | None:
        """``γ`` of the proximal data consistency ``argmin ‖x − x̂₀‖²/2 + γ‖Ax − y‖²/(2‖A‖²)``
        at a sampling step of noise level ``level`` (``s_t = σ_t/√ᾱ_t``, prior units); None:
        hard data consistency.

        With ``prior_error`` ζ > 0 it is the MAP weight for an estimate ``x̂₀`` whose error has
        standard deviation ``ζ·s_t`` and a measurement noise ``σ`` (``noise``):
        ``argmin ‖x − x̂₀‖²/(2ζ²s_t²) + ‖Ax − y‖²/(2σ²)``, i.e. ``γ = ‖A‖² ζ² s_t² / σ²``,
        capped by ``cap`` (as DiffPIR weighs its data term, Zhu et al. 2023): early steps fit
        the measurement, the last ones no longer fit its noise. Without noise (σ = 0) or with
        ζ = 0: ``cap`` (the method's fixed weight).
        """
        zeta = self.cfg.prior_error
        if not zeta or self.noise <= 0:
            return cap
        weight = self.norm * (zeta * level / self.noise) ** 2
        return weight if cap is None else min(weight, cap)

    def consistency(
        self,
        x0: torch.Tensor,
        slices: slice | torch.Tensor,
        mode: str,
        admm_iters: int,
        level: float = 0.0,
        fitted: bool = False,
    ) -> torch.Tensor:
        """``x̃₀`` from images ``x0 (n, Y, X)`` of slices ``slices`` at a sampling step of
        noise level ``level`` (``s_t``, for :meth:`proximal_weight`); ``fitted``: from the
        adaptation's fitted part of the measurement only (:attr:`fitted`).

        ``mode``: ``"cg"`` — ``cg_iters`` CG steps from ``x̂₀`` on the normal equations (``γ``
        None) or on ``(I + γAᴴA/‖A‖²) x = x̂₀ + γAᴴy/‖A‖²`` (``‖A‖² = 1`` for MRI);
        ``"project"`` — DDNM's ``x̂₀ + A⁺(y − A x̂₀)`` with ``A⁺`` by CG; ``"mbir"`` /
        ``"tv"`` — ``admm_iters`` ADMM iterations of TV along z (contiguous slices) / over
        all three axes, with the proximal term ``μ/2 ‖x − x̂₀‖²`` (``μ = mbir_anchor``, or
        ``1/γ`` when noise-aware) and ``λ = admm_lam`` (auto: ``tv_share`` times ADMM-TV's
        own); ``"none"``.
        Differentiable.
        """
        cfg = self.cfg
        op, y = (self.fitted if fitted else self.op).subset(slices), self.y[slices]
        if mode == "none" or (mode == "cg" and cfg.cg_iters == 0):
            return x0
        if mode == "cg":
            weight = self.proximal_weight(level, cfg.gamma)
            if weight is None:
                return conjugate_gradient(op.normal, op.adjoint(y), x0=x0, n_iter=cfg.cg_iters)
            gamma = weight / self.norm
            rhs = x0 + gamma * op.adjoint(y)
            return conjugate_gradient(
                lambda v: v + gamma * op.normal(v), rhs, x0=x0, n_iter=cfg.cg_iters
            )
        if mode == "project":
            residual = op.adjoint(y - op.forward(x0))
            return x0 + conjugate_gradient(op.normal, residual, n_iter=cfg.ddnm_cg_iters)
        if mode in TV_AXES:
            fixed = 1 / cfg.mbir_anchor if cfg.mbir_anchor else None
            weight = self.proximal_weight(level, fixed)
            lam = cfg.admm_lam
            if lam is None:
                lam = cfg.tv_share * default_tv_weight(op, y, x0, self.norm, self.known_noise)
            return admm_tv(
                op,
                y,
                lam=lam,
                rho=cfg.admm_rho,
                n_iter=admm_iters,
                n_cg=cfg.admm_cg,
                axes=TV_AXES[mode],
                x0=x0,
                norm=self.norm,
                anchor=0.0 if weight is None else 1 / weight,
                noise_std=self.known_noise,
            )
        raise ValueError(f"unknown data consistency {mode!r}")

    def relative_loss(
        self,
        x: torch.Tensor,
        slices: slice | torch.Tensor,
        denominator: torch.Tensor | None = None,
        scored: bool = False,
    ) -> torch.Tensor:
        """``‖A x − y‖² / ‖y‖²`` over slices ``slices`` (images ``x (n, Y, X)``);
        ``denominator`` replaces ``‖y‖²`` (a larger set's, when the slices are a part);
        ``scored``: over the adaptation's held-out entries only (:attr:`scored`)."""
        op = (self.scored if scored else self.op).subset(slices)
        y = self.measured(slices, scored)
        residual = op.forward(x) - y
        norm = y.abs().pow(2).sum() if denominator is None else denominator
        return residual.abs().pow(2).sum() / norm.clamp_min(1e-12)

    def noise_share(self, slices: slice | torch.Tensor, scored: bool = False) -> float | None:
        """The share of ``‖y‖²`` over slices ``slices`` that the measurement noise is expected
        to hold, ``m·σ²/‖y‖²`` (``scored``: over the adaptation's held-out entries): ``m``
        the measured entries (non-zero; unsampled k-space is exactly 0), ``σ``
        :attr:`known_noise` (``E|n|² = σ²`` per entry, real or complex). The value of
        :meth:`relative_loss` at the true image, in expectation, and so the level below which
        a lower loss only fits noise (Morozov's discrepancy principle). None where the noise
        is not known."""
        if self.known_noise is None:
            return None
        y = self.measured(slices, scored)
        energy = y.abs().pow(2).sum().clamp_min(1e-12)
        return float(torch.count_nonzero(y) * self.known_noise**2 / energy)

    def measured(self, slices: slice | torch.Tensor, scored: bool = False) -> torch.Tensor:
        """``y`` of slices ``slices``; ``scored``: its held-out entries only (zeros elsewhere)."""
        y = self.y[slices]
        if scored and isinstance(self.scored, MaskedOperator):
            return y * self.scored.keep
        return y
