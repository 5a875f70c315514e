"""Classical reconstructions without a learned prior: CG least squares and ADMM-TV.

All take a :class:`~napari_ddip.physics.operator.LinearOperator` and its measurement ``y``
``(Z, ...)`` and return an image ``(Z, Y, X)`` (real for CT, complex for MRI).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from napari_ddip.physics.operator import LinearOperator
from napari_ddip.solvers.cg import conjugate_gradient
from napari_ddip.solvers.tv import grad, grad_adjoint, shrink

#: Default TV weight of :func:`admm_tv` relative to the image scale (see there).
TV_WEIGHT = 1e-4
#: Default ADMM penalty of :func:`admm_tv` (dimensionless: the data term is normalised).
ADMM_RHO = 1e-3

Callback = Callable[[int, int, torch.Tensor], bool | None]


def cg_least_squares(
    op: LinearOperator,
    y: torch.Tensor,
    n_iter: int = 20,
    damping: float = 0.0,
    x0: torch.Tensor | None = None,
) -> torch.Tensor:
    """``argmin ‖A x − y‖² + damping ‖x‖²`` by ``n_iter`` CG steps on the normal equations."""
    return conjugate_gradient(
        lambda x: op.normal(x) + damping * x, op.adjoint(y), x0=x0, n_iter=n_iter
    )


def image_scale(x: torch.Tensor, quantile: float = 0.99) -> float:
    """Robust intensity scale of an image: the ``quantile`` of ``|x|`` (ignores streak outliers)."""
    values = x.detach().abs().flatten()
    k = max(1, min(values.numel(), round(quantile * values.numel())))
    return float(values.kthvalue(k).values)


def admm_tv(
    op: LinearOperator,
    y: torch.Tensor,
    lam: float | None = None,
    rho: float | None = None,
    n_iter: int = 30,
    n_cg: int = 5,
    axes: Sequence[int] = (0, 1, 2),
    x0: torch.Tensor | None = None,
    callback: Callback | None = None,
    norm: float | None = None,
    anchor: float = 0.0,
) -> torch.Tensor:
    """Total-variation regularised least squares by ADMM.

    Solves ``min_x  ‖A x − y‖² / (2 ‖A‖²) + anchor/2 · ‖x − x0‖² + lam · TV(x)`` with
    isotropic TV over ``axes`` (``(0, 1, 2)`` = 3D, ``(1, 2)`` = per-slice 2D, ``(0,)`` = across
    slices only), splitting ``z = ∇x``: each iteration does ``n_cg`` warm-started CG steps on
    ``(AᴴA / ‖A‖² + anchor + rho ∇ᵀ∇) x = Aᴴy / ‖A‖² + anchor x0 + rho ∇ᵀ(z − u)``, then
    ``z = shrink(∇x + u, lam / rho)`` and ``u += ∇x − z``. ``anchor > 0`` (needs ``x0``)
    keeps what the measurement does not determine near ``x0``, as the proximal data
    consistency of the diffusion sampler does.

    Defaults scale with the data, so no tuning is needed for typical sparse-view CT and
    undersampled MRI: the data term is divided by ``‖A‖²`` (power iteration), which makes it
    independent of the operator's units and of the number of views; ``lam = TV_WEIGHT · s`` with
    ``s`` the 99th percentile of ``|pinv(y)|`` (about the brightest tissue), because TV scales
    linearly with the intensities; ``rho = ADMM_RHO`` is dimensionless. Starts from
    ``x0`` (default ``pinv(y)``).

    ``callback(iteration, n_iter, x)`` runs after every iteration (1-based); returning
    ``False`` stops early and returns the current ``x``. Differentiable if run with grad.
    ``norm``: ``‖A‖²`` when already known (skips the power iteration).
    """
    if anchor < 0 or (anchor > 0 and x0 is None):
        raise ValueError(f"anchor must be >= 0 and needs x0, got {anchor}")
    x = op.pinv(y) if x0 is None else x0
    norm = op.norm(x) if norm is None else norm
    lam = TV_WEIGHT * image_scale(x) if lam is None else lam
    rho = ADMM_RHO if rho is None else rho
    rhs_data = op.adjoint(y) / norm + anchor * x

    def system(v: torch.Tensor) -> torch.Tensor:
        return op.normal(v) / norm + anchor * v + rho * grad_adjoint(grad(v, axes), axes)

    z = grad(x, axes)
    u = torch.zeros_like(z)
    for iteration in range(1, n_iter + 1):
        rhs = rhs_data + rho * grad_adjoint(z - u, axes)
        x = conjugate_gradient(system, rhs, x0=x, n_iter=n_cg)
        dx = grad(x, axes)
        z = shrink(dx + u, lam / rho)
        u = u + dx - z
        if callback is not None and callback(iteration, n_iter, x) is False:
            break
    return x
