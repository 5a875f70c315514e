"""napari opens the scanners' files through the plugin: Data Exchange projections and ISMRMRD
raw data as measurement layers, a DICOM folder (or slice files) as a volume with its voxel
size; another folder or .dcm file forced on the plugin says why it opens nothing."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tifffile
from napari.utils.notifications import notification_manager

from foreign_files import write_dicom_series, write_dxchange, write_mrd
from napari_ddip.io import load_measurement, read_volume
from napari_ddip.simulate import simulate_ct, simulate_mri
from napari_ddip.viewer.layers import META_KEY
from napari_ddip.viewer.readers import get_dicom_reader, get_reader

pytestmark = pytest.mark.napari
PLUGIN = "napari-ddip"
VOXEL = (2.0, 0.5, 0.5)


def _open(viewer, path, **kwargs):
    (layer,) = viewer.open(path, plugin=PLUGIN, **kwargs)
    return layer


def test_data_exchange_and_ismrmrd_files_open_as_measurements(
    make_napari_viewer, tmp_path, tiny_volume
) -> None:
    small = tiny_volume[:, 16:48, 16:48]
    write_dxchange(tmp_path / "scan.h5", simulate_ct(0.05 * small, n_views=20), extra_columns=4)
    mri = simulate_mri(small, accel=1, mask="uniform1d")
    write_mrd(tmp_path / "raw.h5", mri.data[:, None], mri.mask, VOXEL)
    viewer = make_napari_viewer()
    for name, kind in (("scan.h5", "ct"), ("raw.h5", "mri")):
        layer = _open(viewer, tmp_path / name)
        m = layer.metadata[META_KEY]["measurement"]
        assert m.kind == kind
        np.testing.assert_array_equal(m.data, load_measurement(tmp_path / name).data)
    assert viewer.layers["scan"].data.shape == (4, 20, 46)
    np.testing.assert_allclose(viewer.layers["raw"].scale, VOXEL)


def test_dicom_folder_and_files_open_as_a_volume(make_napari_viewer, tmp_path, tiny_volume):
    held = write_dicom_series(tmp_path / "head", tiny_volume, VOXEL)
    viewer = make_napari_viewer()
    layer = _open(viewer, tmp_path / "head")
    assert layer.name == "head"
    np.testing.assert_array_equal(layer.data, held)
    np.testing.assert_allclose(layer.scale, VOXEL)
    assert layer.metadata[META_KEY]["provenance"]["modality"] == "CT"
    (tmp_path / "slices").mkdir()
    files = []
    for path in sorted((tmp_path / "head").iterdir()):  # napari picks readers by suffix
        files.append(str(shutil.copy(path, tmp_path / "slices" / f"{path.name}.dcm")))
    layer = _open(viewer, files, stack=True)
    np.testing.assert_array_equal(layer.data, read_volume(tmp_path / "head").data)


def test_other_files_and_folders_forced_on_the_dicom_reader_say_why(
    make_napari_viewer, tmp_path
) -> None:
    tifffile.imwrite(tmp_path / "plain.tif", np.zeros((2, 8, 8), np.float32))
    (tmp_path / "text.dcm").write_text("not dicom")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.txt").write_text("no images")
    for path in (tmp_path / "plain.tif", tmp_path / "none.dcm"):
        assert get_dicom_reader(str(path)) is None, path
    assert get_dicom_reader([str(tmp_path / "plain.tif"), str(tmp_path / "text.dcm")]) is None
    assert get_reader(str(tmp_path / "text.dcm")) is None
    viewer = make_napari_viewer()
    for name, reason in (("text.dcm", "not a DICOM file"), ("folder", "DICOM")):
        assert viewer.open(tmp_path / name, plugin=PLUGIN) == []
        message = notification_manager.records[-1].message
        assert message.startswith(str(tmp_path)) and reason in message, message
        assert "\n" not in message
