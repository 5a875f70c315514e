"""Data Exchange tomography files (written with h5py): projections with flat and dark fields
read back as the simulated sinogram, the rotation centre found and moved to the detector
centre, only the requested rows read, bad transmission and missing fields reported."""

from __future__ import annotations

import math
import warnings

import h5py
import numpy as np
import pytest
import torch

from foreign_files import DARK, FLAT, write_dxchange
from napari_ddip.cli import main
from napari_ddip.io import InputError, InputWarning, load_measurement, read_volume
from napari_ddip.io.dxchange import centred_sinogram
from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.simulate import simulate_ct

MU = 0.05  # attenuation per pixel of the phantom's brightest part


@pytest.fixture
def native(tiny_volume):
    """30-view sinogram of a 4×32×32 phantom (46 detector bins, axis at bin 22.5), attenuating
    as real samples do (at most 1.5 per pixel: transmission down to about e⁻¹)."""
    return simulate_ct(MU * tiny_volume[:, 16:48, 16:48], n_views=30)


def _fbp(m) -> np.ndarray:
    op = ParallelBeamCT.from_geometry(m.geometry)
    return op.pinv(torch.from_numpy(m.data)).numpy()


@pytest.mark.parametrize("extra_columns", [0, 11])
def test_projections_read_back_as_the_simulated_sinogram(tmp_path, native, extra_columns):
    """Flat/dark correction and −log give the line integrals back; with air columns added on
    one side the estimated rotation centre stays at the axis, and cropping around it gives
    the native detector back. The image covers the detector's field of view (46²), whose
    centre 32² the native FBP matches pixel for pixel (same pixel centres, same rays)."""
    write_dxchange(tmp_path / "scan.h5", native, extra_columns=extra_columns)
    m = load_measurement(tmp_path / "scan.h5")
    assert m.provenance["rotation_centre"] == pytest.approx(22.5)
    assert m.provenance["rotation_centre_from"] == "centre of mass fit"
    assert m.data.shape == native.data.shape == (4, 30, 46)
    np.testing.assert_allclose(m.data, native.data, atol=2e-4 * native.data.max())
    np.testing.assert_allclose(m.geometry["angles_deg"], native.geometry["angles_deg"])
    assert m.geometry["image_size"] == 46 and m.voxel_size == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(_fbp(m)[:, 7:39, 7:39], _fbp(native), atol=1e-3)


def test_centre_of_an_off_centre_object_is_the_rotation_axis(tmp_path, tiny_volume):
    """The centre-of-mass fit finds the axis, not the object's centre of mass."""
    shifted = np.zeros_like(tiny_volume[:, :48, :48])
    shifted[:, 12:44, 4:36] = tiny_volume[:, 16:48, 16:48]  # object right and down of centre
    m = simulate_ct(MU * shifted, n_views=45)
    write_dxchange(tmp_path / "scan.h5", m, extra_columns=6)
    centre = load_measurement(tmp_path / "scan.h5").provenance["rotation_centre"]
    assert centre == pytest.approx((m.data.shape[-1] - 1) / 2, abs=0.05)


@pytest.mark.parametrize("centre", [20.0, 20.5, 20.25])
def test_given_centre_crops_the_widest_centred_window(tmp_path, native, centre):
    write_dxchange(tmp_path / "scan.h5", native)
    m = load_measurement(tmp_path / "scan.h5", centre=centre)
    width = math.floor(2 * centre) + 1
    assert m.data.shape[-1] == m.geometry["n_det"] == m.geometry["image_size"] == width
    assert m.provenance["rotation_centre_from"] == "given"
    columns = centre + np.arange(width) - (width - 1) / 2  # linear interpolation at these
    expected = np.stack(
        [
            [np.interp(columns, np.arange(46), row) for row in rows]
            for rows in native.data.astype(np.float64)
        ]
    )
    np.testing.assert_allclose(m.data, expected, atol=2e-3)


def test_centred_window_of_an_exact_centre_is_a_plain_crop() -> None:
    sino = np.arange(2 * 3 * 10, dtype=np.float64).reshape(2, 3, 10)
    np.testing.assert_array_equal(centred_sinogram(sino, 6.0, "s"), sino[..., 3:10])
    np.testing.assert_array_equal(centred_sinogram(sino, 3.5, "s"), sino[..., 0:8])
    with pytest.raises(InputError, match="leaves 3 detector column"):
        centred_sinogram(sino, 1.0, "s")
    with pytest.raises(InputError, match="leaves 0 detector column"):
        centred_sinogram(sino, 12.0, "s")


@pytest.mark.parametrize("units", ["radians", "rad", None])
def test_angles_in_radians_are_converted(tmp_path, native, units) -> None:
    write_dxchange(tmp_path / "scan.h5", native, theta_units=units)
    m = load_measurement(tmp_path / "scan.h5")
    np.testing.assert_allclose(m.geometry["angles_deg"], native.geometry["angles_deg"])
    assert m.provenance["theta_units"].startswith("radians")


def test_row_range_reads_only_those_rows(tmp_path, native, monkeypatch) -> None:
    write_dxchange(tmp_path / "scan.h5", native)
    reads = []
    original = h5py.Dataset.__getitem__

    def recording(self, key, *args, **kwargs):
        reads.append((self.name, key))
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", recording)
    m = load_measurement(tmp_path / "scan.h5", rows="1:3", centre=22.5)
    np.testing.assert_allclose(m.data, native.data[1:3], atol=2e-4 * native.data.max())
    assert m.provenance["rows"] == [1, 3]
    frames = [key for name, key in reads if name.startswith("/exchange/data")]
    assert len(frames) == 3  # projections, flats, darks
    assert all(key[1] == slice(1, 3) for key in frames), frames


@pytest.mark.parametrize(
    ("rows", "message"),
    [("3:1", "rows 3:1 do not fit the 4 detector rows"), ("0:9", "do not fit"), ("a:b", "START")],
)
def test_bad_row_range_is_refused(tmp_path, native, rows, message) -> None:
    write_dxchange(tmp_path / "scan.h5", native)
    with pytest.raises(InputError, match=message):
        load_measurement(tmp_path / "scan.h5", rows=rows)


def test_zero_or_negative_transmission_is_floored_and_reported(tmp_path, native) -> None:
    write_dxchange(tmp_path / "scan.h5", native)
    with h5py.File(tmp_path / "scan.h5", "r+") as f:
        f["exchange/data"][0, 0, :3] = [DARK, DARK - 5, 0.0]  # dead pixels
    with pytest.warns(InputWarning, match="3 of 5520 projection values have zero or negative"):
        m = load_measurement(tmp_path / "scan.h5", centre=22.5)
    smallest = np.exp(-native.data.max())
    np.testing.assert_allclose(m.data[0, 0, :3], -np.log(smallest), rtol=1e-3)
    assert np.isfinite(m.data).all()


def test_missing_flats_are_refused_and_missing_darks_reported(tmp_path, native) -> None:
    write_dxchange(tmp_path / "noflat.h5", native, flats=False)
    with pytest.raises(InputError, match="no flat fields"):
        load_measurement(tmp_path / "noflat.h5")
    write_dxchange(tmp_path / "nodark.h5", native, darks=False)
    with pytest.warns(InputWarning, match="no dark fields"):
        m = load_measurement(tmp_path / "nodark.h5", centre=22.5)
    transmission = (DARK + (FLAT - DARK) * np.exp(-native.data.astype(np.float64))) / FLAT
    np.testing.assert_allclose(m.data, -np.log(transmission), atol=1e-5)


def test_voxel_size_from_the_objective_resolution(tmp_path, native) -> None:
    write_dxchange(tmp_path / "scan.h5", native, resolution_um=0.65)
    m = load_measurement(tmp_path / "scan.h5")
    assert m.voxel_size == pytest.approx((0.65e-3,) * 3)


def test_cli_reconstructs_a_data_exchange_file_and_reports_in_one_line(
    tmp_path, native, capsys
) -> None:
    write_dxchange(tmp_path / "scan.h5", native, extra_columns=5)
    with h5py.File(tmp_path / "scan.h5", "r+") as f:
        f["exchange/data"][0, 1, 0] = 0.0
    out = tmp_path / "tv.tif"
    args = ["reconstruct", str(tmp_path / "scan.h5"), str(out), "--method", "tv"]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert (
            main([*args, "--set", "iters=3", "--rows", "1:3", "--center", "22.5", "--quiet"]) == 0
        )
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("napari-ddip: warning: ")
    assert "1 of" in err[0] and "zero or negative transmission" in err[0]
    result = read_volume(out)
    assert result.data.shape == (2, 46, 46)
    assert result.metadata["measurement"]["rows"] == [1, 3]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rows", "5:9"], "rows 5:9 do not fit"),
        (["--center", "1"], "leaves 3 detector column"),
    ],
)
def test_cli_bad_rows_or_centre_writes_nothing(tmp_path, native, capsys, extra, message) -> None:
    write_dxchange(tmp_path / "scan.h5", native)
    out = tmp_path / "r.tif"
    assert (
        main(["reconstruct", str(tmp_path / "scan.h5"), str(out), "--method", "fbp", *extra]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()


def test_cli_rows_on_another_file_is_refused(tmp_path, native, capsys) -> None:
    from napari_ddip.io import save_measurement

    save_measurement(tmp_path / "m.npz", native)
    argv = ["reconstruct", str(tmp_path / "m.npz"), str(tmp_path / "r.tif"), "--method", "fbp"]
    assert main([*argv, "--rows", "0:2"]) == 2
    assert "apply only to Data Exchange" in capsys.readouterr().err
