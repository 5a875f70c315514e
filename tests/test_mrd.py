"""ISMRMRD raw-data files (written with the ismrmrd package): Cartesian k-space of a simulated
phantom reads back as the native measurement (2D multi-slice in any slice order, 3D through an
inverse FFT along kz, averages, calibration lines) and reconstructs to the same volume;
unsupported acquisitions are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from foreign_files import write_mrd
from napari_ddip.cli import main
from napari_ddip.io import InputError, Measurement, load_measurement, read_volume, save_measurement
from napari_ddip.simulate import simulate_mri

VOXEL = (3.0, 0.8, 0.5)


def _lines_mask(n: int = 32) -> np.ndarray:
    """Every other ky line plus a fully sampled centre of 12 lines (ESPIRiT's calibration)."""
    mask = np.zeros((n, n), np.float32)
    mask[::2] = 1
    mask[n // 2 - 6 : n // 2 + 6] = 1
    return mask


def _native(volume: np.ndarray, coils: int) -> Measurement:
    """Fully sampled k-space of ``volume`` restricted to :func:`_lines_mask`, without maps."""
    full = simulate_mri(volume, accel=1, mask="uniform1d", coils=coils, keep_maps=False)
    mask = _lines_mask(volume.shape[-1])
    return Measurement("mri", full.data * mask, full.geometry, mask, None, VOXEL)


@pytest.fixture
def small(tiny_volume):
    return tiny_volume[:, 16:48, 16:48]


def test_multi_slice_multi_coil_file_reads_as_the_native_measurement(tmp_path, small) -> None:
    native = _native(small, coils=2)
    write_mrd(tmp_path / "raw.h5", native.data, native.mask, VOXEL, slice_order=[2, 0, 3, 1])
    m = load_measurement(tmp_path / "raw.h5")
    np.testing.assert_array_equal(m.data, native.data)
    np.testing.assert_array_equal(m.mask, native.mask)
    assert m.maps is None and m.voxel_size == pytest.approx(VOXEL)
    assert m.geometry["n_coils"] == 2 and m.geometry["image_shape"] == [32, 32]
    assert m.provenance["format"] == "ISMRMRD HDF5 raw data (2D multi-slice)"


def test_cli_reconstructs_an_ismrmrd_file_as_its_native_file(tmp_path, small, capsys) -> None:
    """Same k-space, same ESPIRiT maps, same CG/TV result: the volume is the native one."""
    native = _native(small, coils=2)
    save_measurement(tmp_path / "native.npz", native)
    write_mrd(tmp_path / "raw.h5", native.data[:, None, 0], native.mask, VOXEL)  # coil 1 alone
    write_mrd(tmp_path / "multi.h5", native.data, native.mask, VOXEL)
    for name in ("native.npz", "multi.h5"):
        argv = ["reconstruct", str(tmp_path / name), str(tmp_path / f"{name}.tif")]
        assert main([*argv, "--method", "tv", "--set", "iters=3", "--quiet"]) == 0
    from_npz, from_raw = (read_volume(tmp_path / f"{n}.tif") for n in ("native.npz", "multi.h5"))
    np.testing.assert_allclose(from_raw.data, from_npz.data, atol=1e-6)
    assert from_raw.voxel_size == pytest.approx(VOXEL)
    assert from_raw.metadata["measurement"]["source"] == "multi.h5"
    out = tmp_path / "single.tif"
    assert main(["reconstruct", str(tmp_path / "raw.h5"), str(out), "--method", "zero-filled"]) == 0
    assert read_volume(out).data.shape == small.shape


def test_3d_file_becomes_slices_by_an_inverse_fft_along_kz(tmp_path, small) -> None:
    mask = _lines_mask()
    k3d = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(small), norm="ortho")) * mask
    write_mrd(tmp_path / "raw3d.h5", k3d[:, None], mask, VOXEL, three_d=True)
    m = load_measurement(tmp_path / "raw3d.h5")
    native = _native(small, coils=1)
    np.testing.assert_allclose(m.data, native.data, atol=1e-5)
    np.testing.assert_array_equal(m.mask, mask)
    assert m.voxel_size == pytest.approx(VOXEL)


def test_averages_are_averaged_and_calibration_lines_fill_the_gaps(tmp_path, small) -> None:
    native = _native(small, coils=1)
    imaging = np.zeros_like(native.mask)
    imaging[::4] = 1
    write_mrd(
        tmp_path / "raw.h5",
        native.data[:, None],
        imaging,
        VOXEL,
        averages=2,
        calibration_lines=tuple(range(10, 22)),
    )
    m = load_measurement(tmp_path / "raw.h5")
    expected_mask = imaging.copy()
    expected_mask[10:22] = 1
    np.testing.assert_array_equal(m.mask, expected_mask)
    np.testing.assert_allclose(m.data, native.data * expected_mask, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"trajectory": "radial"}, "radial trajectory: only Cartesian"),
        ({"trajectory": "spiral"}, "spiral trajectory"),
        ({"counters": {"contrast": 1}}, "multi-echo / multi-contrast acquisitions"),
        ({"counters": {"phase": 2}}, "multi-phase (cine)"),
        ({"counters": {"repetition": 1}}, "repeated measurements"),
    ],
)
def test_unsupported_acquisitions_are_refused_by_name(tmp_path, small, options, message) -> None:
    native = _native(small[:2], coils=1)
    write_mrd(tmp_path / "raw.h5", native.data[:, None], native.mask, VOXEL, **options)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_measurement(tmp_path / "raw.h5")


def test_3d_undersampled_along_kz_is_refused(tmp_path, small) -> None:
    k3d = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(small), norm="ortho"))[:, None]
    write_mrd(tmp_path / "raw3d.h5", k3d, _lines_mask(), VOXEL, three_d=True)
    import h5py

    with h5py.File(tmp_path / "raw3d.h5", "r+") as f:  # drop every line of kz = 0 but one
        data = f["dataset/data"]
        heads = data["head"]
        keep = (heads["idx"]["kspace_encode_step_2"] != 0) | (
            heads["idx"]["kspace_encode_step_1"] == 16
        )
        records = data[()][keep]
        del f["dataset/data"]
        f.create_dataset("dataset/data", data=records, maxshape=(None,))
    with pytest.raises(InputError, match="undersampled along kz"):
        load_measurement(tmp_path / "raw3d.h5")
