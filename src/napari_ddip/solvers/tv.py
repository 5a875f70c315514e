"""Finite differences for total variation, their exact adjoint, and the TV shrinkage.

``grad(x, axes)`` stacks forward differences ``x[i+1] − x[i]`` along each axis in ``axes``
(0 = Z across slices, 1 = Y, 2 = X for a volume ``(Z, Y, X)``), with a zero in the last position
(Neumann boundary), giving ``(len(axes), *x.shape)``. ``grad_adjoint`` is its exact adjoint
(``= −div``). Real and complex inputs, differentiable, any device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _diff(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Forward difference along ``axis``, zero in the last position (same shape as x)."""
    d = torch.diff(x, dim=axis)
    return torch.cat([d, torch.zeros_like(x.narrow(axis, 0, 1))], dim=axis)


def _diff_adjoint(g: torch.Tensor, axis: int) -> torch.Tensor:
    """Adjoint of :func:`_diff`: ``out[j] = g[j−1] − g[j]`` over the valid ``g[0 … n−2]``."""
    n = g.shape[axis]
    valid = g.narrow(axis, 0, n - 1)
    zero = torch.zeros_like(g.narrow(axis, 0, 1))
    return torch.cat([zero, valid], dim=axis) - torch.cat([valid, zero], dim=axis)


def grad(x: torch.Tensor, axes: Sequence[int] = (0, 1, 2)) -> torch.Tensor:
    """Forward differences of ``x`` along ``axes``: ``(len(axes), *x.shape)``."""
    return torch.stack([_diff(x, axis) for axis in axes])


def grad_adjoint(g: torch.Tensor, axes: Sequence[int] = (0, 1, 2)) -> torch.Tensor:
    """Exact adjoint of :func:`grad` (the negative divergence): ``(len(axes), *s)`` → ``s``."""
    return sum(_diff_adjoint(component, axis) for component, axis in zip(g, axes, strict=True))


def shrink(v: torch.Tensor, threshold: float | torch.Tensor) -> torch.Tensor:
    """Isotropic soft-thresholding, the proximal map of ``threshold · Σ_voxels ‖v_voxel‖₂``.

    ``v`` is a stacked gradient ``(K, ...)``; each voxel's K-vector (complex entries count by
    their modulus) is shortened by ``threshold`` towards zero, ``v · max(1 − t/‖v‖, 0)``. With a
    single axis (z-only TV) this is ordinary soft-thresholding of ``|v|``. Isotropic TV is chosen
    because it does not favour the grid directions. Differentiable everywhere (no NaN at 0).
    """
    squared = (v.abs() ** 2).sum(dim=0) if v.is_complex() else (v**2).sum(dim=0)
    norm = torch.sqrt(squared.clamp_min(1e-24))
    return v * torch.relu(1.0 - threshold / norm)
