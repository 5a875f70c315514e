"""Measurement and result files round-trip with geometry and metadata; bad files fail clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
import torch

from napari_ddip.io import (
    InputError,
    Measurement,
    load_measurement,
    read_labels,
    read_volume,
    save_measurement,
    tagged_path,
    write_labels,
    write_result,
)
from napari_ddip.operators import operator_from_measurement
from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.mri import MRIOperator
from napari_ddip.simulate import simulate_ct, simulate_mri


def _assert_same(a: Measurement, b: Measurement) -> None:
    assert a.kind == b.kind
    assert a.data.dtype == b.data.dtype
    np.testing.assert_array_equal(a.data, b.data)
    assert a.geometry == b.geometry
    assert a.voxel_size == b.voxel_size
    assert a.provenance == b.provenance
    for x, y in ((a.mask, b.mask), (a.maps, b.maps)):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("suffix", [".npz", ".tif"])
def test_ct_measurement_round_trip(tmp_path, tiny_volume, suffix) -> None:
    m = simulate_ct(tiny_volume, n_views=12, noise=0.01, voxel_size=(2.0, 0.5, 0.5))
    path = save_measurement(tmp_path / f"sino{suffix}", m)
    loaded = load_measurement(path)
    _assert_same(m, loaded)
    assert loaded.data.shape == (4, 12, 91)
    assert loaded.image_shape == (4, 64, 64)
    assert loaded.provenance["settings"]["views"] == 12
    op = operator_from_measurement(loaded)
    assert isinstance(op, ParallelBeamCT)
    assert op.geometry() == m.geometry


@pytest.mark.parametrize(("coils", "keep_maps"), [(1, True), (3, True), (3, False)])
def test_mri_measurement_round_trip(tmp_path, tiny_volume, coils, keep_maps) -> None:
    m = simulate_mri(tiny_volume, accel=2.0, coils=coils, noise=0.01, keep_maps=keep_maps)
    loaded = load_measurement(save_measurement(tmp_path / "k.npz", m))
    _assert_same(m, loaded)
    assert loaded.data.dtype == np.complex64
    assert loaded.data.shape == ((4, 64, 64) if coils == 1 else (4, coils, 64, 64))
    op = operator_from_measurement(loaded)
    assert isinstance(op, MRIOperator)
    assert op.n_coils == coils  # without stored maps they come from ESPIRiT
    assert torch.isfinite(op.pinv(torch.from_numpy(loaded.data))).all()


def test_result_tiff_carries_voxel_size_and_provenance(tmp_path, tiny_volume) -> None:
    provenance = {"method": "tv", "settings": {"lam": None, "iters": 3}, "version": "0", "seed": 7}
    path = write_result(tmp_path / "r.tif", tiny_volume, (2.5, 0.5, 0.25), provenance)
    volume = read_volume(path)
    assert volume.data.dtype == np.float32
    np.testing.assert_array_equal(volume.data, tiny_volume)
    assert volume.voxel_size == pytest.approx((2.5, 0.5, 0.25))
    assert volume.metadata == provenance
    with tifffile.TiffFile(path) as tif:  # Fiji/napari see the spacing too
        assert tif.imagej_metadata["spacing"] == 2.5
        assert tif.imagej_metadata["unit"] == "mm"


def test_result_and_labels_nifti_carry_voxel_size_and_provenance(tmp_path, tiny_volume) -> None:
    """Written in RAS with the voxel size in the affine (what other tools read), our metadata
    in a comment extension; a RAS file read and written again holds the same voxel array."""
    import nibabel

    provenance = {"method": "tv", "settings": {"iters": 3}, "seed": 7}
    path = write_result(tmp_path / "r.nii.gz", tiny_volume, (2.5, 0.5, 0.25), provenance)
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.data, tiny_volume)
    assert volume.voxel_size == pytest.approx((2.5, 0.5, 0.25))
    assert volume.metadata == provenance
    image = nibabel.load(path)
    assert nibabel.aff2axcodes(image.affine) == ("R", "A", "S")
    np.testing.assert_allclose(np.diag(image.affine)[:3], (0.25, 0.5, 2.5))
    assert image.get_data_dtype() == np.float32 and image.header.get_xyzt_units()[0] == "mm"
    _write_nifti(tmp_path / "ras.nii", tiny_volume.transpose(2, 1, 0), flip_xy=False)
    again = write_result(
        tmp_path / "again.nii", read_volume(tmp_path / "ras.nii").data, (1, 1, 1), {}
    )
    np.testing.assert_array_equal(nibabel.load(again).get_fdata(), tiny_volume.transpose(2, 1, 0))

    labels = (tiny_volume > 0.5).astype(np.int64) * 3
    write_labels(tmp_path / "l.nii.gz", labels, (2.5, 0.5, 0.25), {"image": "r"})
    stored, voxel_size, info = read_labels(tmp_path / "l.nii.gz")
    assert stored.dtype == np.uint8 and voxel_size == pytest.approx((2.5, 0.5, 0.25))
    np.testing.assert_array_equal(stored, labels)
    assert info == {"image": "r"}
    with pytest.raises(InputError, match="not a napari-ddip labels file"):
        read_labels(tmp_path / "r.nii.gz")


def test_tagged_path_keeps_double_suffixes() -> None:
    assert tagged_path(Path("out/r.nii.gz"), "_std") == Path("out/r_std.nii.gz")
    assert tagged_path(Path("r.v2.tif"), "_std") == Path("r.v2_std.tif")


def test_result_is_never_overwritten_silently(tmp_path, tiny_volume) -> None:
    path = write_result(tmp_path / "r.tif", tiny_volume, (1, 1, 1), {})
    with pytest.raises(InputError, match="--overwrite"):
        write_result(path, tiny_volume, (1, 1, 1), {})
    write_result(path, tiny_volume * 2, (1, 1, 1), {}, overwrite=True)
    np.testing.assert_array_equal(read_volume(path).data, tiny_volume * 2)


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_read_numpy_volumes(tmp_path, tiny_volume, suffix) -> None:
    path = tmp_path / f"v{suffix}"
    if suffix == ".npy":
        np.save(path, tiny_volume.astype(np.float64))
    else:
        np.savez(path, volume=tiny_volume, other=np.zeros(3))
    volume = read_volume(path)
    assert volume.data.dtype == np.float32
    assert volume.voxel_size == (1.0, 1.0, 1.0)
    np.testing.assert_allclose(volume.data, tiny_volume)


def test_2d_image_reads_as_one_slice(tmp_path, tiny_volume) -> None:
    np.save(tmp_path / "s.npy", tiny_volume[1])
    assert read_volume(tmp_path / "s.npy").data.shape == (1, 64, 64)


def _write_nifti(path, xyz: np.ndarray, zooms=(0.5, 0.7, 2.0), flip_xy: bool = True) -> None:
    """``xyz`` in LPS voxel axes (as DICOM-derived files often are) or RAS, voxel ``zooms`` mm."""
    import nibabel

    signs = (-1, -1) if flip_xy else (1, 1)
    affine = np.diag([signs[0] * zooms[0], signs[1] * zooms[1], zooms[2], 1.0])
    nibabel.save(nibabel.Nifti1Image(xyz, affine), path)


@pytest.mark.parametrize("name", ["brain.nii.gz", "brain.nii", "BRAIN.NII.GZ"])
def test_nifti_volume_reads_in_our_axes_with_its_voxel_size(tmp_path, name) -> None:
    """A volume stored in LPS voxel order comes out (Z inferior→superior, Y anterior→posterior,
    X left→right), whatever its storage order: the same picture as the same data in RAS."""
    xyz = np.random.default_rng(0).random((5, 6, 3)).astype(np.float32)  # (x: R→L, y: A→P, z)
    _write_nifti(tmp_path / name, xyz)
    volume = read_volume(tmp_path / name)
    assert volume.data.shape == (3, 6, 5) and volume.voxel_size == pytest.approx((2.0, 0.7, 0.5))
    # row 0 = most anterior = stored y index 0; column 0 = subject's left = stored x index 4
    np.testing.assert_array_equal(volume.data, xyz[::-1].transpose(2, 1, 0))
    _write_nifti(tmp_path / "ras.nii", np.ascontiguousarray(xyz[::-1, ::-1]), flip_xy=False)
    np.testing.assert_array_equal(read_volume(tmp_path / "ras.nii").data, volume.data)
    assert volume.metadata == {"source": name, "format": "NIfTI", "axes": "LPS"}


def test_nifti_single_volume_and_slice_read_and_a_series_is_refused(tmp_path) -> None:
    xyz = np.arange(4 * 4 * 2, dtype=np.float32).reshape(4, 4, 2)
    _write_nifti(tmp_path / "one.nii.gz", xyz[..., None])
    assert read_volume(tmp_path / "one.nii.gz").data.shape == (2, 4, 4)
    _write_nifti(tmp_path / "slice.nii.gz", xyz[..., 0])
    sliced = read_volume(tmp_path / "slice.nii.gz")
    assert sliced.data.shape == (1, 4, 4) and sliced.voxel_size == pytest.approx((2.0, 0.7, 0.5))
    _write_nifti(tmp_path / "series.nii.gz", np.stack([xyz, xyz], axis=-1))
    with pytest.raises(InputError, match="extract one volume"):
        read_volume(tmp_path / "series.nii.gz")
    (tmp_path / "broken.nii.gz").write_bytes(b"not gzip")
    with pytest.raises(InputError, match="not a readable NIfTI file"):
        read_volume(tmp_path / "broken.nii.gz")
    _write_nifti(tmp_path / "big.nii.gz", np.random.default_rng(0).random((32, 32, 16)))
    whole = (tmp_path / "big.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(whole[: len(whole) // 2])  # header whole, pixels cut
    with pytest.raises(InputError, match="pixels unreadable"):
        read_volume(tmp_path / "cut.nii.gz")


def test_sinogram_tiff_without_geometry_says_what_is_missing(tmp_path) -> None:
    tifffile.imwrite(tmp_path / "s.tif", np.zeros((2, 12, 91), np.float32))
    with pytest.raises(InputError, match="no CT geometry") as info:
        load_measurement(tmp_path / "s.tif")
    assert "angles_deg" in str(info.value) and "image_size" in str(info.value)


def test_sinogram_tiff_with_plain_json_description(tmp_path) -> None:
    """A TIFF written by another tool, geometry JSON in its description, is accepted."""
    geometry = {"image_size": 64, "angles_deg": list(np.linspace(0, 180, 12, endpoint=False))}
    tifffile.imwrite(
        tmp_path / "s.tif",
        np.ones((2, 12, 91), np.float32),
        description=json.dumps({"geometry": geometry}),
        metadata=None,
    )
    m = load_measurement(tmp_path / "s.tif")
    assert m.kind == "ct"
    assert m.image_shape == (2, 64, 64)


def test_incomplete_ct_geometry_names_missing_keys(tiny_volume) -> None:
    sino = np.zeros((4, 12, 91), np.float32)
    with pytest.raises(InputError, match="angles_deg"):
        Measurement("ct", sino, {"image_size": 64})
    with pytest.raises(InputError, match="12 views"):
        Measurement("ct", sino, {"image_size": 64, "angles_deg": [0.0, 90.0]})
    with pytest.raises(InputError, match="detector bins"):
        Measurement("ct", sino, {"image_size": 128, "angles_deg": list(range(12))})


def test_mri_measurement_checks(tiny_volume) -> None:
    k = np.ones((4, 64, 64), np.complex64)
    mask = np.ones((64, 64), np.float32)
    with pytest.raises(InputError, match="must be complex"):
        Measurement("mri", k.real, {}, mask=mask)
    with pytest.raises(InputError, match="sampling mask has shape"):
        Measurement("mri", k, {}, mask=np.ones((16, 64)))
    with pytest.raises(InputError, match="only 0 and 1"):
        Measurement("mri", k, {}, mask=mask * 0.5)
    with pytest.raises(InputError, match="needs its sampling mask"):
        Measurement("mri", k, {})
    with pytest.raises(InputError, match="single-coil"):
        Measurement("mri", k, {}, mask=mask, maps=np.ones((4, 2, 64, 64), np.complex64))
    bad = k.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN/Inf"):
        Measurement("mri", bad, {}, mask=mask)


def test_multicoil_without_calibration_region_is_refused() -> None:
    k = np.ones((1, 2, 32, 32), np.complex64)
    mask = np.zeros((32, 32), np.float32)
    mask[::2] = 1  # no fully sampled centre
    with pytest.raises(InputError, match="ESPIRiT"):
        operator_from_measurement(Measurement("mri", k * mask, {}, mask=mask))


ISMRMRD_HEADER = """<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">
  <encoding>
    <encodedSpace>
      <matrixSize><x>{ky}</x><y>{kx}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>48.0</x><y>24.0</y><z>3.5</z></fieldOfView_mm>
    </encodedSpace>
  </encoding>
</ismrmrdHeader>"""


@pytest.mark.parametrize(
    ("header", "voxel_size"),
    [
        (ISMRMRD_HEADER.format(ky=32, kx=24), (3.5, 1.5, 1.0)),  # 48 mm / 32, 24 mm / 24, slice
        (ISMRMRD_HEADER.format(ky=64, kx=24), (1.0, 1.0, 1.0)),  # another matrix: not trusted
        ("<ismrmrdHeader", (1.0, 1.0, 1.0)),  # broken XML
        (None, (1.0, 1.0, 1.0)),  # no header
    ],
)
def test_fastmri_hdf5_voxel_size_from_its_ismrmrd_header(tmp_path, header, voxel_size) -> None:
    kspace = np.ones((2, 3, 32, 24), np.complex64)
    with h5py.File(tmp_path / "scan.h5", "w") as f:
        f.create_dataset("kspace", data=kspace)
        if header is not None:
            f.create_dataset("ismrmrd_header", data=header.encode())
    m = load_measurement(tmp_path / "scan.h5")
    assert m.voxel_size == pytest.approx(voxel_size)
    assert m.provenance["voxel_size"] == (
        "from ismrmrd_header" if voxel_size[0] == 3.5 else "not in the file: 1 mm assumed"
    )


def test_the_file_layer_imports_without_torch() -> None:
    """Measurements are read and checked (CT geometry included) without loading torch."""
    code = (
        "import sys, numpy as np; from napari_ddip.io import Measurement; "
        "Measurement('ct', np.zeros((1, 2, 23), np.float32), "
        "{'image_size': 16, 'angles_deg': [0, 90]}); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
