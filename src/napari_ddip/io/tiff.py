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


def write_tiff(
    path: Path,
    data: np.ndarray,
    voxel_size: VoxelSize,
    info: dict[str, Any],
    dtype: type[np.generic] = np.float32,
) -> None:
    """Write ``data`` ``(Z, Y, X)`` as ``dtype``, ``voxel_size`` ``(z, y, x)`` in mm, and ``info``.

    ``dtype`` must be one ImageJ stores: float32 (volumes), uint8 or uint16 (labels).
    """
    vz, vy, vx = voxel_size
    tifffile.imwrite(
        path,
        np.ascontiguousarray(data, dtype=dtype),
        imagej=True,
        resolution=(1.0 / vx, 1.0 / vy),
        metadata={
            "axes": "ZYX",
            "spacing": vz,
            "unit": "mm",
            "Info": json.dumps({META_KEY: info}),
        },
    )


def parse_info(text: str | None, require_key: bool = False) -> dict[str, Any] | None:
    """Our metadata object from a JSON text, or None when there is none; with ``require_key``
    only a ``{"napari_ddip": {...}}`` object counts (not any JSON, e.g. tifffile's shape)."""
    if not text:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or (require_key and META_KEY not in obj):
        return None
    inner = obj.get(META_KEY, obj)
    return inner if isinstance(inner, dict) else None


def read_tiff_info(path: Path, require_key: bool = False) -> dict[str, Any] | None:
    """Our JSON metadata object of a TIFF file without reading its pixels; None when the file
    has none or is not a readable TIFF (never raises for a foreign file). ``require_key``: see
    :func:`parse_info`."""
    try:
        with tifffile.TiffFile(path) as tif:
            return _file_info(tif, require_key)
    except Exception:  # any failure to parse means: not a TIFF of ours
        return None


def check_tiff(path: Path) -> None:
    """Raise :class:`InputError` unless ``path`` opens as a TIFF with at least one image (its
    header and first page are read, not its pixels)."""
    try:
        with tifffile.TiffFile(path) as tif:
            n_series = len(tif.series)
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as exc:
        raise InputError(f"{path}: not a readable TIFF file ({exc})") from None
    if n_series == 0:
        raise InputError(f"{path}: not a readable TIFF file (it holds no image)")


def _file_info(tif: tifffile.TiffFile, require_key: bool = False) -> dict[str, Any] | None:
    """Our metadata from the ImageJ ``Info`` field, else from the first image description."""
    ij = tif.imagej_metadata
    text = ij.get("Info") if ij is not None else tif.pages[0].description
    return parse_info(text, require_key)


def read_tiff(path: Path) -> tuple[np.ndarray, VoxelSize | None, dict[str, Any] | None]:
    """Read a TIFF stack.

    Returns:
        ``(data, voxel_size, info)``: the first series as stored, the voxel size ``(z, y, x)``
        in file units when the file is an ImageJ stack with spacing (else None), and our JSON
        metadata object (else None). A file with colour samples per pixel (RGB, RGBA) is
        refused: its channels would otherwise read as slices.
    """
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            data = None if "S" in axes else series.asarray()
            ij = tif.imagej_metadata
            info = _file_info(tif)
            voxel_size = None if ij is None else _imagej_voxel_size(ij, tif.pages[0])
    except (tifffile.TiffFileError, ValueError, OSError, IndexError) as exc:
        raise InputError(f"{path}: not a readable TIFF file ({exc})") from None
    if data is None:
        raise InputError(
            f"{path}: TIFF has {series.shape[axes.index('S')]} colour samples per pixel "
            f"(axes {axes}); save it as a greyscale (minisblack) stack"
        )
    return data, voxel_size, info


def _imagej_voxel_size(ij: dict[str, Any], page: tifffile.TiffPage) -> VoxelSize | None:
    """``(z, y, x)`` spacing of an ImageJ stack, or None if it has no spacing."""
    if "spacing" not in ij:
        return None
    xres, yres = page.resolution
    return float(ij["spacing"]), 1.0 / float(yres), 1.0 / float(xres)
