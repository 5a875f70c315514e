"""Measurement files: a CT sinogram or MRI k-space together with its geometry.

In memory a :class:`Measurement` holds (shapes per docs/architecture.md §2):

- CT: ``data`` float32 ``(Z, V, D)`` line integrals; ``geometry`` is
  :meth:`CTGeometry.to_dict <napari_ddip.physics.ct_geometry.CTGeometry.to_dict>`
  (``image_size`` and ``angles_deg`` required, ``n_det``, ``det_spacing``, ``fbp_filter``
  optional), checked by :class:`~napari_ddip.physics.ct_geometry.CTGeometry` itself.
- MRI: ``data`` complex64 ``(Z, ky, kx)`` single-coil or ``(Z, C, ky, kx)`` multi-coil,
  centred, orthonormal FFT; ``mask`` float32 0/1 ``(ky, kx)`` or ``(Z, ky, kx)``; ``maps``
  complex64 ``(Z, C, ky, kx)`` or None (estimated by ESPIRiT at reconstruction);
  ``geometry`` is :meth:`MRIOperator.geometry` (a summary; ``image_shape`` ``[ky, kx]``
  is checked when present).

On disk (``.npz``, no pickles): arrays ``data``, ``mask``, ``maps`` (when present) and the
strings ``kind`` (``"ct"``/``"mri"``), ``geometry`` (JSON) and ``metadata`` (JSON with
``voxel_size`` ``[z, y, x]`` in mm and ``provenance``). A CT sinogram may also be a TIFF stack
``(Z, V, D)`` whose metadata (see :mod:`napari_ddip.io.tiff`) holds
``{"kind": "ct", "geometry": {...}}``. Read (not written) from HDF5 files, told apart by
their content: fastMRI-style k-space (:mod:`napari_ddip.io.hdf5`), Data Exchange tomography
projections (:mod:`napari_ddip.io.dxchange`) and ISMRMRD raw data (:mod:`napari_ddip.io.mrd`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_ddip.io.dxchange import RowRange, dxchange_fields, is_dxchange_h5
from napari_ddip.io.errors import (
    InputError,
    require_file,
    require_finite,
    require_ndim,
    require_new_output,
    require_nonempty,
    require_suffix,
)
from napari_ddip.io.hdf5 import HDF5_SUFFIXES, KSPACE_AXES, is_kspace_h5, kspace_h5_fields
from napari_ddip.io.mrd import is_mrd_h5, mrd_fields
from napari_ddip.io.npz import read_npz
from napari_ddip.io.tiff import VoxelSize, read_tiff, read_tiff_info, write_tiff
from napari_ddip.physics.ct_geometry import REQUIRED as CT_REQUIRED
from napari_ddip.physics.ct_geometry import CTGeometry, positive_int

KINDS = ("ct", "mri")
MEASUREMENT_SUFFIXES = (".npz", ".tif", ".tiff")  # written and read
READABLE_SUFFIXES = MEASUREMENT_SUFFIXES + HDF5_SUFFIXES
#: Names of the sinogram axes, for messages (k-space: ``KSPACE_AXES``).
CT_AXES = ("slices", "views", "detector bins")


@dataclass
class Measurement:
    """A validated measurement (see the module docstring for shapes).

    Construction checks shapes, dtypes, finiteness and geometry and raises
    :class:`InputError` with a message for the user when something does not fit.
    """

    kind: str
    data: np.ndarray
    geometry: dict[str, Any]
    mask: np.ndarray | None = None
    maps: np.ndarray | None = None
    voxel_size: VoxelSize = (1.0, 1.0, 1.0)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Arrays from elsewhere (a CPU torch tensor, a list) become numpy arrays here.
        self.data = np.asarray(self.data)
        self.mask = None if self.mask is None else np.asarray(self.mask)
        self.maps = None if self.maps is None else np.asarray(self.maps)
        if self.kind not in KINDS:
            raise InputError(f"measurement kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "ct":
            self._check_ct()
        else:
            self._check_mri()
        self.voxel_size = _check_voxel_size(self.voxel_size)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape ``(Z, Y, X)`` of the volume this measurement reconstructs to."""
        if self.kind == "ct":
            n = int(self.geometry["image_size"])
            return (self.data.shape[0], n, n)
        return (self.data.shape[0], *self.data.shape[-2:])

    def _check_ct(self) -> None:
        data = self.data
        if np.iscomplexobj(data):
            raise InputError("CT sinogram is complex; it must be real (line integrals)")
        _require_numeric(data, "CT sinogram")
        require_ndim(data, (3,), "CT sinogram", "(Z, views, detectors)")
        require_nonempty(data, "CT sinogram", CT_AXES)
        self.data = np.asarray(data, dtype=np.float32)
        require_finite(self.data, "CT sinogram")
        if self.mask is not None or self.maps is not None:
            raise InputError("a CT measurement has no sampling mask or coil maps")
        _check_ct_geometry(self.geometry, self.data.shape)

    def _check_mri(self) -> None:
        data = self.data
        if not np.iscomplexobj(data):
            raise InputError(f"MRI k-space must be complex, got real data ({data.dtype})")
        require_ndim(data, (3, 4), "MRI k-space", "(Z, ky, kx) or (Z, coils, ky, kx)")
        require_nonempty(data, "MRI k-space", KSPACE_AXES[data.ndim])
        self.data = np.asarray(data, dtype=np.complex64)
        require_finite(self.data, "MRI k-space")
        nz, (ny, nx) = data.shape[0], data.shape[-2:]
        if self.mask is None:
            raise InputError("MRI k-space needs its sampling mask")
        self.mask = _check_mask(self.mask, nz, ny, nx)
        if self.maps is not None:
            self.maps = _check_maps(self.maps, data.shape)
        _check_mri_geometry(self.geometry, ny, nx)


def _check_voxel_size(voxel_size: Any) -> VoxelSize:
    """``(z, y, x)`` positive floats (mm)."""
    try:
        vz, vy, vx = (float(v) for v in voxel_size)
    except (TypeError, ValueError):
        raise InputError(
            f"voxel size must be three numbers (z, y, x), got {voxel_size!r}"
        ) from None
    if min(vz, vy, vx) <= 0 or not all(map(math.isfinite, (vz, vy, vx))):
        raise InputError(f"voxel size must be positive, got {voxel_size!r}")
    return vz, vy, vx


def _require_numeric(array: np.ndarray, what: str) -> None:
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(f"{what} has non-numeric dtype {array.dtype}")


def _check_ct_geometry(geometry: Any, shape: tuple[int, ...]) -> None:
    """Raise unless ``geometry`` is a :class:`CTGeometry` of a sinogram of ``shape``
    ``(Z, V, D)``."""
    try:
        CTGeometry.from_dict(geometry).check_sinogram(shape)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _check_mri_geometry(geometry: Any, ny: int, nx: int) -> None:
    """Raise unless ``geometry`` is a JSON object whose ``image_shape`` (optional) is a pair of
    positive integers equal to the k-space size ``ny × nx``."""
    if not isinstance(geometry, dict):
        raise InputError("MRI geometry must be a JSON object")
    if "image_shape" not in geometry:
        return
    size = geometry["image_shape"]
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise InputError(f"MRI geometry image_shape must be a pair [ky, kx], got {size!r}")
    try:
        shape = [positive_int(n, "MRI geometry image_shape") for n in size]
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if shape != [ny, nx]:
        raise InputError(f"MRI geometry image_shape {size} does not match k-space {ny}×{nx}")


def _check_mask(mask: np.ndarray, nz: int, ny: int, nx: int) -> np.ndarray:
    """The mask as float32 0/1 ``(ky, kx)`` or ``(Z, ky, kx)``, sampling at least one point
    (of every slice, for a per-slice mask)."""
    mask = np.asarray(mask)
    if mask.shape not in ((ny, nx), (nz, ny, nx)):
        raise InputError(
            f"sampling mask has shape {mask.shape}; "
            f"k-space needs ({ny}, {nx}) or ({nz}, {ny}, {nx})"
        )
    if mask.dtype != np.bool_:
        _require_numeric(mask, "sampling mask")
    values = np.abs(mask) if np.iscomplexobj(mask) else mask
    if not np.all((values == 0) | (values == 1)):
        raise InputError("sampling mask must hold only 0 and 1")
    sampled = values.reshape(-1, ny * nx).any(axis=1)  # per mask slice
    if not sampled.any():
        raise InputError("sampling mask is zero everywhere: it samples no k-space point")
    if not sampled.all():
        empty = np.flatnonzero(~sampled)
        raise InputError(
            f"sampling mask is zero on {empty.size} slice(s) (first: slice {empty[0]}); "
            "every slice needs at least one sampled k-space point"
        )
    return values.astype(np.float32)


def _check_maps(maps: np.ndarray, kspace_shape: tuple[int, ...]) -> np.ndarray:
    """Coil maps as complex64 ``(Z, C, Y, X)`` matching multi-coil k-space."""
    if len(kspace_shape) != 4:
        raise InputError("coil maps were given but the k-space is single-coil (Z, ky, kx)")
    maps = np.asarray(maps)
    if maps.shape != kspace_shape:
        raise InputError(f"coil maps have shape {maps.shape}; k-space needs {kspace_shape}")
    _require_numeric(maps, "coil maps")
    maps = maps.astype(np.complex64)
    require_finite(maps, "coil maps")
    if not maps.any():
        raise InputError("coil maps are zero everywhere: no coil sees the image")
    return maps


def save_measurement(path: str | Path, m: Measurement, overwrite: bool = False) -> Path:
    """Write ``m`` to ``.npz`` (CT or MRI) or ``.tif``/``.tiff`` (CT only); returns the path."""
    path = check_measurement_path(path, m.kind, overwrite)
    if path.suffix.lower() == ".npz":
        arrays = {"mask": m.mask, "maps": m.maps}
        np.savez(
            path,
            kind=np.array(m.kind),
            data=m.data,
            geometry=np.array(json.dumps(m.geometry)),
            metadata=np.array(json.dumps(_metadata(m))),
            **{k: v for k, v in arrays.items() if v is not None},
        )
    else:
        info = {"kind": "ct", "geometry": m.geometry, **_metadata(m)}
        write_tiff(path, m.data, m.voxel_size, info)
    return path


def check_measurement_path(path: str | Path, kind: str, overwrite: bool = False) -> Path:
    """``path`` if a ``kind`` measurement may be written there (new unless ``overwrite``)."""
    path = require_new_output(path, overwrite)
    suffix = require_suffix(path, MEASUREMENT_SUFFIXES, "a measurement file")
    if kind == "mri" and suffix != ".npz":
        raise InputError(f"{path}: MRI k-space is complex; write it as .npz")
    return path


def _metadata(m: Measurement) -> dict[str, Any]:
    return {"voxel_size": list(m.voxel_size), "provenance": m.provenance}


def is_measurement_file(path: str | Path) -> bool:
    """Whether ``path`` looks like a measurement file, judged without reading its data: a
    ``.npz`` with ``kind``, ``data`` and ``geometry`` arrays, a TIFF with our metadata
    holding a ``geometry``, or an HDF5 file with a complex ``kspace`` dataset, Data Exchange
    projections or ISMRMRD raw data. Never raises (a foreign or broken file is simply not
    one)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READABLE_SUFFIXES or not path.is_file():
        return False
    if suffix in HDF5_SUFFIXES:
        return is_kspace_h5(path) or is_dxchange_h5(path) or is_mrd_h5(path)
    if suffix != ".npz":
        return "geometry" in (read_tiff_info(path) or {})
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {"kind", "data", "geometry"} <= set(npz.files)
    except Exception:  # any failure to parse means: not a measurement of ours
        return False


def load_measurement(
    path: str | Path, rows: str | RowRange | None = None, centre: float | None = None
) -> Measurement:
    """Read and validate a measurement file (``.npz``, a CT sinogram ``.tif``/``.tiff``, or an
    HDF5 ``.h5``/``.hdf5`` file: fastMRI k-space, Data Exchange projections or ISMRMRD raw
    data).

    ``rows`` (``"100:108"`` or ``(100, 108)``: the detector rows, half-open) and ``centre``
    (the rotation centre, a detector column; estimated when None) apply to Data Exchange
    projections only.
    """
    path = require_file(path)
    suffix = require_suffix(path, READABLE_SUFFIXES, "a measurement file")
    projections = suffix in HDF5_SUFFIXES and is_dxchange_h5(path)
    if (rows is not None or centre is not None) and not projections:
        raise InputError(
            f"{path}: a row range and a rotation centre apply only to Data Exchange projections"
        )
    if suffix == ".npz":
        fields = _npz_fields(path)
    elif projections:
        fields = dxchange_fields(path, rows, centre)
    elif suffix in HDF5_SUFFIXES:
        fields = mrd_fields(path) if is_mrd_h5(path) else _kspace_h5(path)
    else:
        fields = _tiff_fields(path)
    try:
        return Measurement(**fields)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None


def _kspace_h5(path: Path) -> dict[str, Any]:
    """Fields of a fastMRI-style file; an HDF5 file of no known layout is refused by name."""
    if not is_kspace_h5(path):
        raise InputError(
            f"{path}: not a measurement HDF5 file: expected fastMRI k-space (a complex dataset "
            "'kspace' (slices, [coils,] ky, kx)), Data Exchange projections (/exchange/data) "
            "or ISMRMRD raw data (/dataset/xml and /dataset/data)"
        )
    return kspace_h5_fields(path)


def _npz_fields(path: Path) -> dict[str, Any]:
    arrays = read_npz(path)
    missing = [k for k in ("kind", "data", "geometry") if k not in arrays]
    if missing:
        raise InputError(
            f"{path}: not a measurement file: missing {missing} (has {sorted(arrays)}); "
            "make one with 'napari-ddip simulate'"
        )
    meta = _json(arrays.get("metadata", np.array("{}")), "metadata", path)
    return {
        "kind": str(arrays["kind"]),
        "data": arrays["data"],
        "geometry": _json(arrays["geometry"], "geometry", path),
        "mask": arrays.get("mask"),
        "maps": arrays.get("maps"),
        "voxel_size": meta.get("voxel_size", (1.0, 1.0, 1.0)),
        "provenance": meta.get("provenance", {}),
    }


def _tiff_fields(path: Path) -> dict[str, Any]:
    data, _, info = read_tiff(path)
    if not info or "geometry" not in info:
        needed = ", ".join(f"'{k}' ({why})" for k, why in CT_REQUIRED.items())
        raise InputError(
            f"{path}: TIFF has no CT geometry; a sinogram file needs a JSON description "
            f'{{"napari_ddip": {{"kind": "ct", "geometry": {{...}}}}}} with {needed}'
        )
    if info.get("kind", "ct") != "ct":
        raise InputError(f"{path}: a TIFF measurement must be a CT sinogram (k-space needs .npz)")
    return {
        "kind": "ct",
        "data": data,
        "geometry": info["geometry"],
        "voxel_size": info.get("voxel_size", (1.0, 1.0, 1.0)),
        "provenance": info.get("provenance", {}),
    }


def _json(value: np.ndarray, name: str, path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(str(value))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: '{name}' is not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: '{name}' must be a JSON object")
    return obj
