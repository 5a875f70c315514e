"""DICOM series (reference volumes): a folder of slices, a list of slice files, or one file.

Every file is read with pydicom; files without the ``DICM`` marker and files without pixel
data (a ``DICOMDIR``, a report) in a folder are passed over. The slices must belong to one
series (one ``SeriesInstanceUID``), share their size and orientation, and sit at distinct
positions. They are sorted by their position along the slice normal
``n = row direction × column direction`` (``ImageOrientationPatient``), i.e. ``z = n ·
ImagePositionPatient``, ascending; slices without position fall back to ``InstanceNumber``.
Each slice's modality LUT (``RescaleSlope``/``RescaleIntercept``) is applied, so CT stays in
Hounsfield units, as float32. The volume is ``(Z, Y, X)`` in the stored row/column order (not
reoriented); the voxel size is ``PixelSpacing`` (row spacing → y, column spacing → x) and the
median distance between sorted slice positions (one slice: ``SpacingBetweenSlices`` or
``SliceThickness``; else 1 mm, as the metadata says). Multi-frame (enhanced) files are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_ddip.io.errors import InputError
from napari_ddip.io.tiff import VoxelSize

DICOM_SUFFIXES = (".dcm", ".dicom")
#: Bytes 128–131 of a DICOM Part 10 file.
MAGIC = b"DICM"
#: Tolerance (mm, and for direction cosines) when comparing slice geometry.
TOLERANCE = 1e-3

DicomSource = str | Path | Sequence[str | Path]


def is_dicom_file(path: str | Path) -> bool:
    """Whether ``path`` is a file with the DICOM Part 10 marker; never raises."""
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == MAGIC
    except OSError:
        return False


def is_dicom_source(source: DicomSource) -> bool:
    """Whether ``source`` is a DICOM file, a folder holding one, or a list of DICOM files; looks
    at the files' first bytes only and never raises."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            try:
                return any(is_dicom_file(p) for p in path.iterdir() if p.is_file())
            except OSError:
                return False
        return is_dicom_file(path)
    return len(source) > 0 and all(is_dicom_file(p) for p in source)


def read_dicom_series(source: DicomSource) -> tuple[np.ndarray, VoxelSize, dict[str, Any]]:
    """Read a DICOM series (see the module docstring).

    Returns:
        ``(volume, voxel_size, metadata)``: float32 ``(Z, Y, X)`` after the modality LUT,
        ``(z, y, x)`` in mm, and facts about the series (modality, units, slice count, how the
        slices were ordered), with no patient data.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    files = _files(source)
    slices = []
    for path in files:
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise InputError(f"{path}: not a readable DICOM file ({exc})") from None
        if "PixelData" in ds:
            slices.append((path, ds))
    if not slices:
        raise InputError(f"{source_name(source)}: no DICOM image (no file holds pixel data)")
    _check_one_series(slices, source)
    order, positions, how = _slice_order([ds for _, ds in slices], source)
    slices = [slices[i] for i in order]
    images = [_pixels(path, ds) for path, ds in slices]
    if len({image.shape for image in images}) != 1:
        sizes = sorted({f"{s[1]}×{s[0]}" for s in (image.shape for image in images)})
        raise InputError(f"{source_name(source)}: the slices differ in size ({', '.join(sizes)})")
    first = slices[0][1]
    voxel_size, z_from = _voxel_size(first, positions, source)
    modality = str(first.get("Modality", ""))
    units = str(first.get("RescaleType", "")) or ("HU" if modality == "CT" else "")
    metadata = {
        "format": "DICOM series",
        "source": source_name(source),
        "modality": modality,
        "units": units,
        "series_description": str(first.get("SeriesDescription", "")),
        "slices": len(slices),
        "slice_order": how,
        "slice_spacing": z_from,
    }
    return np.stack(images).astype(np.float32), voxel_size, metadata


def source_name(source: DicomSource) -> str:
    """How ``source`` is named in messages."""
    if isinstance(source, (str, Path)):
        return str(source)
    return f"{source[0]} (and {len(source) - 1} more)" if len(source) > 1 else str(source[0])


def _files(source: DicomSource) -> list[Path]:
    """The DICOM files of a folder (sorted by name), a list, or one file."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and is_dicom_file(p))
            if not files:
                raise InputError(f"{path}: the folder holds no DICOM file")
            return files
        paths = [path]
    else:
        paths = [Path(p) for p in source]
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        if not is_dicom_file(path):
            raise InputError(f"{path}: not a DICOM file (no DICM marker)")
    return paths


def _check_one_series(slices: list[tuple[Path, Any]], source: DicomSource) -> None:
    """Refuse files from several series, and multi-frame files."""
    series = {str(ds.get("SeriesInstanceUID", "")) for _, ds in slices}
    if len(series) > 1:
        raise InputError(
            f"{source_name(source)}: the files belong to {len(series)} series; "
            "give the files of one"
        )
    for path, ds in slices:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise InputError(f"{path}: multi-frame (enhanced) DICOM is not supported")


def _slice_order(
    datasets: list[Any], source: DicomSource
) -> tuple[list[int], np.ndarray | None, str]:
    """Order of the slices, their positions along the normal (mm, sorted; None without
    positions), and how they were ordered."""
    have_position = all(
        "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds for ds in datasets
    )
    if not have_position:
        numbers = [int(ds.get("InstanceNumber", i) or i) for i, ds in enumerate(datasets)]
        return sorted(range(len(datasets)), key=numbers.__getitem__), None, "InstanceNumber"
    orientations = np.array([[float(v) for v in ds.ImageOrientationPatient] for ds in datasets])
    if orientations.shape[1] != 6 or np.abs(orientations - orientations[0]).max() > TOLERANCE:
        raise InputError(f"{source_name(source)}: the slices differ in orientation")
    normal = np.cross(orientations[0, :3], orientations[0, 3:])
    positions = np.array([[float(v) for v in ds.ImagePositionPatient] for ds in datasets]) @ normal
    order = np.argsort(positions, kind="stable")
    positions = positions[order]
    repeated = np.flatnonzero(np.diff(positions) < TOLERANCE)
    if repeated.size:
        raise InputError(
            f"{source_name(source)}: two slices at {positions[repeated[0]]:.3f} mm along the slice "
            "normal (repeated slices, or files of several acquisitions)"
        )
    return order.tolist(), positions, "position along the slice normal"


def _pixels(path: Path, ds: Any) -> np.ndarray:
    """The slice's pixels ``(Y, X)`` after its modality LUT (rescale slope and intercept)."""
    from pydicom.pixels import apply_modality_lut

    try:
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom raises several types for unsupported encodings
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: its pixel data cannot be decoded ({reason})") from None
    if pixels.ndim != 2:
        raise InputError(f"{path}: pixel data of shape {pixels.shape}; a grey-value slice is 2D")
    return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)


def _voxel_size(
    ds: Any, positions: np.ndarray | None, source: DicomSource
) -> tuple[VoxelSize, str]:
    """``(z, y, x)`` mm and where ``z`` came from."""
    try:
        row, column = (float(v) for v in ds.get("PixelSpacing", (1.0, 1.0)))
    except (TypeError, ValueError):
        raise InputError(f"{source_name(source)}: PixelSpacing is not two numbers") from None
    if positions is not None and positions.size > 1:
        z, how = float(np.median(np.diff(positions))), "slice positions"
    else:
        for key in ("SpacingBetweenSlices", "SliceThickness"):
            if ds.get(key) not in (None, "") and float(ds.get(key)) > 0:
                z, how = float(ds.get(key)), key
                break
        else:
            z, how = 1.0, "not in the files: 1 mm assumed"
    if min(row, column) <= 0:
        raise InputError(
            f"{source_name(source)}: PixelSpacing must be positive, got {row}, {column}"
        )
    return (z, row, column), how
