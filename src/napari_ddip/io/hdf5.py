"""fastMRI-style HDF5 k-space files.

Such a file holds a dataset ``kspace``: complex ``(slices, coils, ky, kx)`` (multi-coil) or
``(slices, ky, kx)`` (single-coil), centred with the orthonormal FFT convention of DESIGN §3
(fastMRI's ``ifft2c`` is ours). The sampling mask is not needed in the file: it is inferred as
the k-space positions that hold a nonzero value in any slice or coil (for fastMRI's column
masks, the acquired columns). There are no coil maps (ESPIRiT estimates them at
reconstruction) and no voxel size (1 mm is assumed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_ddip.io.errors import InputError

HDF5_SUFFIXES = (".h5", ".hdf5")
KSPACE_KEY = "kspace"


def is_kspace_h5(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file with a complex 3D/4D ``kspace`` dataset; never raises."""
    path = Path(path)
    if path.suffix.lower() not in HDF5_SUFFIXES or not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            kspace = f.get(KSPACE_KEY)
            return (
                isinstance(kspace, h5py.Dataset)
                and kspace.ndim in (3, 4)
                and np.issubdtype(kspace.dtype, np.complexfloating)
            )
    except Exception:  # any failure to parse means: not a k-space file
        return False


def kspace_h5_fields(path: Path) -> dict[str, Any]:
    """The :class:`~napari_ddip.io.measurement.Measurement` fields of a fastMRI-style HDF5
    file: data complex64 ``(Z, [coils,] ky, kx)``, mask float32 ``(ky, kx)``, no maps, voxel
    size 1 mm, provenance naming the source file."""
    if not is_kspace_h5(path):
        raise InputError(
            f"{path}: not an HDF5 k-space file: it needs a complex dataset '{KSPACE_KEY}' "
            "of shape (slices, coils, ky, kx) or (slices, ky, kx)"
        )
    with h5py.File(path, "r") as f:
        kspace = np.asarray(f[KSPACE_KEY], dtype=np.complex64)
    mask = np.any(kspace != 0, axis=tuple(range(kspace.ndim - 2))).astype(np.float32)
    if not mask.any():
        raise InputError(f"{path}: '{KSPACE_KEY}' is zero everywhere")
    geometry = {
        "kind": "mri",
        "image_shape": list(kspace.shape[-2:]),
        "n_coils": kspace.shape[1] if kspace.ndim == 4 else 1,
        "acceleration": float(1.0 / mask.mean()),
        "per_slice_mask": False,
    }
    return {
        "kind": "mri",
        "data": kspace,
        "geometry": geometry,
        "mask": mask,
        "provenance": {"source": path.name, "format": "HDF5 kspace (fastMRI layout)"},
    }
