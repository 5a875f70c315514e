"""Annotation (label) volumes as ImageJ TIFF stacks with a voxel size.

A labels volume is ``(Z, Y, X)`` (a 2D image is one slice) of non-negative integers, stored as
uint8 when every label fits, else uint16 (ImageJ has no wider unsigned type). Our metadata
block is ``{"kind": "labels", "provenance": {...}}`` so the napari reader gives back a labels
layer, not an image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

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


def read_labels(path: str | Path) -> tuple[np.ndarray, VoxelSize, dict[str, Any]]:
    """Read a labels TIFF or NIfTI file written by :func:`write_labels`.

    Returns:
        ``(labels, voxel_size, provenance)``: unsigned integers ``(Z, Y, X)``, ``(z, y, x)`` in
        mm (1 mm when the file does not say) and the stored provenance.
    """
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
