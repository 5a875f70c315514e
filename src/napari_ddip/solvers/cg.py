"""Conjugate gradients for Hermitian positive (semi-)definite systems, batched per slice."""

from __future__ import annotations

from collections.abc import Callable

import torch

from napari_ddip.physics.operator import batch_dot

#: A slice stops once its residual is this many machine epsilons of the initial residual.
CONVERGED_EPS = 100


def _per_slice(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``(Z,)`` reshaped to broadcast against ``like`` ``(Z, ...)``."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


def _safe_divide(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den > 0``, else 0, without NaN gradients from the other branch."""
    positive = den > 0
    return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), 0.0)


def conjugate_gradient(
    apply_normal: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    x0: torch.Tensor | None = None,
    n_iter: int = 5,
    tol: float = 0.0,
) -> torch.Tensor:
    """Solve ``H x = rhs`` slice by slice with ``n_iter`` CG iterations.

    Args:
        apply_normal: ``x ↦ H x`` for a Hermitian positive (semi-)definite ``H`` acting on each
            slice independently (e.g. ``AᴴA + ρ I``); shapes ``(Z, ...)`` → ``(Z, ...)``.
        rhs: right-hand side ``(Z, ...)``, real or complex.
        x0: starting point (default zero).
        n_iter: maximum number of iterations.
        tol: stop early once every slice has ``‖r‖ ≤ tol · ‖rhs‖`` (0 = always ``n_iter``;
            checking it synchronises with the device once per iteration).

    Every slice has its own step ``α`` and direction update ``β`` (inner products are reduced
    over all axes but the first). The iteration is out-of-place, so autograd differentiates
    through it (gradients w.r.t. ``rhs``, ``x0`` and anything ``apply_normal`` closes over).
    Slices whose residual falls to rounding level (``CONVERGED_EPS`` machine epsilons of the
    initial one or of ``rhs``, whichever is larger) stop moving instead
    of amplifying rounding errors (or producing NaN at exactly zero).
    """
    x = torch.zeros_like(rhs) if x0 is None else x0
    r = rhs - apply_normal(x) if x0 is not None else rhs
    p = r
    rs = batch_dot(r, r)
    rhs_norm = batch_dot(rhs, rhs)
    threshold = tol**2 * rhs_norm
    # A slice whose residual fell to rounding level stops: its next direction would be noise.
    # That level is set by the larger of the first residual and the right-hand side: a start
    # that already solves the system leaves a residual of rounding errors of ``rhs``.
    floor = (CONVERGED_EPS * torch.finfo(rs.dtype).eps) ** 2 * torch.maximum(rs, rhs_norm)
    for _ in range(n_iter):
        if tol > 0 and bool((rs <= threshold).all()):
            break
        hp = apply_normal(p)
        moving = (rs > floor).to(rs.dtype)
        alpha = _per_slice(_safe_divide(rs, batch_dot(p, hp)) * moving, p)
        x = x + alpha * p
        r = r - alpha * hp
        rs_new = batch_dot(r, r)
        p = r + _per_slice(_safe_divide(rs_new, rs), p) * p
        rs = rs_new
    return x
