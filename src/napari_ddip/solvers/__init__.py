"""Solvers: conjugate gradients, total variation, and classical reconstructions."""

from napari_ddip.solvers.cg import batch_dot, conjugate_gradient
from napari_ddip.solvers.classical import (
    admm_tv,
    cg_least_squares,
    fbp,
    image_scale,
    normal_norm,
    zero_filled,
)
from napari_ddip.solvers.tv import grad, grad_adjoint, shrink

__all__ = [
    "admm_tv",
    "batch_dot",
    "cg_least_squares",
    "conjugate_gradient",
    "fbp",
    "grad",
    "grad_adjoint",
    "image_scale",
    "normal_norm",
    "shrink",
    "zero_filled",
]
