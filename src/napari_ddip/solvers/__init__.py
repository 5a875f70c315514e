"""Solvers: conjugate gradients, total variation, and classical reconstructions (the fast
pseudo-inverses are the operators' own: ``ParallelBeamCT.fbp``, ``MRIOperator.zero_filled``)."""

from napari_ddip.solvers.cg import batch_dot, conjugate_gradient
from napari_ddip.solvers.classical import admm_tv, cg_least_squares, image_scale
from napari_ddip.solvers.tv import grad, grad_adjoint, shrink

__all__ = [
    "admm_tv",
    "batch_dot",
    "cg_least_squares",
    "conjugate_gradient",
    "grad",
    "grad_adjoint",
    "image_scale",
    "shrink",
]
