"""NIfTI volumes (``.nii``, ``.nii.gz``), read with nibabel into the project's axes.

A NIfTI image is reoriented to the closest canonical (RAS+) voxel axes and returned as
``(Z, Y, X)``: slices from inferior to superior, rows from anterior (top) to posterior,
columns from the subject's left to right (neurological view) — the orientation of the MNI152
and dipy samples. The voxel size ``(z, y, x)`` in mm comes from the header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_ddip.io.errors import InputError
from napari_ddip.io.tiff import VoxelSize

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_name(path: str | Path) -> bool:
    """Whether the file name ends in ``.nii`` or ``.nii.gz`` (any case)."""
    return Path(path).name.lower().endswith(NIFTI_SUFFIXES)


def nifti_stem(path: str | Path) -> str:
    """The file name without ``.nii`` / ``.nii.gz``."""
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.lower().endswith(".gz") else name[: -len(".nii")]


def is_nifti_file(path: str | Path) -> bool:
    """Whether ``path`` is a NIfTI file nibabel can open (its header only); never raises."""
    path = Path(path)
    if not is_nifti_name(path) or not path.is_file():
        return False
    try:
        import nibabel

        nibabel.load(path)
    except Exception:  # any failure to parse (or no nibabel) means: not one we can read
        return False
    return True


def nifti_to_zyx(image: Any, what: str) -> tuple[np.ndarray, VoxelSize]:
    """``(volume, voxel_size)`` of a nibabel spatial image: float32 ``(Z, Y, X)`` in the
    module's orientation and ``(z, y, x)`` mm. Trailing axes of length 1 (e.g. a 4D file
    holding one volume) are dropped; a true 4D series is refused."""
    import nibabel

    if len(image.shape) == 2:  # one slice: a third axis of length 1, voxel sizes kept
        image = nibabel.Nifti1Image(np.asanyarray(image.dataobj)[..., None], image.affine)
    canonical = nibabel.as_closest_canonical(image)
    shape = canonical.shape
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) != 3:
        raise InputError(
            f"{what}: NIfTI image has shape {canonical.shape}; a 2D or 3D image is needed "
            "(extract one volume of a 4D series first)"
        )
    xyz = np.asarray(canonical.get_fdata(), dtype=np.float32).reshape(shape)
    x, y, z = (float(size) for size in canonical.header.get_zooms()[:3])
    volume = np.ascontiguousarray(xyz.transpose(2, 1, 0)[:, ::-1, :])  # anterior on top
    return volume, (z, y, x)


def read_nifti(path: Path) -> tuple[np.ndarray, VoxelSize, dict[str, Any]]:
    """``(volume, voxel_size, provenance)`` of a NIfTI file (see :func:`nifti_to_zyx`);
    the provenance names the file and its original axis codes (e.g. ``"LPS"``)."""
    import nibabel

    try:
        image = nibabel.load(path)
    except Exception as exc:  # nibabel raises several types for a broken file
        raise InputError(f"{path}: not a readable NIfTI file ({exc})") from None
    volume, voxel_size = nifti_to_zyx(image, str(path))
    axes = "".join(nibabel.aff2axcodes(image.affine))
    return volume, voxel_size, {"source": path.name, "format": "NIfTI", "axes": axes}
