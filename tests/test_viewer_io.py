"""napari reader and writers: measurement, HDF5, result, labels and NIfTI files round-trip
through the plugin with their metadata, scale and depth; a file the plugin cannot read, forced
on it, opens no layer and says why in one notification."""

from __future__ import annotations

import h5py
import nibabel
import numpy as np
import pytest
import tifffile
from napari.layers import Labels
from napari.utils.notifications import notification_manager

from napari_ddip.io import (
    InputError,
    load_measurement,
    read_labels,
    read_volume,
    save_measurement,
)
from napari_ddip.simulate import simulate_ct, simulate_mri
from napari_ddip.viewer.layers import META_KEY, kspace_display, measurement_from_layer
from napari_ddip.viewer.readers import get_reader
from napari_ddip.viewer.writers import write_labels_layer, write_measurement

pytestmark = pytest.mark.napari
PLUGIN = "napari-ddip"


def _open(viewer, path):
    (layer,) = viewer.open(path, plugin=PLUGIN)
    return layer


def test_measurement_files_open_as_layers_with_their_measurement(
    make_napari_viewer, tmp_path, tiny_volume
) -> None:
    ct = simulate_ct(tiny_volume, n_views=12, voxel_size=(2.0, 0.5, 0.5))
    mri = simulate_mri(tiny_volume, accel=2.0, coils=2)
    files = {
        "ct.npz": ct,
        "ct.tif": ct,
        "mri.npz": mri,
    }
    viewer = make_napari_viewer()
    for name, m in files.items():
        layer = _open(viewer, save_measurement(tmp_path / name, m))
        ours = layer.metadata[META_KEY]
        assert ours["kind"] == m.kind and ours["geometry"] == m.geometry
        np.testing.assert_array_equal(ours["measurement"].data, m.data)
        np.testing.assert_allclose(layer.scale, m.voxel_size)
    assert layer.data.shape == (4, 64, 64) and layer.data.dtype == np.float32
    np.testing.assert_allclose(layer.data, kspace_display(mri.data))
    np.testing.assert_array_equal(ours["measurement"].maps, mri.maps)
    assert viewer.layers["ct"].data.shape == (4, 12, 91)
    assert measurement_from_layer(viewer.layers["ct"]).geometry == ct.geometry
    plain = viewer.add_image(tiny_volume, name="plain")
    with pytest.raises(InputError, match="holds no measurement"):
        measurement_from_layer(plain)


def _write_h5(path, kspace, name="kspace") -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset(name, data=kspace)


@pytest.mark.parametrize("shape", [(2, 3, 32, 24), (2, 32, 24)])
def test_hdf5_kspace_opens_with_mask_from_nonzero_columns(make_napari_viewer, tmp_path, shape):
    rng = np.random.default_rng(0)
    kspace = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    kspace[..., ::3] = 0  # fastMRI-style: unsampled columns
    _write_h5(tmp_path / "knee.h5", kspace)
    layer = _open(make_napari_viewer(), tmp_path / "knee.h5")
    m = layer.metadata[META_KEY]["measurement"]
    np.testing.assert_array_equal(m.data, kspace)
    expected = np.ones((32, 24), np.float32)
    expected[:, ::3] = 0
    np.testing.assert_array_equal(m.mask, expected)
    assert m.maps is None and m.geometry["acceleration"] == pytest.approx(1.5)
    assert layer.data.shape == (2, 32, 24)


def test_nifti_volume_opens_with_its_voxel_size(make_napari_viewer, tmp_path) -> None:
    xyz = np.random.default_rng(0).random((8, 6, 3)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(xyz, np.diag([0.5, 0.7, 2.0, 1.0])), tmp_path / "t1.nii.gz")
    layer = _open(make_napari_viewer(), tmp_path / "t1.nii.gz")
    assert layer.name == "t1"
    np.testing.assert_array_equal(layer.data, read_volume(tmp_path / "t1.nii.gz").data)
    np.testing.assert_allclose(layer.scale, (2.0, 0.7, 0.5))
    assert layer.metadata[META_KEY]["provenance"]["format"] == "NIfTI"


def _messages() -> list[str]:
    return [record.message for record in notification_manager.records]


def _foreign_files(folder) -> dict[str, str]:
    """Files with the plugin's suffixes that it cannot read, with what the refusal says."""
    np.savez(folder / "plain.npz", x=np.zeros(3))
    (folder / "text.npz").write_text("not a zip")
    m = simulate_ct(np.zeros((2, 16, 16), np.float32) + 1, n_views=4)
    save_measurement(folder / "bad geometry.npz", m)
    with np.load(folder / "bad geometry.npz") as npz:
        arrays = dict(npz) | {"geometry": np.array("{not json")}
    np.savez(folder / "bad geometry.npz", **arrays)
    tifffile.imwrite(folder / "plain.tif", np.zeros((8, 8), np.uint8))  # a plain 2-D TIFF
    tifffile.imwrite(folder / "plain3d.tif", np.zeros((2, 8, 8), np.float32))  # JSON shape tag
    (folder / "broken.tif").write_bytes(b"II*\x00garbage")
    _write_h5(folder / "other.h5", np.zeros((2, 4, 4), np.complex64), name="image")
    _write_h5(folder / "zero.h5", np.zeros((2, 8, 8), np.complex64))
    (folder / "text.h5").write_text("not hdf5")
    (folder / "text.nii.gz").write_text("not nifti")
    return {
        "plain.npz": "not a measurement file: missing",
        "text.npz": "not a zip archive",
        "bad geometry.npz": "'geometry' is not valid JSON",
        "plain.tif": "TIFF without napari-ddip metadata",
        "plain3d.tif": "TIFF without napari-ddip metadata",
        "broken.tif": "not a readable TIFF file",
        "other.h5": "kspace",
        "zero.h5": "zero everywhere",
        "text.h5": "HDF5",
        "text.nii.gz": "not a readable NIfTI file",
    }


def test_files_the_plugin_cannot_read_say_why_when_forced_on_it(
    make_napari_viewer, tmp_path
) -> None:
    why = _foreign_files(tmp_path)
    viewer = make_napari_viewer()
    for name, reason in why.items():
        path = tmp_path / name
        assert viewer.open(path, plugin=PLUGIN) == [], name  # no layer, no exception
        message = _messages()[-1]
        assert message.startswith(str(path)) and reason in message, (name, message)
        assert "\n" not in message and "Traceback" not in message
    assert len(viewer.layers) == 0


def test_reader_is_none_for_what_is_no_file_of_its_kinds(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "a.npz").write_bytes(b"")
    paths = [str(tmp_path), str(tmp_path / "none.npz"), str(tmp_path / "notes.txt")]
    for path in paths:
        assert get_reader(path) is None, path
    assert get_reader([str(tmp_path / "a.npz")] * 2) is None  # several files: no stack


@pytest.mark.parametrize("suffix", [".tif", ".nii.gz"])
def test_volume_and_labels_layers_save_and_reopen(
    make_napari_viewer, tmp_path, tiny_volume, suffix
) -> None:
    viewer = make_napari_viewer()
    provenance = {"method": "fbp", "seed": 3, "slices": [1, 5]}  # slices 1-4 of a measurement
    image = viewer.add_image(
        tiny_volume,
        name="original",
        scale=(2.0, 0.5, 0.25),
        translate=(2.0, 0.0, 0.0),
        metadata={META_KEY: {"provenance": provenance}},
    )
    image.save(str(tmp_path / f"recon{suffix}"), plugin=PLUGIN)
    saved = read_volume(tmp_path / f"recon{suffix}")
    assert saved.data.dtype == np.float32 and saved.metadata == provenance
    np.testing.assert_allclose(saved.voxel_size, (2.0, 0.5, 0.25))
    reopened = _open(viewer, tmp_path / f"recon{suffix}")
    assert reopened.name == "recon"
    np.testing.assert_array_equal(reopened.data, tiny_volume)
    np.testing.assert_allclose(reopened.scale, (2.0, 0.5, 0.25))
    np.testing.assert_allclose(reopened.translate, (2.0, 0.0, 0.0))  # at slice 1's depth
    assert reopened.metadata[META_KEY]["provenance"] == provenance

    annotations = np.zeros(tiny_volume.shape, np.int32)
    annotations[1, 10:20, 10:30] = 300  # needs uint16
    labels = viewer.add_labels(annotations, name="original notes", scale=(2.0, 0.5, 0.25))
    labels.save(str(tmp_path / f"notes{suffix}"), plugin=PLUGIN)
    assert read_labels(tmp_path / f"notes{suffix}")[0].dtype == np.uint16
    reopened = _open(viewer, tmp_path / f"notes{suffix}")
    assert isinstance(reopened, Labels) and reopened.name == "notes"
    np.testing.assert_array_equal(reopened.data, annotations)
    np.testing.assert_allclose(reopened.scale, (2.0, 0.5, 0.25))


def test_measurement_layers_save_and_reopen(make_napari_viewer, tmp_path, tiny_volume) -> None:
    m = simulate_ct(tiny_volume, n_views=6)
    sinogram = _open(make_napari_viewer(), save_measurement(tmp_path / "sino.npz", m))
    for name in ("copy.npz", "copy.tif"):
        sinogram.save(str(tmp_path / name), plugin=PLUGIN)
        np.testing.assert_array_equal(load_measurement(tmp_path / name).data, m.data)


def test_writers_and_readers_refuse_what_they_cannot_store(tmp_path) -> None:
    meta = {"name": "notes", "scale": (1.0, 1.0, 1.0), "metadata": {}}
    with pytest.raises(InputError, match=r"0\.\.65535"):
        write_labels_layer(str(tmp_path / "n.tif"), np.full((2, 8, 8), -1), meta)
    with pytest.raises(InputError, match="holds no measurement"):
        write_measurement(str(tmp_path / "m.npz"), np.zeros((2, 8, 8)), meta)
