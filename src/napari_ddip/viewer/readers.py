"""npe2 readers: measurement files (HDF5 fastMRI k-space, Data Exchange projections and ISMRMRD
raw data among them), result / labels TIFFs and NIfTI volumes (:func:`get_reader`), and DICOM
series (:func:`get_dicom_reader`).

:func:`get_reader` looks at a file without reading its data (its suffix, then its header:
our JSON metadata, a measurement's arrays, a NIfTI header) and returns the reader function for
what it holds. It returns None only for what is no file of these kinds at all (several paths,
a folder, another suffix); :func:`get_dicom_reader` only for several paths that are not all
DICOM files.

napari's own reader claims every one of these suffixes too, so napari asks this plugin for a
reader only once it has been picked for the file: the user's choice in napari's "which
plugin" dialog, a saved preference, or ``viewer.open(..., plugin="napari-ddip")``. A None
then ends as napari's "refused the file" error with a traceback; so a file with one of these
suffixes that is not one of ours, or is broken, gets a reader that says why in one napari
error notification and opens no layer (npe2's null-layer result ``[(None,)]``). So does a
file that looked right but fails validation (the :class:`~napari_ddip.io.InputError`
message).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from napari.utils.notifications import show_error

from napari_ddip.io import (
    InputError,
    is_measurement_file,
    load_measurement,
    read_labels,
    read_volume,
)
from napari_ddip.io.dicom import DICOM_SUFFIXES, DicomSource, is_dicom_source, read_dicom_series
from napari_ddip.io.labels import LABELS_KIND
from napari_ddip.io.measurement import READABLE_SUFFIXES
from napari_ddip.io.nifti import file_stem, is_nifti_file, is_nifti_name, read_nifti_info
from napari_ddip.io.tiff import check_tiff, read_tiff_info
from napari_ddip.viewer.layers import LayerData, labels_layer, measurement_layer, volume_layer

PathOrPaths = str | Sequence[str]
Reader = Callable[[PathOrPaths], list[LayerData]]
TIFF_SUFFIXES = (".tif", ".tiff")


def _single(path: PathOrPaths) -> Path | None:
    """The one path napari passed (a list of one is unwrapped), or None for several."""
    if isinstance(path, str):
        return Path(path)
    return Path(path[0]) if len(path) == 1 else None


def _is_ours_by_name(path: Path) -> bool:
    """Whether ``path`` has a suffix this plugin reads (a measurement, TIFF or NIfTI)."""
    return is_nifti_name(path) or path.suffix.lower() in READABLE_SUFFIXES


def get_reader(path: PathOrPaths) -> Reader | None:
    """Reader for a measurement (``.npz``, CT sinogram ``.tif``, fastMRI-style HDF5 k-space),
    a result or labels file written by napari-ddip (TIFF, NIfTI) or any NIfTI volume; for
    another file with one of these suffixes, a reader that says why it cannot be opened."""
    single = _single(path)
    if single is None or not single.is_file() or not _is_ours_by_name(single):
        return None
    if is_measurement_file(single):
        return _read_measurement
    if is_nifti_file(single):
        info = read_nifti_info(single) or {}
    elif single.suffix.lower() in TIFF_SUFFIXES:
        info = read_tiff_info(single, require_key=True)
    else:
        info = None
    if info is None:
        return _say_why_not
    return _read_labels if info.get("kind") == LABELS_KIND else _read_volume


def get_dicom_reader(path: PathOrPaths) -> Reader | None:
    """Reader for a DICOM series: a folder of slices, one slice file, or several (napari's
    stacked open); for a folder or a ``.dcm``/``.dicom`` file that holds no DICOM image, a
    reader that says why."""
    source = _dicom_source(path)
    if is_dicom_source(source):
        return _read_dicom
    if not isinstance(source, Path):
        return None
    named = source.is_file() and source.suffix.lower() in DICOM_SUFFIXES
    return _say_why_not_dicom if source.is_dir() or named else None


def _dicom_source(path: PathOrPaths) -> DicomSource:
    """One path, or the list napari passed."""
    single = _single(path)
    return single if single is not None else [Path(p) for p in path]


def why_not_readable(path: Path) -> str:
    """One line saying why ``path`` (with one of our suffixes, refused by :func:`get_reader`)
    opens with no layer of this plugin."""
    try:
        if is_nifti_name(path):
            read_volume(path)  # fails on the header: a readable NIfTI would have been taken
        elif path.suffix.lower() in TIFF_SUFFIXES:
            check_tiff(path)
            return (
                f"{path}: a TIFF without napari-ddip metadata; this plugin opens the results, "
                "labels and sinograms it writes (open other TIFFs with napari builtins)"
            )
        else:
            load_measurement(path)
    except InputError as exc:
        return str(exc)
    return f"{path}: not a file napari-ddip opens"


def _say_why_not(path: PathOrPaths) -> list[LayerData]:
    show_error(why_not_readable(_single(path)))
    return _no_layer()


def _say_why_not_dicom(path: PathOrPaths) -> list[LayerData]:
    source = _single(path)
    try:
        read_dicom_series(source)
        message = f"{source}: no DICOM series napari-ddip opens"
    except InputError as exc:
        message = str(exc)
    show_error(message)
    return _no_layer()


def _no_layer() -> list[LayerData]:
    """npe2's answer of a reader that accepted a file and opens no layer from it."""
    return [(None,)]  # type: ignore[list-item]


def _said(read: Reader) -> Reader:
    """``read``, with an :class:`InputError` shown as a notification (and no layer)."""

    def reader(path: PathOrPaths) -> list[LayerData]:
        try:
            return read(path)
        except InputError as exc:
            show_error(str(exc))
            return _no_layer()

    reader.__doc__ = read.__doc__
    return reader


@_said
def _read_measurement(path: PathOrPaths) -> list[LayerData]:
    """A sinogram or k-space layer holding the measurement."""
    single = _single(path)
    return [measurement_layer(load_measurement(single), single.stem)]


@_said
def _read_volume(path: PathOrPaths) -> list[LayerData]:
    """A volume layer with voxel size, depth and provenance."""
    single = _single(path)
    volume = read_volume(single)
    return [volume_layer(volume.data, volume.voxel_size, file_stem(single), volume.metadata)]


@_said
def _read_labels(path: PathOrPaths) -> list[LayerData]:
    """A labels layer with voxel size, depth and provenance."""
    single = _single(path)
    labels, voxel_size, provenance = read_labels(single)
    return [labels_layer(labels, voxel_size, file_stem(single), provenance)]


@_said
def _read_dicom(path: PathOrPaths) -> list[LayerData]:
    """A volume layer of a DICOM series, named after its folder (or its one file)."""
    source = _dicom_source(path)
    volume = read_volume(source)
    name = source.name if isinstance(source, Path) and source.is_dir() else None
    name = name or (file_stem(source) if isinstance(source, Path) else source[0].parent.name)
    return [volume_layer(volume.data, volume.voxel_size, name, volume.metadata)]
