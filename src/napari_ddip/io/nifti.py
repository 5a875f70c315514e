"""NIfTI volumes (``.nii``, ``.nii.gz``), read and written with nibabel in the project's axes.

A NIfTI image is reoriented to the closest canonical (RAS+) voxel axes and returned as
``(Z, Y, X)``: slices from inferior to superior, rows from anterior (top) to posterior,
columns from the subject's left to right (neurological view) — the orientation of the MNI152
and dipy samples. The voxel size ``(z, y, x)`` in mm comes from the header. Files we write are
RAS with a diagonal affine (the voxel size; no position in the scanner is known) and carry our
JSON metadata (provenance, the labels kind) as ``{"napari_ddip": {...}}`` in a NIfTI comment
extension.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from napari_ddip.io.errors import InputError
from napari_ddip.io.tiff import META_KEY, VoxelSize, parse_info

NIFTI_SUFFIXES = (".nii", ".nii.gz")
_COMMENT_CODE = 6  # the NIfTI-1 extension code for free text ("comment")


def is_nifti_name(path: str | Path) -> bool:
    """Whether the file name ends in ``.nii`` or ``.nii.gz`` (any case)."""
    return Path(path).name.lower().endswith(NIFTI_SUFFIXES)


def file_stem(path: str | Path) -> str:
    """The file name without its suffix, both parts of ``.nii.gz`` included."""
    path = Path(path)
    if not is_nifti_name(path):
        return path.stem
    return path.name[: -len(".nii.gz")] if path.name.lower().endswith(".gz") else path.stem


def _load(path: Path) -> Any:
    """The nibabel image of ``path`` (header read, pixels not yet)."""
    import nibabel

    try:
        return nibabel.load(path)
    except Exception as exc:  # nibabel raises several types for a broken file
        raise InputError(f"{path}: not a readable NIfTI file ({exc})") from None


def _header_of(path: str | Path) -> Any | None:
    """The nibabel image of a NIfTI file (header only), None when it is not one nibabel can
    open; never raises."""
    path = Path(path)
    if not is_nifti_name(path) or not path.is_file():
        return None
    try:
        return _load(path)
    except InputError:
        return None


def read_nifti_info(path: str | Path) -> dict[str, Any] | None:
    """Our metadata stored in a NIfTI file, without reading its pixels; None when it has none
    or is not a readable NIfTI file (never raises)."""
    image = _header_of(path)
    return None if image is None else _stored_info(image)


def is_nifti_file(path: str | Path) -> bool:
    """Whether ``path`` is a NIfTI file nibabel can open (its header only); never raises."""
    return _header_of(path) is not None


def _stored_info(image: Any) -> dict[str, Any] | None:
    """Our metadata from the first comment extension that holds it, else None."""
    for extension in getattr(image.header, "extensions", ()):
        if extension.get_code() == _COMMENT_CODE:
            info = parse_info(extension.get_content().decode("utf-8", "replace"), True)
            if info is not None:
                return info
    return None


def nifti_to_zyx(
    image: Any, what: str, dtype: type | None = np.float32
) -> tuple[np.ndarray, VoxelSize]:
    """``(volume, voxel_size)`` of a nibabel spatial image: ``(Z, Y, X)`` in the module's
    orientation (float32, or the stored type when ``dtype`` is None, e.g. for labels) and
    ``(z, y, x)`` mm. Trailing axes of length 1 (e.g. a 4D file holding one volume) are
    dropped; a true 4D series is refused."""
    import nibabel

    shape = tuple(image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) not in (2, 3):
        raise InputError(
            f"{what}: NIfTI image has shape {image.shape}; a 2D or 3D image is needed "
            "(extract one volume of a 4D series first)"
        )
    try:  # a truncated or corrupt file fails only once its pixels are read (gzip, zlib, ...)
        if len(shape) == 2:  # one slice: a third axis of length 1, voxel sizes kept
            image = nibabel.Nifti1Image(np.asanyarray(image.dataobj)[..., None], image.affine)
        canonical = nibabel.as_closest_canonical(image)
        pixels = canonical.dataobj if dtype is None else canonical.get_fdata()
        xyz = np.asarray(pixels, dtype=dtype).reshape(canonical.shape[:3])
    except Exception as exc:
        raise InputError(f"{what}: NIfTI pixels unreadable ({exc})") from None
    x, y, z = (float(size) for size in canonical.header.get_zooms()[:3])
    volume = np.ascontiguousarray(xyz.transpose(2, 1, 0)[:, ::-1, :])  # anterior on top
    return volume, (z, y, x)


def read_nifti(
    path: Path, dtype: type | None = np.float32
) -> tuple[np.ndarray, VoxelSize, dict[str, Any]]:
    """``(volume, voxel_size, info)`` of a NIfTI file (see :func:`nifti_to_zyx`). ``info`` is
    our stored metadata, or for a foreign file its name and original axis codes (e.g.
    ``"LPS"``)."""
    import nibabel

    image = _load(path)
    volume, voxel_size = nifti_to_zyx(image, str(path), dtype)
    info = _stored_info(image)
    if info is None:
        axes = "".join(nibabel.aff2axcodes(image.affine))
        info = {"source": path.name, "format": "NIfTI", "axes": axes}
    return volume, voxel_size, info


def write_nifti(
    path: Path,
    data: np.ndarray,
    voxel_size: VoxelSize,
    info: dict[str, Any],
    dtype: type[np.generic] = np.float32,
) -> None:
    """Write ``data`` ``(Z, Y, X)`` as ``dtype`` in RAS voxel axes with ``voxel_size``
    ``(z, y, x)`` mm and ``info`` (our metadata) in a comment extension; reads back unchanged
    with :func:`read_nifti`."""
    import nibabel

    vz, vy, vx = voxel_size
    zyx = np.asarray(data, dtype=dtype)
    xyz = np.ascontiguousarray(zyx[:, ::-1, :].transpose(2, 1, 0))
    image = nibabel.Nifti1Image(xyz, np.diag([vx, vy, vz, 1.0]))
    image.header.set_xyzt_units("mm")
    text = json.dumps({META_KEY: info}).encode("utf-8")
    image.header.extensions.append(nibabel.nifti1.Nifti1Extension(_COMMENT_CODE, text))
    nibabel.save(image, path)
