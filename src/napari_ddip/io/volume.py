"""Image volumes: read TIFF / NumPy / NIfTI / DICOM inputs, write float32 results with
provenance.

A volume is ``(Z, Y, X)`` float32 (a 2D image is read as one slice) with a voxel size
``(z, y, x)`` in mm. Results are written as ImageJ TIFF (see :mod:`napari_ddip.io.tiff`) or
NIfTI (:mod:`napari_ddip.io.nifti`), carrying the voxel size and the provenance (method,
settings, version, seed, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_ddip.io.dicom import DicomSource, is_dicom_source, read_dicom_series, source_name
from napari_ddip.io.errors import (
    InputError,
    require_file,
    require_finite,
    require_ndim,
    require_new_output,
    require_nonempty,
    require_suffix,
)
from napari_ddip.io.nifti import NIFTI_SUFFIXES, file_stem, is_nifti_name, read_nifti, write_nifti
from napari_ddip.io.npz import read_npy, read_npz
from napari_ddip.io.tiff import VoxelSize, read_tiff, write_tiff

VOLUME_SUFFIXES = (".tif", ".tiff", ".npy", ".npz", *NIFTI_SUFFIXES)
RESULT_SUFFIXES = (".tif", ".tiff", *NIFTI_SUFFIXES)
#: The array name a multi-array ``.npz`` volume must use.
NPZ_VOLUME_KEY = "volume"
#: Names of the axes ``(Z, Y, X)`` of a volume, for messages.
VOLUME_AXES = ("slices", "rows", "columns")


@dataclass
class Volume:
    """A real image volume.

    Attributes:
        data: float32 ``(Z, Y, X)``.
        voxel_size: ``(z, y, x)`` in mm (1 mm when the file does not say).
        metadata: our metadata from the file (e.g. provenance of a result), else empty.
    """

    data: np.ndarray
    voxel_size: VoxelSize = (1.0, 1.0, 1.0)
    metadata: dict[str, Any] = field(default_factory=dict)


def read_volume(path: DicomSource) -> Volume:
    """Read a real volume from ``.tif``/``.tiff``, ``.npy``, ``.npz``, ``.nii``/``.nii.gz`` or
    a DICOM series (a folder, a list of files or one file; :mod:`napari_ddip.io.dicom`).

    A ``.npz`` must hold one array or an array named ``volume``; a NIfTI image is reoriented
    to ``(Z, Y, X)`` as :mod:`napari_ddip.io.nifti` says. Raises :class:`InputError`
    for a missing or unreadable file, complex or non-numeric data, NaN/Inf, or a shape that
    is not ``(Y, X)`` / ``(Z, Y, X)`` or has an empty axis (e.g. no slices).
    """
    if not isinstance(path, (str, Path)) or Path(path).is_dir() or _is_dicom_file(Path(path)):
        data, voxel_size, metadata = read_dicom_series(path)
        return Volume(as_real_volume(data, source_name(path)), voxel_size, metadata)
    path = require_file(path)
    suffix = file_suffix(path, VOLUME_SUFFIXES, "a volume file")
    voxel_size: VoxelSize | None = None
    metadata: dict[str, Any] | None = None
    if suffix in (".tif", ".tiff"):
        data, voxel_size, metadata = read_tiff(path)
    elif suffix == ".nii":
        data, voxel_size, metadata = read_nifti(path)
    elif suffix == ".npy":
        data = read_npy(path)
    else:
        data = _npz_volume(path)
    return Volume(
        data=as_real_volume(data, f"{path}"),
        voxel_size=voxel_size or (1.0, 1.0, 1.0),
        metadata=metadata or {},
    )


def _is_dicom_file(path: Path) -> bool:
    """A DICOM file given by itself: a name other than our volume suffixes, with DICOM's marker."""
    return (
        not is_nifti_name(path)
        and path.suffix.lower() not in VOLUME_SUFFIXES
        and (is_dicom_source(path))
    )


def as_real_volume(data: np.ndarray, what: str) -> np.ndarray:
    """Check ``data`` is a finite real 2D/3D array with no empty axis (at least one slice);
    return it as float32 ``(Z, Y, X)``. ``data`` may be any array-like (a CPU tensor too)."""
    data = np.asarray(data)
    if np.iscomplexobj(data):
        raise InputError(f"{what}: volume is complex; a real-valued volume is needed")
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
        raise InputError(f"{what}: volume has non-numeric dtype {data.dtype}")
    require_ndim(data, (2, 3), f"{what}: volume", "(Y, X) or (Z, Y, X)")
    require_nonempty(data, f"{what}: volume", VOLUME_AXES[-data.ndim :])
    volume = np.asarray(data, dtype=np.float32)
    require_finite(volume, f"{what}: volume")
    return volume if volume.ndim == 3 else volume[None]


def _npz_volume(path: Path) -> np.ndarray:
    arrays = read_npz(path)
    if "kind" in arrays:
        raise InputError(f"{path}: is a measurement file, not a volume")
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    if NPZ_VOLUME_KEY in arrays:
        return arrays[NPZ_VOLUME_KEY]
    raise InputError(
        f"{path}: .npz holds {sorted(arrays)}; expected one array or one named 'volume'"
    )


def write_result(
    path: str | Path,
    volume: np.ndarray,
    voxel_size: VoxelSize,
    provenance: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write a reconstructed volume as float32 TIFF or NIfTI with its voxel size and provenance.

    Args:
        path: ``.tif``/``.tiff``/``.nii``/``.nii.gz`` output; must not exist unless ``overwrite``.
        volume: real ``(Z, Y, X)``.
        voxel_size: ``(z, y, x)`` in mm.
        provenance: JSON-serialisable facts about how it was made (method, settings,
            version, seed, measurement, ...).
        overwrite: replace an existing file.

    Returns:
        The path written.
    """
    path = check_result_path(path, overwrite)
    write = write_nifti if is_nifti_name(path) else write_tiff
    write(path, as_real_volume(volume, "result"), voxel_size, provenance)
    return path


def check_result_path(path: str | Path, overwrite: bool = False) -> Path:
    """``path`` if a result may be written there (TIFF or NIfTI; new unless ``overwrite``)."""
    path = require_new_output(path, overwrite)
    file_suffix(path, RESULT_SUFFIXES, "a result file")
    return path


def tagged_path(path: Path, tag: str) -> Path:
    """``path`` with ``tag`` before its suffix: ``r.tif`` → ``r_std.tif``, ``r.nii.gz`` →
    ``r_std.nii.gz`` for the tag ``_std``."""
    stem = file_stem(path)
    return path.with_name(f"{stem}{tag}{path.name[len(stem) :]}")


def file_suffix(path: Path, allowed: tuple[str, ...], what: str) -> str:
    """The lower-case suffix of ``path`` (``.nii`` for ``.nii.gz`` too), one of ``allowed``."""
    return ".nii" if is_nifti_name(path) else require_suffix(path, allowed, what)
