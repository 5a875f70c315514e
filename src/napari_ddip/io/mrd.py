"""ISMRMRD / MRD raw-data files (``.h5``): Cartesian k-space ``(Z, [coils,] ky, kx)``.

An ISMRMRD HDF5 file holds a group (``/dataset``) with the XML header ``xml`` and the
acquisitions ``data`` (one readout line each, ``(coils, samples)`` complex, with its header).
The XML header is parsed with the ``ismrmrd`` package's schema; its one encoding gives the
encoded matrix ``(x, y, z)`` and field of view (mm). Each imaging acquisition is one line of
k-space: readout samples along ``kx`` (placed so that its ``center_sample`` falls at
``x // 2``), ``kspace_encode_step_1`` along ``ky`` (its centre, ``encodingLimits`` ``center``,
at ``y // 2``), and ``slice`` (multi-slice 2D, ordered along the slice normal by the
acquisitions' positions) or ``kspace_encode_step_2`` (3D) along ``Z``. Lines acquired more than
once (averages) are averaged; parallel-imaging calibration lines fill lines that were not
otherwise acquired (they give ESPIRiT its fully sampled centre). Noise, navigator, phase
correction, feedback and dummy-scan acquisitions are skipped.

3D acquisitions become slices by a centred orthonormal inverse FFT along ``kz``; that is exact
only when every acquired ``ky`` line is acquired at every ``kz`` (undersampling along ``ky``
alone), which is checked. The sampling mask is the ``(ky, kx)`` positions acquired (one per
slice when they differ). The image axes are ``(Z, Y, X)`` = (slices, phase encoding,
readout); the voxel size is the field of view over the matrix (``z``: the distance between
slice positions for several 2D slices). Multi-coil k-space gets ESPIRiT coil maps at
reconstruction, as fastMRI files do.

Refused, by name: non-Cartesian trajectories (radial, spiral, golden angle, EPI, other, or
acquisitions carrying a trajectory), several encodings, several contrasts (multi-echo),
cardiac phases, repetitions or sets, and 3D multi-slab (several slices with ``kz``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np

from napari_ddip.io.errors import InputError
from napari_ddip.io.tiff import VoxelSize

XML, DATA = "xml", "data"
#: ISMRMRD flag numbers (bit ``n − 1`` of the acquisition's ``flags``).
IS_REVERSE = 22
IS_PARALLEL_CALIBRATION = 20
SKIPPED_FLAGS = {
    19: "noise measurement",
    23: "navigation",
    24: "phase correction",
    26: "HP feedback",
    27: "dummy scan",
    28: "RT feedback",
    29: "surface coil correction",
    30: "phase stabilisation reference",
    31: "phase stabilisation",
}
#: Loop counters that must stay 0, and the name a file with more of them is refused under.
REFUSED_COUNTERS = {
    "contrast": "multi-echo / multi-contrast acquisitions (several contrasts)",
    "phase": "multi-phase (cine) acquisitions (several cardiac phases)",
    "repetition": "repeated measurements (several repetitions)",
    "set": "acquisitions with several sets",
}


def mrd_group(path: str | Path) -> str | None:
    """Name of the ISMRMRD dataset group of an HDF5 file (a group with ``xml`` and a compound
    ``data`` with acquisition headers), or None; never raises."""
    try:
        with h5py.File(path, "r") as f:
            for name, group in f.items():
                if not isinstance(group, h5py.Group):
                    continue
                xml, data = group.get(XML), group.get(DATA)
                if isinstance(xml, h5py.Dataset) and isinstance(data, h5py.Dataset):
                    if data.dtype.names and "head" in data.dtype.names:
                        return name
    except Exception:  # any failure to parse means: not an ISMRMRD file
        return None
    return None


def is_mrd_h5(path: str | Path) -> bool:
    """Whether ``path`` is an ISMRMRD raw-data HDF5 file; never raises."""
    return mrd_group(path) is not None


def mrd_fields(path: Path) -> dict[str, Any]:
    """The :class:`~napari_ddip.io.measurement.Measurement` fields of an ISMRMRD file: k-space
    complex64 ``(Z, [coils,] ky, kx)``, mask float32 ``(ky, kx)`` or ``(Z, ky, kx)``, no maps,
    the voxel size of its header, provenance naming the source file."""
    group = mrd_group(path)
    if group is None:
        raise InputError(f"{path}: not an ISMRMRD file: it needs a group with 'xml' and 'data'")
    with h5py.File(path, "r") as f:
        xml = np.asarray(f[group][XML][()]).reshape(-1)
        records = f[group][DATA][()]
    if xml.size != 1:
        raise InputError(f"{path}: /{group}/{XML} must hold one XML header")
    encoding = _encoding(xml[0], path)
    matrix = encoding.encodedSpace.matrixSize
    fov = encoding.encodedSpace.fieldOfView_mm
    nx, ny, nz = int(matrix.x), int(matrix.y), int(matrix.z)
    heads = records["head"]
    imaging = _imaging_acquisitions(heads, path)
    if not imaging.any():
        raise InputError(f"{path}: holds no imaging acquisition")
    heads, samples = heads[imaging], records["data"][imaging]
    n_coils = _one_value(heads["active_channels"], "coil count", path)
    if n_coils == 0:
        raise InputError(f"{path}: the acquisitions have no active coil")
    slices = heads["idx"]["slice"].astype(np.int64)
    if nz > 1 and np.unique(slices).size > 1:
        raise InputError(
            f"{path}: 3D multi-slab acquisitions (several slabs with kz) are not supported"
        )
    slice_ids, slice_of = np.unique(slices, return_inverse=True)
    n_slices = slice_ids.size if nz == 1 else nz
    ky = _index(heads["idx"]["kspace_encode_step_1"], encoding, "kspace_encoding_step_1", ny, path)
    z = (  # the row along Z: kz (3D) or the slice (2D)
        _index(heads["idx"]["kspace_encode_step_2"], encoding, "kspace_encoding_step_2", nz, path)
        if nz > 1
        else slice_of
    )
    kspace, sampled = _assemble(heads, samples, (ky, z), (n_slices, n_coils, ny, nx), path)
    if nz > 1:
        if not np.all(sampled == sampled[:1]):
            raise InputError(
                f"{path}: 3D k-space undersampled along kz: slice-by-slice reconstruction needs "
                "every acquired ky line at every kz"
            )
        kspace = np.fft.fftshift(
            np.fft.ifft(np.fft.ifftshift(kspace, axes=0), axis=0, norm="ortho"), axes=0
        )
        z_size = float(fov.z) / nz
    else:
        order, z_size = _slice_order(heads, slice_of, n_slices, float(fov.z) / nz)
        kspace, sampled = kspace[order], sampled[order]
    mask = sampled[0] if np.all(sampled == sampled[:1]) else sampled
    voxel_size: VoxelSize = (z_size, float(fov.y) / ny, float(fov.x) / nx)
    return {
        "kind": "mri",
        "data": (kspace if n_coils > 1 else kspace[:, 0]).astype(np.complex64),
        "geometry": {
            "kind": "mri",
            "image_shape": [ny, nx],
            "n_coils": n_coils,
            "acceleration": float(1.0 / sampled.mean()),
            "per_slice_mask": mask.ndim == 3,
        },
        "mask": mask.astype(np.float32),
        "voxel_size": voxel_size,
        "provenance": {
            "source": path.name,
            "format": f"ISMRMRD HDF5 raw data ({'3D' if nz > 1 else '2D multi-slice'})",
            "voxel_size": "field of view / matrix of the XML header",
        },
    }


def _encoding(xml: Any, path: Path) -> Any:
    """The one Cartesian encoding of an ISMRMRD XML header (parsed by the ``ismrmrd`` package)."""
    import ismrmrd.xsd

    try:
        header = ismrmrd.xsd.CreateFromDocument(xml)
    except Exception as exc:  # xsdata raises its own parser and schema errors
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(
            f"{path}: the XML header is not a valid ISMRMRD header ({reason})"
        ) from None
    if len(header.encoding) != 1:
        raise InputError(
            f"{path}: {len(header.encoding)} encodings: only files with one encoding are supported"
        )
    encoding = header.encoding[0]
    trajectory = getattr(encoding.trajectory, "value", str(encoding.trajectory))
    if trajectory != "cartesian":
        raise InputError(
            f"{path}: {trajectory} trajectory: only Cartesian acquisitions are supported"
        )
    matrix = encoding.encodedSpace.matrixSize
    fov = encoding.encodedSpace.fieldOfView_mm
    if min(matrix.x, matrix.y, matrix.z) < 1 or min(fov.x, fov.y, fov.z) <= 0:
        raise InputError(f"{path}: the encoded matrix and field of view must be positive")
    return encoding


def _flag(flags: np.ndarray, flag: int) -> np.ndarray:
    """Whether ISMRMRD flag number ``flag`` is set in each of ``flags`` (uint64)."""
    return (flags.astype(np.uint64) & np.uint64(1 << (flag - 1))) != 0


def _imaging_acquisitions(heads: np.ndarray, path: Path) -> np.ndarray:
    """Which acquisitions are k-space lines of the image (not noise, navigators, ...); raises
    for a trajectory or a loop counter this reader refuses."""
    keep = np.ones(heads.shape, bool)
    for flag in SKIPPED_FLAGS:
        keep &= ~_flag(heads["flags"], flag)
    if np.any(heads["trajectory_dimensions"][keep] > 0):
        raise InputError(
            f"{path}: non-Cartesian acquisitions (they carry a k-space trajectory) are not "
            "supported"
        )
    for counter, name in REFUSED_COUNTERS.items():
        if np.any(heads["idx"][counter][keep] > 0):
            raise InputError(f"{path}: {name} are not supported")
    return keep


def _one_value(values: np.ndarray, what: str, path: Path) -> int:
    """The value all acquisitions share."""
    unique = np.unique(values)
    if unique.size != 1:
        raise InputError(f"{path}: the acquisitions differ in {what} ({unique.tolist()})")
    return int(unique[0])


def _index(counter: np.ndarray, encoding: Any, limit: str, size: int, path: Path) -> np.ndarray:
    """K-space row of each acquisition: its encoding counter moved so that the ``limit``'s
    centre (``encodingLimits``; ``size // 2`` without one) falls at ``size // 2``."""
    limits = getattr(encoding.encodingLimits, limit)
    centre = size // 2 if limits is None else int(limits.center)
    index = counter.astype(np.int64) + size // 2 - centre
    if index.min() < 0 or index.max() >= size:
        raise InputError(
            f"{path}: {limit} counters {int(counter.min())}..{int(counter.max())} (centre "
            f"{centre}) do not fit the encoded matrix of {size}"
        )
    return index


def _assemble(
    heads: np.ndarray,
    samples: np.ndarray,
    rows: tuple[np.ndarray, np.ndarray],
    shape: tuple[int, int, int, int],
    path: Path,
) -> tuple[np.ndarray, np.ndarray]:
    """K-space ``(Z, C, ky, kx)`` from the acquisitions at ``rows`` ``(ky, z)`` (imaging lines
    averaged; calibration lines where no imaging line was acquired) and the positions sampled
    ``(Z, ky, kx)``."""
    n_slices, n_coils, ny, nx = shape
    ky, z = rows
    sums = np.zeros((2, n_slices, n_coils, ny, nx), np.complex128)
    counts = np.zeros((2, n_slices, ny, nx), np.int64)  # [imaging, calibration]
    calibration = _flag(heads["flags"], IS_PARALLEL_CALIBRATION).astype(np.int64)
    reverse = _flag(heads["flags"], IS_REVERSE)
    for i, head in enumerate(heads):
        line = np.asarray(samples[i], np.float32).view(np.complex64)
        if line.size != n_coils * int(head["number_of_samples"]):
            raise InputError(
                f"{path}: acquisition {i} holds {line.size} samples, not "
                f"{n_coils} coils × {int(head['number_of_samples'])}"
            )
        line = line.reshape(n_coils, -1)[:, ::-1] if reverse[i] else line.reshape(n_coils, -1)
        start, stop = int(head["discard_pre"]), line.shape[1] - int(head["discard_post"])
        x0 = nx // 2 - (int(head["center_sample"]) - start)
        if stop <= start or x0 < 0 or x0 + stop - start > nx:
            raise InputError(
                f"{path}: acquisition {i} ({line.shape[1]} samples, centre sample "
                f"{int(head['center_sample'])}) does not fit the encoded matrix x = {nx}"
            )
        kind, columns = calibration[i], slice(x0, x0 + stop - start)
        sums[kind, z[i], :, ky[i], columns] += line[:, start:stop]
        counts[kind, z[i], ky[i], columns] += 1
    imaging, calib = counts[0] > 0, counts[1] > 0
    mean = sums / np.maximum(counts, 1)[:, :, None]
    kspace = np.where(imaging[:, None], mean[0], np.where(calib[:, None], mean[1], 0))
    return kspace, imaging | calib


def _slice_order(
    heads: np.ndarray, slice_of: np.ndarray, n_slices: int, thickness: float
) -> tuple[np.ndarray, float]:
    """Order of 2D slices along the slice normal (by their first acquisition's position), and
    the distance between neighbours (the slice thickness for one slice or equal positions)."""
    first = np.array([np.flatnonzero(slice_of == s)[0] for s in range(n_slices)])
    position = np.einsum(
        "ij,ij->i", heads["position"][first].astype(np.float64), heads["slice_dir"][first]
    )
    order = np.argsort(position, kind="stable")
    steps = np.diff(position[order])
    spacing = float(np.median(steps)) if steps.size and np.median(steps) > 0 else thickness
    return order, spacing
