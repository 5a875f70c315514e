"""Annotation (label) volumes as ImageJ TIFF stacks with a voxel size.

A labels volume is ``(Z, Y, X)`` (a 2D image is one slice) of non-negative integers, stored as
uint8 when every label fits, else uint16 (ImageJ has no wider unsigned type). Our metadata
block is ``{"kind": "labels", "provenance": {...}}`` so the napari reader gives back a labels
layer, not an image. Labels are also read (not written) from a DICOM series whose values, after
its rescale, are whole numbers in 0…65535.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_ddip.io.dicom import DicomSource, is_dicom_source, read_dicom_series, source_name
from napari_ddip.io.errors import InputError, require_file, require_ndim
from napari_ddip.io.nifti import is_nifti_name, read_nifti, write_nifti
from napari_ddip.io.tiff import VoxelSize, read_tiff, write_tiff
from napari_ddip.io.volume import check_result_path

LABELS_KIND = "labels"


def write_labels(
    path: str | Path,
    labels: np.ndarray,
    voxel_size: VoxelSize,
    provenance: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write integer ``labels`` ``(Z, Y, X)`` or ``(Y, X)`` as a uint8/uint16 TIFF or NIfTI.

    Args:
        path: ``.tif``/``.tiff``/``.nii``/``.nii.gz`` output; must not exist unless ``overwrite``.
        labels: integer array with values in ``[0, 65535]``.
        voxel_size: ``(z, y, x)`` in mm.
        provenance: JSON-serialisable facts about the annotation (e.g. the image it labels).
        overwrite: replace an existing file.

    Returns:
        The path written.
    """
    path = check_result_path(path, overwrite)
    labels = np.asarray(labels)
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise InputError(f"labels must be integers, got dtype {labels.dtype}")
    require_ndim(labels, (2, 3), "labels", "(Y, X) or (Z, Y, X)")
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, 0)
    if low < 0 or high > np.iinfo(np.uint16).max:
        raise InputError(f"label values must lie in 0..65535, got {low}..{high}")
    dtype = np.uint8 if high <= np.iinfo(np.uint8).max else np.uint16
    info = {"kind": LABELS_KIND, "provenance": provenance}
    write = write_nifti if is_nifti_name(path) else write_tiff
    write(path, labels if labels.ndim == 3 else labels[None], voxel_size, info, dtype)
    return path


def read_labels(path: DicomSource) -> tuple[np.ndarray, VoxelSize, dict[str, Any]]:
    """Read a labels TIFF or NIfTI file written by :func:`write_labels`, or a DICOM series
    (folder, list of files) of whole numbers in 0…65535.

    Returns:
        ``(labels, voxel_size, provenance)``: unsigned integers ``(Z, Y, X)``, ``(z, y, x)`` in
        mm (1 mm when the file does not say) and the stored provenance (for DICOM, the
        series' metadata).
    """
    if not isinstance(path, (str, Path)) or is_dicom_source(path):
        return _dicom_labels(path)
    path = require_file(path)
    data, voxel_size, info = (
        read_nifti(path, dtype=None) if is_nifti_name(path) else read_tiff(path)
    )
    if not info or info.get("kind") != LABELS_KIND:
        raise InputError(f"{path}: not a napari-ddip labels file (no labels metadata)")
    if not np.issubdtype(data.dtype, np.unsignedinteger):
        raise InputError(f"{path}: labels must be unsigned integers, got dtype {data.dtype}")
    require_ndim(data, (2, 3), f"{path}: labels", "(Y, X) or (Z, Y, X)")
    return (
        data if data.ndim == 3 else data[None],
        voxel_size or (1.0, 1.0, 1.0),
        info.get("provenance", {}),
    )


def _dicom_labels(source: DicomSource) -> tuple[np.ndarray, VoxelSize, dict[str, Any]]:
    """A DICOM series as uint8/uint16 labels; refused unless every value is a label."""
    values, voxel_size, metadata = read_dicom_series(source)
    whole = np.all(values == np.round(values))
    if not whole or values.min() < 0 or values.max() > np.iinfo(np.uint16).max:
        raise InputError(
            f"{source_name(source)}: not labels: its values ({values.min():g}…{values.max():g}"
            f"{'' if whole else ', not whole numbers'}) must be whole numbers in 0..65535"
        )
    dtype = np.uint8 if values.max() <= np.iinfo(np.uint8).max else np.uint16
    return values.astype(dtype), voxel_size, metadata
