"""DICOM series (written with pydicom, and pydicom's own CT_small): slices sorted along the
slice normal whatever their file names, rescale applied, voxel size from the headers; the CLI
simulates from a DICOM folder and evaluates against one as it does with the native volume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from foreign_files import write_dicom_series
from napari_ddip.cli import main
from napari_ddip.io import InputError, read_labels, read_volume

VOXEL = (2.5, 0.7, 0.6)


@pytest.fixture
def series(tmp_path, tiny_volume):
    """A 4-slice CT series of the phantom (−1 … 0 HU-like values after rescale) and the volume
    its files hold."""
    held = write_dicom_series(tmp_path / "series", tiny_volume - 1.0, VOXEL)
    return tmp_path / "series", held


def test_folder_reads_as_the_volume_sorted_along_the_normal(series, tiny_volume) -> None:
    folder, held = series
    volume = read_volume(folder)
    np.testing.assert_array_equal(volume.data, held)
    np.testing.assert_allclose(volume.data, tiny_volume - 1.0, atol=0.0006)
    assert volume.voxel_size == pytest.approx(VOXEL)
    assert volume.metadata["modality"] == "CT" and volume.metadata["units"] == "HU"
    assert volume.metadata["slice_order"] == "position along the slice normal"


def test_a_list_of_files_in_any_order_reads_the_same(series) -> None:
    folder, held = series
    files = sorted(folder.iterdir())
    np.random.default_rng(0).shuffle(files)
    np.testing.assert_array_equal(read_volume(files).data, held)


def test_pydicom_ct_small_is_one_slice_in_hounsfield_units() -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    volume = read_volume(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_array_equal(volume.data[0], expected.astype(np.float32))
    assert volume.data.shape == (1, 128, 128) and volume.data.min() < 0  # air in HU
    assert volume.voxel_size[1:] == pytest.approx([float(v) for v in ds.PixelSpacing])


def test_cli_simulates_from_and_evaluates_against_a_dicom_folder(tmp_path, series, capsys) -> None:
    folder, held = series
    np.save(tmp_path / "native.npy", held)
    for source, name in ((folder, "dicom"), (tmp_path / "native.npy", "native")):
        argv = ["simulate", "ct", str(source), str(tmp_path / f"{name}.npz"), "--views", "12"]
        assert main(argv) == 0
    dicom, native = (np.load(tmp_path / f"{n}.npz") for n in ("dicom", "native"))
    np.testing.assert_array_equal(dicom["data"], native["data"])
    assert json.loads(str(dicom["metadata"]))["voxel_size"] == pytest.approx(list(VOXEL))
    recon = tmp_path / "fbp.tif"
    assert main(["reconstruct", str(tmp_path / "dicom.npz"), str(recon), "--method", "fbp"]) == 0
    scores = []
    for reference in (folder, tmp_path / "native.npy"):
        capsys.readouterr()
        assert main(["evaluate", str(recon), "--reference", str(reference), "--json"]) == 0
        scores.append(json.loads(capsys.readouterr().out))
    assert scores[0]["psnr"] == scores[1]["psnr"] and scores[0]["ssim"] == scores[1]["ssim"]


def test_bad_series_are_refused_in_one_line(tmp_path, series, tiny_volume, capsys) -> None:
    folder, _ = series
    mixed = tmp_path / "mixed"
    shutil.copytree(folder, mixed)
    write_dicom_series(tmp_path / "other", tiny_volume[:1], VOXEL)
    shutil.copy(tmp_path / "other" / "IM0001", mixed / "OTHER")
    with pytest.raises(InputError, match="belong to 2 series"):
        read_volume(mixed)
    repeated = [*sorted(folder.iterdir()), tmp_path / "copy.dcm"]
    shutil.copy(repeated[0], repeated[-1])
    with pytest.raises(InputError, match="two slices at"):
        read_volume(repeated)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images")
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "x.tif"), "--reference", str(empty)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    np.save(tmp_path / "v.npy", tiny_volume)
    assert main(["evaluate", str(tmp_path / "v.npy"), "--reference", str(empty)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the folder holds no DICOM file" in err[0]


def test_a_series_of_whole_numbers_reads_as_labels(tmp_path, series) -> None:
    labels = np.zeros((3, 16, 16), np.float32)
    labels[:, 4:12, 4:12] = 1
    labels[1, 6:10, 6:10] = 7
    write_dicom_series(tmp_path / "seg", labels, VOXEL, slope=1.0, intercept=0.0)
    read, voxel_size, metadata = read_labels(tmp_path / "seg")
    assert read.dtype == np.uint8 and metadata["slices"] == 3
    np.testing.assert_array_equal(read, labels)
    assert voxel_size == pytest.approx(VOXEL)
    with pytest.raises(InputError, match="not labels: its values"):
        read_labels(series[0])  # −1 … 0 in steps of 0.001
