"""Data Exchange HDF5 tomography files (the APS / TomoBank layout): raw projections → sinograms.

Such a file holds the projections ``/exchange/data`` ``(angles, rows, columns)`` (detector
counts), flat fields ``/exchange/data_white`` and dark fields ``/exchange/data_dark``
``(n, rows, columns)``, and the rotation angles ``/exchange/theta`` (degrees or radians, as its
``units`` attribute says; without one, values within ±2π are read as radians). Each row
``r`` of the detector is one slice: its line integrals are (Beer–Lambert)

    p = −log((P − D̄) / (F̄ − D̄)),

with D̄ and F̄ the mean dark and flat field (no darks: D̄ = 0, said in one warning line).
Transmission that is zero or negative (a dead pixel, counts at or below the dark) is set to the
smallest positive transmission of the rows read and reported in one warning line.

The projector (:class:`~napari_ddip.physics.ct.ParallelBeamCT`) has its rotation axis at the
detector centre, so the sinogram is **cropped** (resampled by linear interpolation where the
centre falls between pixels) to the widest detector window centred on the rotation centre
``c`` (a column coordinate, 0 = centre of the first column): ``D' = ⌊2·min(c, C−1−c)⌋ + 1``
columns, and the image is ``D' × D'`` pixels of the detector's size (the field of view is the
circle the detector sees in every view). ``c`` is given, or estimated from the sinogram's centre
of mass: for parallel beams the centre of mass of the projection at angle θ is
``c + x̄ cos θ + ȳ sin θ`` (the object's centre of mass projected), fitted by least squares over
all views, and rounded to 0.01 column. The fit assumes the object stays inside the detector in
every view (no truncation).

Only the requested detector rows are read from the file (h5py slicing), so a few slices of a
large scan load quickly. The voxel size is the effective pixel size from
``/measurement/instrument/detection_system/objective/resolution``, else the detector's
``pixel_size_x`` over the objective's ``magnification`` (unit from the ``units`` attribute,
micrometres without one), else 1 mm is assumed and the provenance says so.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_ddip.io.errors import InputError, InputWarning
from napari_ddip.io.tiff import VoxelSize
from napari_ddip.physics.ct_geometry import CTGeometry

DATA = "exchange/data"
FLAT = "exchange/data_white"
DARK = "exchange/data_dark"
THETA = "exchange/theta"
RESOLUTION = "measurement/instrument/detection_system/objective/resolution"
MAGNIFICATION = "measurement/instrument/detection_system/objective/magnification"
PIXEL_SIZE = "measurement/instrument/detector/pixel_size_x"
#: Millimetres per unit of a length ``units`` attribute.
LENGTH_UNITS = {"m": 1e3, "mm": 1.0, "um": 1e-3, "µm": 1e-3, "micron": 1e-3, "microns": 1e-3}
LENGTH_UNITS |= {"micrometer": 1e-3, "micrometre": 1e-3, "nm": 1e-6}
ANGLE_UNITS = {"deg": "degrees", "degree": "degrees", "degrees": "degrees"}
ANGLE_UNITS |= {"rad": "radians", "radian": "radians", "radians": "radians"}
#: Precision (columns) of an estimated rotation centre.
CENTRE_STEP = 0.01
#: Narrowest detector window (columns) left after centring on the rotation axis.
MIN_COLUMNS = 4

RowRange = tuple[int, int]


def is_dxchange_h5(path: str | Path) -> bool:
    """Whether ``path`` is an HDF5 file with a 3D ``/exchange/data`` dataset; never raises."""
    try:
        with h5py.File(path, "r") as f:
            data = f.get(DATA)
            return isinstance(data, h5py.Dataset) and data.ndim == 3
    except Exception:  # any failure to parse means: not a Data Exchange file
        return False


def parse_rows(rows: str | RowRange | None, n_rows: int) -> RowRange:
    """The half-open detector row range ``(start, stop)`` of ``rows`` (``"100:108"``,
    ``"100:"``, ``":8"``, a pair, or None for all ``n_rows``)."""
    if rows is None:
        return 0, n_rows
    if isinstance(rows, str):
        parts = rows.split(":")
        try:
            if len(parts) != 2:
                raise ValueError
            start = int(parts[0]) if parts[0].strip() else 0
            stop = int(parts[1]) if parts[1].strip() else n_rows
        except ValueError:
            raise InputError(f"rows {rows!r}: give a range START:STOP, e.g. 100:108") from None
    else:
        start, stop = (int(r) for r in rows)
    if not 0 <= start < stop <= n_rows:
        raise InputError(
            f"rows {start}:{stop} do not fit the {n_rows} detector rows (0:{n_rows}); "
            "give START:STOP with 0 ≤ START < STOP"
        )
    return start, stop


def dxchange_fields(
    path: Path, rows: str | RowRange | None = None, centre: float | None = None
) -> dict[str, Any]:
    """The :class:`~napari_ddip.io.measurement.Measurement` fields of a Data Exchange file:
    sinogram float32 ``(rows, views, D')`` of line integrals, its geometry, voxel size and
    provenance (rows read, rotation centre and how it was found, units of the angles, where
    the voxel size came from)."""
    if not is_dxchange_h5(path):
        raise InputError(f"{path}: not a Data Exchange file: it needs a 3D dataset /{DATA}")
    with h5py.File(path, "r") as f:
        n_views, n_rows, n_cols = f[DATA].shape
        if min(n_views, n_rows, n_cols) == 0:
            raise InputError(f"{path}: /{DATA} has shape {f[DATA].shape}: it holds no projection")
        r0, r1 = parse_rows(rows, n_rows)
        flat = _mean_field(f, FLAT, (n_rows, n_cols), (r0, r1), path)
        if flat is None:
            raise InputError(
                f"{path}: no flat fields (/{FLAT}): the projections cannot be normalised to "
                "transmission without them"
            )
        dark = _mean_field(f, DARK, (n_rows, n_cols), (r0, r1), path)
        theta_deg, theta_units = _theta_degrees(f, n_views, path)
        voxel_size, voxel_from = _voxel_size(f)
        projections = np.asarray(f[DATA][:, r0:r1, :], dtype=np.float64)
    if dark is None:
        warnings.warn(
            f"{path}: no dark fields (/{DARK}): dark current taken as 0", InputWarning, stacklevel=2
        )
        dark = np.zeros_like(flat)
    lines = line_integrals(projections, flat, dark, path).transpose(1, 0, 2)  # (R, V, C)
    estimated = centre is None
    if estimated:
        centre = centre_of_mass_centre(lines, np.deg2rad(theta_deg), path)
    sinogram = centred_sinogram(lines, float(centre), path)
    size = sinogram.shape[-1]
    return {
        "kind": "ct",
        "data": sinogram.astype(np.float32),
        "geometry": CTGeometry(size, theta_deg, n_det=size).to_dict(),  # finite angles
        "voxel_size": voxel_size or (1.0, 1.0, 1.0),
        "provenance": {
            "source": path.name,
            "format": "Data Exchange HDF5 projections",
            "rows": [r0, r1],
            "rotation_centre": float(centre),
            "rotation_centre_from": "centre of mass fit" if estimated else "given",
            "detector_window": [round(float(centre) + s * (size - 1) / 2, 6) for s in (-1, 1)],
            "theta_units": theta_units,
            "voxel_size": voxel_from,
        },
    }


def _mean_field(
    f: h5py.File, key: str, shape: tuple[int, int], rows: RowRange, path: Path
) -> np.ndarray | None:
    """The mean over its frames of a flat or dark field ``(n, rows, cols)`` (or one frame
    ``(rows, cols)``), rows ``rows`` only, float64; None when the file has none."""
    field = f.get(key)
    if field is None or (isinstance(field, h5py.Dataset) and field.size == 0):
        return None
    if not isinstance(field, h5py.Dataset) or field.ndim not in (2, 3) or field.shape[-2:] != shape:
        got = field.shape if isinstance(field, h5py.Dataset) else "a group"
        raise InputError(
            f"{path}: /{key} has shape {got}; the projections need (n, {shape[0]}, {shape[1]})"
        )
    r0, r1 = rows
    frames = field[r0:r1, :] if field.ndim == 2 else field[:, r0:r1, :]
    return np.asarray(frames, dtype=np.float64).reshape(-1, r1 - r0, shape[1]).mean(axis=0)


def line_integrals(
    projections: np.ndarray, flat: np.ndarray, dark: np.ndarray, path: Path | str = "projections"
) -> np.ndarray:
    """``−log((P − D̄) / (F̄ − D̄))`` of projections ``(V, R, C)`` with mean fields ``(R, C)``;
    zero or negative transmission is set to the smallest positive one (one warning line)."""
    if not np.all(np.isfinite(projections)):
        raise InputError(f"{path}: the projections contain NaN/Inf values")
    with np.errstate(divide="ignore", invalid="ignore"):
        transmission = (projections - dark) / (flat - dark)
    bad = ~(transmission > 0) | ~np.isfinite(transmission)
    if bad.all():
        raise InputError(
            f"{path}: no projection value has a positive transmission (counts above the dark "
            "field, flat above dark): are data, flats and darks swapped?"
        )
    if bad.any():
        floor = float(transmission[~bad].min())
        warnings.warn(
            f"{path}: {int(bad.sum())} of {bad.size} projection values have zero or negative "
            f"transmission (counts at or below the dark field, or flat ≤ dark); set to the "
            f"smallest measured transmission {floor:.3g}",
            InputWarning,
            stacklevel=2,
        )
        transmission[bad] = floor
    return -np.log(transmission)


def centre_of_mass_centre(sinogram: np.ndarray, angles_rad: np.ndarray, path: Path | str) -> float:
    """Rotation centre (column coordinate) of a sinogram ``(R, V, C)`` by the least-squares fit
    ``com(θ) = c + a cos θ + b sin θ`` of the centre of mass of each view (all rows summed),
    rounded to :data:`CENTRE_STEP` (the fit is no more precise than that)."""
    profiles = sinogram.sum(axis=0)  # (V, C)
    mass = profiles.sum(axis=1)
    usable = mass > 0
    design = np.stack([np.ones_like(angles_rad), np.cos(angles_rad), np.sin(angles_rad)], axis=1)
    design = design[usable]
    if np.linalg.matrix_rank(design) < 3:
        raise InputError(
            f"{path}: the rotation centre cannot be estimated (too few views with signal at "
            "distinct angles); give it (--center COLUMN)"
        )
    columns = np.arange(profiles.shape[1], dtype=np.float64)
    com = (profiles[usable] @ columns) / mass[usable]
    (centre, _, _), *_ = np.linalg.lstsq(design, com, rcond=None)
    return round(float(centre) / CENTRE_STEP) * CENTRE_STEP


def centred_sinogram(sinogram: np.ndarray, centre: float, path: Path | str) -> np.ndarray:
    """The widest window of ``sinogram`` ``(R, V, C)`` centred on column ``centre``: ``D' =
    ⌊2·min(c, C−1−c)⌋ + 1`` columns at ``c + j − (D'−1)/2``, linearly interpolated."""
    n_cols = sinogram.shape[-1]
    half = min(centre, n_cols - 1 - centre) if math.isfinite(centre) else -1.0
    width = math.floor(2 * half + 1e-6) + 1 if half >= 0 else 0
    if width < MIN_COLUMNS:
        raise InputError(
            f"{path}: rotation centre {centre:g} leaves {max(width, 0)} detector column(s) "
            f"around it (the detector has columns 0 to {n_cols - 1}); at least {MIN_COLUMNS} "
            "are needed"
        )
    positions = centre + np.arange(width) - (width - 1) / 2
    low = np.clip(np.floor(positions + 1e-6).astype(np.int64), 0, n_cols - 1)
    high = np.minimum(low + 1, n_cols - 1)
    frac = np.clip(positions - low, 0.0, 1.0)
    return sinogram[..., low] * (1.0 - frac) + sinogram[..., high] * frac


def _theta_degrees(f: h5py.File, n_views: int, path: Path) -> tuple[np.ndarray, str]:
    """Projection angles in degrees, and how their unit was known."""
    theta = f.get(THETA)
    if not isinstance(theta, h5py.Dataset):
        raise InputError(f"{path}: no projection angles (/{THETA})")
    values = np.asarray(theta[()], dtype=np.float64).reshape(-1)
    if values.size != n_views:
        raise InputError(f"{path}: /{THETA} has {values.size} angles but /{DATA} {n_views} views")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{path}: /{THETA} contains NaN/Inf values")
    units = _text(theta.attrs.get("units"))
    if units is not None and units.lower() not in ANGLE_UNITS:
        raise InputError(f"{path}: /{THETA} has units {units!r}; expected degrees or radians")
    if units is not None:
        unit, how = ANGLE_UNITS[units.lower()], f"{ANGLE_UNITS[units.lower()]} (units attribute)"
    else:
        radians = np.abs(values).max() <= 2 * math.pi + 1e-6
        unit = "radians" if radians else "degrees"
        how = f"{unit} (no units attribute; {'within' if radians else 'beyond'} ±2π)"
    return (np.rad2deg(values) if unit == "radians" else values), how


def _voxel_size(f: h5py.File) -> tuple[VoxelSize | None, str]:
    """Isotropic voxel size (mm) from the effective pixel size, and where it came from."""
    resolution = _length_mm(f.get(RESOLUTION))
    if resolution is not None:
        return (resolution,) * 3, f"/{RESOLUTION}"
    pixel = _length_mm(f.get(PIXEL_SIZE))
    magnification = _scalar(f.get(MAGNIFICATION))
    if pixel is not None:
        if magnification is not None and magnification > 0:
            size = pixel / magnification
            return (size,) * 3, f"/{PIXEL_SIZE} / {MAGNIFICATION.rsplit('/', 1)[-1]}"
        return (pixel,) * 3, f"/{PIXEL_SIZE}"
    return None, "not in the file: 1 mm assumed"


def _length_mm(dataset: Any) -> float | None:
    """A positive length dataset in mm (its ``units`` attribute, µm without one)."""
    value = _scalar(dataset)
    if value is None or value <= 0:
        return None
    units = _text(dataset.attrs.get("units")) or "um"
    scale = LENGTH_UNITS.get(units.strip().lower())
    return None if scale is None else value * scale


def _scalar(dataset: Any) -> float | None:
    """The one finite number a dataset holds, else None."""
    if not isinstance(dataset, h5py.Dataset) or dataset.size != 1:
        return None
    try:
        value = float(np.asarray(dataset[()]).reshape(-1)[0])
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _text(value: Any) -> str | None:
    """An HDF5 string attribute (bytes, str or a one-element array of either) as str."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size == 1 else None
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    return value if isinstance(value, str) else None
