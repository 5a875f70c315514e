"""Classical reconstructions without a learned prior: CG least squares and ADMM-TV.

All take a :class:`~napari_ddip.physics.operator.LinearOperator` and its measurement ``y``
``(Z, ...)`` and return an image ``(Z, Y, X)`` (real for CT, complex for MRI).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from napari_ddip.physics.noise import estimate_noise_std
from napari_ddip.physics.operator import LinearOperator
from napari_ddip.solvers.cg import conjugate_gradient
from napari_ddip.solvers.tv import grad, grad_adjoint, shrink

#: Default TV weight of :func:`admm_tv` relative to the image scale (see there).
TV_WEIGHT = 1e-4
#: Default ADMM penalty of :func:`admm_tv` (dimensionless: the data term is normalised).
ADMM_RHO = 1e-3
#: Noise-aware TV weight per unit of the measurement noise seen in the image, ``σ/‖A‖``, and
#: its floor relative to the image scale (a noise-free sinogram). Chosen on a held-out MNI152
#: slab (60-view CT, 0.5–4 % noise), where the best λ grows in proportion to the noise.
TV_NOISE_WEIGHT = 0.035
TV_FLOOR = 2.5e-5

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


def tv_noise(op: LinearOperator, y: torch.Tensor, noise_std: float | None) -> float | None:
    """The measurement noise that :func:`tv_weight` follows: ``noise_std`` if given, else
    estimated for a real measurement (a sinogram), else None (k-space, whose estimate of
    noise-free or lightly noisy data is the fine detail itself)."""
    if noise_std is not None:
        return noise_std
    return None if op.is_complex else estimate_noise_std(y)


def tv_weight(x: torch.Tensor, image_noise: float | None) -> float:
    """The default TV weight ``λ`` of :func:`admm_tv` for images like ``x``.

    With the noise known (``image_noise = σ/‖A‖``, the measurement noise seen in image units,
    σ from :func:`tv_noise`): ``λ = max(TV_NOISE_WEIGHT · σ/‖A‖, TV_FLOOR · s)``, the
    noise-aware weight; without it: ``λ = TV_WEIGHT · s``. ``s``: the 99th percentile of
    ``|x|`` (about the brightest tissue), because TV scales linearly with the intensities.
    """
    scale = image_scale(x)
    if image_noise is None:
        return TV_WEIGHT * scale
    return max(TV_NOISE_WEIGHT * image_noise, TV_FLOOR * scale)


def default_tv_weight(
    op: LinearOperator,
    y: torch.Tensor,
    x: torch.Tensor,
    norm: float,
    noise_std: float | None = None,
) -> float:
    """The automatic ``λ`` of :func:`admm_tv` for measurement ``y`` of ``op`` and images like
    ``x``: :func:`tv_weight` with the noise of :func:`tv_noise` seen in image units,
    ``σ/‖A‖`` (``norm`` = ``‖A‖²``)."""
    noise = tv_noise(op, y, noise_std)
    return tv_weight(x, None if noise is None else noise / norm**0.5)


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
    noise_std: float | None = None,
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
    independent of the operator's units and of the number of views; ``lam`` by
    :func:`tv_weight` from the noise level (``noise_std``, the standard deviation of the noise
    in ``y``; None: estimated for a real measurement) and the intensities; ``rho =
    ADMM_RHO`` is dimensionless. Starts from ``x0`` (default ``pinv(y)``).

    ``callback(iteration, n_iter, x)`` runs after every iteration (1-based); returning
    ``False`` stops early and returns the current ``x``. Differentiable if run with grad.
    ``norm``: ``‖A‖²`` when already known (skips the power iteration).
    """
    if anchor < 0 or (anchor > 0 and x0 is None):
        raise ValueError(f"anchor must be >= 0 and needs x0, got {anchor}")
    x = op.pinv(y) if x0 is None else x0
    norm = op.norm(x) if norm is None else norm
    if lam is None:
        lam = default_tv_weight(op, y, x, norm, noise_std)
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
