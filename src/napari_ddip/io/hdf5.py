"""fastMRI-style HDF5 k-space files.

Such a file holds a dataset ``kspace``: complex ``(slices, coils, ky, kx)`` (multi-coil) or
``(slices, ky, kx)`` (single-coil), centred with the orthonormal FFT convention of
docs/architecture.md §2 (fastMRI's ``ifft2c`` is ours). The sampling mask is not needed in the
file: it is inferred as the k-space positions that hold a nonzero value in any slice or coil
(for fastMRI's column masks, the acquired columns). There are no coil maps (ESPIRiT estimates
them at reconstruction). The voxel size comes from the ISMRMRD XML header that fastMRI stores as
``ismrmrd_header`` (encoded field of view over encoded matrix: x along ``ky``, the readout, y
along ``kx``, z the slice thickness) when its matrix matches the k-space; else 1 mm is assumed
and the provenance says so.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_ddip.io.errors import InputError, require_nonempty
from napari_ddip.io.tiff import VoxelSize

HDF5_SUFFIXES = (".h5", ".hdf5")
KSPACE_KEY = "kspace"
HEADER_KEY = "ismrmrd_header"
_ISMRMRD = {"m": "http://www.ismrm.org/ISMRMRD"}
#: Names of the axes of single-coil (3D) and multi-coil (4D) k-space, for messages.
KSPACE_AXES = {
    3: ("slices", "ky samples", "kx samples"),
    4: ("slices", "coils", "ky samples", "kx samples"),
}


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
    file: data complex64 ``(Z, [coils,] ky, kx)``, mask float32 ``(ky, kx)``, no maps, the
    voxel size of its header (else 1 mm), provenance naming the source file."""
    if not is_kspace_h5(path):
        raise InputError(
            f"{path}: not an HDF5 k-space file: it needs a complex dataset '{KSPACE_KEY}' "
            "of shape (slices, coils, ky, kx) or (slices, ky, kx)"
        )
    with h5py.File(path, "r") as f:
        kspace = np.asarray(f[KSPACE_KEY], dtype=np.complex64)
        header = f.get(HEADER_KEY)
        xml = header[()] if isinstance(header, h5py.Dataset) and header.shape == () else None
    require_nonempty(kspace, f"{path}: '{KSPACE_KEY}'", KSPACE_AXES[kspace.ndim])
    voxel_size = header_voxel_size(xml, kspace.shape[-2:])
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
        "voxel_size": voxel_size or (1.0, 1.0, 1.0),
        "provenance": {
            "source": path.name,
            "format": "HDF5 kspace (fastMRI layout)",
            "voxel_size": f"from {HEADER_KEY}" if voxel_size else "not in the file: 1 mm assumed",
        },
    }


def header_voxel_size(xml: bytes | str | None, shape: tuple[int, ...]) -> VoxelSize | None:
    """``(z, y, x)`` mm of an ISMRMRD XML header whose encoded matrix is ``shape`` ``(ky, kx)``
    (x, y of the header), or None when there is no header or it cannot say (unparsable, fields
    missing, another matrix, or a size that is not positive)."""
    try:
        space = ElementTree.fromstring(xml).find("m:encoding/m:encodedSpace", _ISMRMRD)
        matrix = [int(space.findtext(f"m:matrixSize/m:{a}", namespaces=_ISMRMRD)) for a in "xyz"]
        fov = [float(space.findtext(f"m:fieldOfView_mm/m:{a}", namespaces=_ISMRMRD)) for a in "xyz"]
    except (ElementTree.ParseError, AttributeError, TypeError, ValueError):
        return None
    if tuple(matrix[:2]) != tuple(shape) or min(*matrix, *fov) <= 0:
        return None
    return (fov[2] / matrix[2], fov[0] / matrix[0], fov[1] / matrix[1])
