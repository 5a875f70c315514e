"""npe2 readers: measurement files (HDF5 fastMRI k-space, Data Exchange projections and ISMRMRD
raw data among them), result / labels TIFFs, NIfTI volumes and DICOM series.

Each ``get_*_reader(path)`` looks at the file without reading its data and returns a reader
function only for files it understands, else None (never raises for a foreign file). Reader
functions return napari layer data (see :mod:`napari_ddip.viewer.layers`); a file that looked
right but fails validation raises :class:`~napari_ddip.io.InputError` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from napari_ddip.io import is_measurement_file, load_measurement, read_labels, read_volume
from napari_ddip.io.dicom import DicomSource, is_dicom_source
from napari_ddip.io.labels import LABELS_KIND
from napari_ddip.io.nifti import file_stem, is_nifti_file, read_nifti_info
from napari_ddip.io.tiff import read_tiff_info
from napari_ddip.io.volume import RESULT_SUFFIXES
from napari_ddip.viewer.layers import LayerData, labels_layer, measurement_layer, volume_layer

PathOrPaths = str | Sequence[str]
Reader = Callable[[PathOrPaths], list[LayerData]]


def _single(path: PathOrPaths) -> Path | None:
    """The one path napari passed (a list of one is unwrapped), or None for several."""
    if isinstance(path, str):
        return Path(path)
    return Path(path[0]) if len(path) == 1 else None


def get_measurement_reader(path: PathOrPaths) -> Reader | None:
    """Reader for a CT sinogram or MRI k-space measurement file (``.npz``, CT ``.tif``, HDF5
    fastMRI k-space, Data Exchange projections or ISMRMRD raw data)."""
    single = _single(path)
    return _read_measurement if single and is_measurement_file(single) else None


def get_volume_reader(path: PathOrPaths) -> Reader | None:
    """Reader for a result volume or labels file written by napari-ddip (TIFF, NIfTI), or
    any NIfTI volume."""
    single = _single(path)
    if single is not None and is_nifti_file(single):
        info = read_nifti_info(single) or {}
        return _read_labels if info.get("kind") == LABELS_KIND else _read_volume
    if single is None or single.suffix.lower() not in RESULT_SUFFIXES:
        return None
    info = read_tiff_info(single, require_key=True)
    if info is None or "geometry" in info:  # not ours, or a sinogram (measurement reader)
        return None
    return _read_labels if info.get("kind") == LABELS_KIND else _read_volume


def get_dicom_reader(path: PathOrPaths) -> Reader | None:
    """Reader for a DICOM series: a folder of slices, one slice file, or several (napari's
    stacked open)."""
    return _read_dicom if is_dicom_source(_dicom_source(path)) else None


def _dicom_source(path: PathOrPaths) -> DicomSource:
    """One path, or the list napari passed."""
    single = _single(path)
    return single if single is not None else [Path(p) for p in path]


def _read_dicom(path: PathOrPaths) -> list[LayerData]:
    source = _dicom_source(path)
    volume = read_volume(source)
    name = source.name if isinstance(source, Path) and source.is_dir() else None
    name = name or (file_stem(source) if isinstance(source, Path) else source[0].parent.name)
    return [volume_layer(volume.data, volume.voxel_size, name, volume.metadata)]


def _read_measurement(path: PathOrPaths) -> list[LayerData]:
    single = _single(path)
    return [measurement_layer(load_measurement(single), single.stem)]


def _read_volume(path: PathOrPaths) -> list[LayerData]:
    single = _single(path)
    volume = read_volume(single)
    return [volume_layer(volume.data, volume.voxel_size, file_stem(single), volume.metadata)]


def _read_labels(path: PathOrPaths) -> list[LayerData]:
    single = _single(path)
    labels, voxel_size, provenance = read_labels(single)
    return [labels_layer(labels, voxel_size, file_stem(single), provenance)]
