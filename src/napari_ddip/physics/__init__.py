"""Forward models (linear operators), sampling masks, coil maps and measurement noise.

The names below load their module on first use, so that the file layer can import
:mod:`napari_ddip.physics.ct_geometry` without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_MODULES = {
    "CTGeometry": "ct_geometry",
    "LinearOperator": "operator",
    "MRIOperator": "mri",
    "ParallelBeamCT": "ct",
    "acceleration": "masks",
    "add_complex_gaussian_noise": "noise",
    "add_gaussian_noise": "noise",
    "add_poisson_noise": "noise",
    "espirit_maps": "coils",
    "fft2c": "mri",
    "ifft2c": "mri",
    "poisson_disc_mask": "masks",
    "simulated_coil_maps": "coils",
    "uniform1d_mask": "masks",
}


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(import_module(f"napari_ddip.physics.{_MODULES[name]}"), name)
    raise AttributeError(f"module 'napari_ddip.physics' has no attribute {name!r}")


__all__ = sorted(_MODULES)
