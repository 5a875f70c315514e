"""Measurement metadata and files that cannot describe a reconstruction are refused with a
message naming what is wrong, before any work is done."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import tifffile

from napari_ddip.io import (
    InputError,
    Measurement,
    load_measurement,
    read_volume,
    require_new_output,
    write_result,
)
from napari_ddip.io.measurement import check_measurement_path
from napari_ddip.physics import CTGeometry, ParallelBeamCT

GOOD_CT = {"image_size": 16, "angles_deg": [0.0, 45.0, 90.0, 135.0]}
N_DET = math.ceil(math.sqrt(2) * 16)


def _ct(**geometry) -> Measurement:
    return Measurement("ct", np.zeros((2, 4, N_DET), np.float32), {**GOOD_CT, **geometry})


def test_valid_ct_geometry_is_accepted() -> None:
    assert _ct().image_shape == (2, 16, 16)
    assert _ct(image_size=16.0, n_det=N_DET, det_spacing=0.5).image_shape == (2, 16, 16)


BAD_CT_GEOMETRY = [
    ({"image_size": 16.5}, "image_size must be a positive integer"),
    ({"image_size": 0}, "image_size must be a positive integer"),
    ({"image_size": True}, "image_size must be a positive integer"),
    ({"image_size": "16"}, "image_size must be a positive integer"),
    ({"n_det": 22.5}, "n_det must be a positive integer"),
    ({"angles_deg": [0.0, float("nan"), 90.0, 135.0]}, "NaN/Inf value.*first at view 1"),
    ({"angles_deg": [0.0, 45.0, float("inf"), 1.0]}, "first at view 2"),
    ({"angles_deg": "0,45,90,135"}, "angles_deg must be a list of numbers"),
    ({"angles_deg": [[0.0, 45.0], [90.0, 135.0]]}, "angles_deg must be a list of numbers"),
    ({"angles_deg": [0.0, "a", 90.0, 135.0]}, "angles_deg must be a list of numbers"),
    ({"det_spacing": 0}, "det_spacing .* above 0"),
    ({"det_spacing": -1.0}, "det_spacing .* above 0"),
    ({"det_spacing": float("nan")}, "det_spacing .* above 0"),
    ({"det_spacing": "1"}, "det_spacing .* above 0"),
    ({"fbp_filter": "sharp"}, "fbp_filter must be one of"),
    ({"kind": "mri"}, "geometry is for 'mri'"),
]


@pytest.mark.parametrize(("geometry", "message"), BAD_CT_GEOMETRY)
def test_malformed_ct_geometry_is_refused(geometry, message) -> None:
    with pytest.raises(InputError, match=message):
        _ct(**geometry)


@pytest.mark.parametrize(("geometry", "message"), BAD_CT_GEOMETRY)
def test_the_projector_refuses_the_geometry_the_file_layer_refuses(geometry, message) -> None:
    with pytest.raises(ValueError, match=message):
        ParallelBeamCT.from_geometry({**GOOD_CT, **geometry})


def test_file_layer_and_projector_share_the_detector_default() -> None:
    m = _ct()  # no n_det: the sinogram's N_DET bins are the default's
    assert ParallelBeamCT.from_geometry(m.geometry).measurement_shape == (4, N_DET)
    assert (
        CTGeometry.from_dict(GOOD_CT).to_dict()
        == ParallelBeamCT(16, angles_deg=[0.0, 45.0, 90.0, 135.0]).geometry()
    )


@pytest.mark.parametrize(
    ("shape", "axis"),
    [((0, 4, N_DET), "slices"), ((2, 0, N_DET), "views"), ((2, 4, 0), "detector bins")],
)
def test_empty_sinogram_is_refused(shape, axis) -> None:
    with pytest.raises(InputError, match=f"no {axis}"):
        Measurement("ct", np.zeros(shape, np.float32), GOOD_CT)


def _mri(kspace=None, mask=None, maps=None, geometry=None) -> Measurement:
    kspace = np.ones((2, 8, 8), np.complex64) if kspace is None else kspace
    mask = np.ones((8, 8), np.float32) if mask is None else mask
    return Measurement("mri", kspace, geometry or {}, mask=mask, maps=maps)


def test_valid_mri_geometry_is_accepted() -> None:
    assert _mri(geometry={"image_shape": [8, 8]}).image_shape == (2, 8, 8)
    assert _mri(geometry={"image_shape": (8.0, 8)}).image_shape == (2, 8, 8)


@pytest.mark.parametrize(
    ("image_shape", "message"),
    [
        (8, "must be a pair"),
        ([8, 8, 1], "must be a pair"),
        ("8x8", "must be a pair"),
        ([8, 7.5], "must be a positive integer"),
        ([8, -8], "must be a positive integer"),
        ([8, 16], "does not match k-space 8×8"),
    ],
)
def test_malformed_mri_image_shape_is_refused(image_shape, message) -> None:
    with pytest.raises(InputError, match=message):
        _mri(geometry={"image_shape": image_shape})


def test_mask_that_samples_nothing_is_refused() -> None:
    with pytest.raises(InputError, match="zero everywhere"):
        _mri(mask=np.zeros((8, 8), np.float32))
    per_slice = np.ones((2, 8, 8), np.float32)
    per_slice[1] = 0
    with pytest.raises(InputError, match=r"zero on 1 slice.*slice 1"):
        _mri(mask=per_slice)


def test_zero_coil_maps_are_refused() -> None:
    kspace = np.ones((2, 3, 8, 8), np.complex64)
    with pytest.raises(InputError, match="coil maps are zero everywhere"):
        _mri(kspace, maps=np.zeros((2, 3, 8, 8), np.complex64))


@pytest.mark.parametrize(
    ("shape", "axis"), [((0, 8, 8), "slices"), ((2, 0, 8, 8), "coils"), ((2, 8, 0), "kx")]
)
def test_empty_kspace_is_refused(shape, axis) -> None:
    with pytest.raises(InputError, match=f"no {axis}"):
        _mri(np.ones(shape, np.complex64), mask=np.ones(shape[-2:], np.float32))


def test_empty_fastmri_file_is_refused(tmp_path) -> None:
    with h5py.File(tmp_path / "scan.h5", "w") as f:
        f.create_dataset("kspace", data=np.ones((0, 2, 8, 8), np.complex64))
    with pytest.raises(InputError, match="no slices"):
        load_measurement(tmp_path / "scan.h5")


@pytest.mark.parametrize("shape", [(0, 8, 8), (8, 0), (2, 8, 0)])
def test_empty_volume_is_refused(tmp_path, shape) -> None:
    np.save(tmp_path / "v.npy", np.zeros(shape, np.float32))
    with pytest.raises(InputError, match=r"no (slices|rows|columns)"):
        read_volume(tmp_path / "v.npy")


def test_text_saved_as_npy_is_refused_plainly(tmp_path) -> None:
    (tmp_path / "v.npy").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(InputError, match="does not start with a NumPy header"):
        read_volume(tmp_path / "v.npy")


def test_npy_and_npz_swapped_are_named(tmp_path) -> None:
    np.savez(tmp_path / "a.npz", volume=np.zeros((2, 8, 8), np.float32))
    (tmp_path / "a.npz").rename(tmp_path / "a.npy")
    with pytest.raises(InputError, match=r"it is a \.npz archive"):
        read_volume(tmp_path / "a.npy")
    np.save(tmp_path / "b.npy", np.zeros((2, 8, 8), np.float32))
    (tmp_path / "b.npy").rename(tmp_path / "b.npz")
    with pytest.raises(InputError, match="it is a single array"):
        read_volume(tmp_path / "b.npz")
    (tmp_path / "c.npz").write_text("not a zip")
    with pytest.raises(InputError, match="not a zip archive"):
        load_measurement(tmp_path / "c.npz")


def test_output_that_is_a_folder_is_refused_even_with_overwrite(tmp_path) -> None:
    (tmp_path / "out.tif").mkdir()
    for overwrite in (False, True):
        with pytest.raises(InputError, match="is a folder"):
            require_new_output(tmp_path / "out.tif", overwrite)


def test_rgb_tiff_is_refused_not_read_as_slices(tmp_path) -> None:
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((32, 32, 3), np.uint8), photometric="rgb")
    with pytest.raises(InputError, match="3 colour samples"):
        read_volume(tmp_path / "rgb.tif")
    tifffile.imwrite(
        tmp_path / "grey.tif", np.zeros((3, 32, 32), np.uint8), photometric="minisblack"
    )
    assert read_volume(tmp_path / "grey.tif").data.shape == (3, 32, 32)


def test_a_nifti_name_for_a_measurement_is_named_whole(tmp_path) -> None:
    with pytest.raises(
        InputError, match=r"must be one of \.npz, \.tif, \.tiff \(got '\.nii\.gz'\)"
    ):
        check_measurement_path(tmp_path / "sino.nii.gz", "ct")


def test_cpu_tensors_are_taken_as_arrays(tmp_path) -> None:
    """A notebook user's torch tensors: a measurement and a result from them."""
    import torch

    m = Measurement("mri", torch.ones(2, 8, 8, dtype=torch.complex64), {}, mask=torch.ones(8, 8))
    assert isinstance(m.data, np.ndarray) and m.mask.dtype == np.float32
    path = write_result(tmp_path / "r.tif", torch.rand(2, 8, 8), (1.0, 1.0, 1.0), {})
    assert read_volume(path).data.shape == (2, 8, 8)
