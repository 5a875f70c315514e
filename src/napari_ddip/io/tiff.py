"""Float32 TIFF stacks with a voxel size and a JSON metadata block.

Files are ImageJ hyperstacks ``(Z, Y, X)`` so Fiji and napari show the voxel size (``spacing``
and the X/Y resolution, unit mm); our own metadata is a JSON object stored in the ImageJ
``Info`` field under the key ``"napari_ddip"``. When reading, a plain (non-ImageJ) TIFF whose
image description is a JSON object is accepted too: either ``{"napari_ddip": {...}}`` or the
metadata object itself.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_ddip.io.errors import InputError

META_KEY = "napari_ddip"

VoxelSize = tuple[float, float, float]


def write_tiff(path: Path, data: np.ndarray, voxel_size: VoxelSize, info: dict[str, Any]) -> None:
    """Write ``data`` ``(Z, Y, X)`` as float32, ``voxel_size`` ``(z, y, x)`` in mm, and ``info``."""
    vz, vy, vx = voxel_size
    tifffile.imwrite(
        path,
        np.ascontiguousarray(data, dtype=np.float32),
        imagej=True,
        resolution=(1.0 / vx, 1.0 / vy),
        metadata={
            "axes": "ZYX",
            "spacing": vz,
            "unit": "mm",
            "Info": json.dumps({META_KEY: info}),
        },
    )


def _parse_info(text: str | None) -> dict[str, Any] | None:
    """Our metadata object from a JSON text, or None when there is none."""
    if not text:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    inner = obj.get(META_KEY, obj)
    return inner if isinstance(inner, dict) else None


def read_tiff(path: Path) -> tuple[np.ndarray, VoxelSize | None, dict[str, Any] | None]:
    """Read a TIFF stack.

    Returns:
        ``(data, voxel_size, info)``: the first series as stored, the voxel size ``(z, y, x)``
        in file units when the file is an ImageJ stack with spacing (else None), and our JSON
        metadata object (else None).
    """
    try:
        with tifffile.TiffFile(path) as tif:
            data = tif.series[0].asarray()
            page = tif.pages[0]
            ij = tif.imagej_metadata
            if ij is not None:
                info = _parse_info(ij.get("Info"))
                voxel_size = _imagej_voxel_size(ij, page)
            else:
                info = _parse_info(page.description)
                voxel_size = None
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as exc:
        raise InputError(f"{path}: not a readable TIFF file ({exc})") from None
    return data, voxel_size, info


def _imagej_voxel_size(ij: dict[str, Any], page: tifffile.TiffPage) -> VoxelSize | None:
    """``(z, y, x)`` spacing of an ImageJ stack, or None if it has no spacing."""
    if "spacing" not in ij:
        return None
    xres, yres = page.resolution
    return float(ij["spacing"]), 1.0 / float(yres), 1.0 / float(xres)
