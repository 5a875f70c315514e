"""Forward models (linear operators), sampling masks, coil maps and measurement noise."""

from napari_ddip.physics.coils import espirit_maps, simulated_coil_maps
from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.masks import acceleration, poisson_disc_mask, uniform1d_mask
from napari_ddip.physics.mri import MRIOperator, fft2c, ifft2c
from napari_ddip.physics.noise import (
    add_complex_gaussian_noise,
    add_gaussian_noise,
    add_poisson_noise,
)
from napari_ddip.physics.operator import LinearOperator

__all__ = [
    "LinearOperator",
    "MRIOperator",
    "ParallelBeamCT",
    "acceleration",
    "add_complex_gaussian_noise",
    "add_gaussian_noise",
    "add_poisson_noise",
    "espirit_maps",
    "fft2c",
    "ifft2c",
    "poisson_disc_mask",
    "simulated_coil_maps",
    "uniform1d_mask",
]
