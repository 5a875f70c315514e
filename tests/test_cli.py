"""The command line end to end on tiny files, and one clear error (exit 2) for each bad input."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tifffile
import torch

import napari_ddip.precision
from napari_ddip.cli import _one_line_warnings, main
from napari_ddip.io import read_volume


@pytest.fixture
def volume_file(tmp_path, tiny_volume):
    path = tmp_path / "volume.npy"
    np.save(path, tiny_volume)
    return path


def _evaluate(capsys, recon, reference) -> dict:
    capsys.readouterr()
    assert main(["evaluate", str(recon), "--reference", str(reference), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_package_s_own_warnings_print_as_one_line_others_as_python_does(capsys) -> None:
    shown = []
    show = _one_line_warnings(lambda *args, **kwargs: shown.append(args))
    own, foreign = napari_ddip.precision.__file__, torch.__file__
    show(UserWarning("bf16 network passes are emulated"), UserWarning, own, 60)
    show(UserWarning("something in torch"), UserWarning, foreign, 1)
    assert capsys.readouterr().err == "napari-ddip: warning: bf16 network passes are emulated\n"
    assert len(shown) == 1 and shown[0][2] == foreign


@pytest.mark.parametrize(
    ("modality", "sim_args", "method", "min_psnr"),
    [
        ("ct", ["--views", "24", "--noise", "0.01"], "fbp", 18.0),
        ("ct", ["--views", "24", "--limited-angle", "150"], "cg", 18.0),
        ("ct", ["--views", "24", "--photons", "1e5"], "tv", 20.0),
        ("mri", ["--accel", "2", "--noise", "0.01"], "zero-filled", 15.0),
        ("mri", ["--accel", "2", "--mask", "uniform1d", "--coils", "2"], "cg", 20.0),
        ("mri", ["--accel", "2", "--coils", "2", "--drop-maps"], "tv", 20.0),
    ],
)
def test_simulate_reconstruct_evaluate(
    tmp_path, capsys, volume_file, modality, sim_args, method, min_psnr
) -> None:
    meas, recon = tmp_path / "m.npz", tmp_path / "r.tif"
    assert main(["simulate", modality, str(volume_file), str(meas), *sim_args]) == 0
    settings = ["--set", "iters=3"] if method in ("cg", "tv") else []
    assert main(["reconstruct", str(meas), str(recon), "--method", method, *settings]) == 0
    err = capsys.readouterr().err
    assert method in err and "100%" in err  # the tqdm bar went to stderr
    result = read_volume(recon)
    assert result.data.shape == (4, 64, 64)
    assert result.metadata["method"] == method
    assert result.metadata["seed"] == 0
    assert result.metadata["version"]
    assert result.metadata["measurement"]["simulated"] == modality
    if method in ("cg", "tv"):
        assert result.metadata["settings"]["iters"] == 3
    scores = _evaluate(capsys, recon, volume_file)
    assert set(scores) >= {"psnr", "ssim", "n_slices", "recon", "reference"}
    assert scores["psnr"] > min_psnr
    assert -1.0 <= scores["ssim"] <= 1.0


@pytest.mark.parametrize("name", ["v.tif", "v.nii.gz"])
def test_reconstruct_keeps_voxel_size_from_the_volume(tmp_path, capsys, tiny_volume, name) -> None:
    import nibabel

    from napari_ddip.io import write_result

    src = tmp_path / name
    if name.endswith(".tif"):
        write_result(src, tiny_volume, (3.0, 0.5, 0.5), {})
    else:  # (x, y, z) voxel axes
        xyz = tiny_volume.transpose(2, 1, 0)
        nibabel.save(nibabel.Nifti1Image(xyz, np.diag([0.5, 0.5, 3.0, 1.0])), src)
    assert main(["simulate", "ct", str(src), str(tmp_path / "s.tif"), "--views", "8"]) == 0
    assert (
        main(["reconstruct", str(tmp_path / "s.tif"), str(tmp_path / "r.tif"), "--method", "fbp"])
        == 0
    )
    assert read_volume(tmp_path / "r.tif").voxel_size == pytest.approx((3.0, 0.5, 0.5))


@pytest.mark.parametrize("coils", [1, 2])
def test_reconstruct_reads_fastmri_hdf5_as_its_npz(tmp_path, capsys, volume_file, coils) -> None:
    """A fastMRI-style ``kspace`` file (mask = its nonzero columns, no coil maps) reconstructs
    as the measurement it came from: same k-space, same mask, maps estimated the same way."""
    npz, h5 = tmp_path / "m.npz", tmp_path / "m.h5"
    simulate = ["simulate", "mri", str(volume_file), str(npz), "--accel", "2"]
    assert main([*simulate, "--coils", str(coils), "--drop-maps"]) == 0
    with np.load(npz) as arrays:
        kspace = arrays["data"] * arrays["mask"]
    with h5py.File(h5, "w") as f:
        f.create_dataset("kspace", data=kspace)
    for source in (npz, h5):
        out = tmp_path / f"{source.suffix[1:]}.tif"
        assert main(["reconstruct", str(source), str(out), "--method", "zero-filled"]) == 0
    from_npz, from_h5 = read_volume(tmp_path / "npz.tif"), read_volume(tmp_path / "h5.tif")
    np.testing.assert_allclose(from_h5.data, from_npz.data, atol=1e-6)
    assert from_h5.metadata["measurement"]["source"] == "m.h5"
    assert _evaluate(capsys, tmp_path / "h5.tif", volume_file)["psnr"] > 15


def test_evaluate_plain_text(tmp_path, capsys, volume_file) -> None:
    assert main(["evaluate", str(volume_file), "--reference", str(volume_file)]) == 0
    out = capsys.readouterr().out
    assert "PSNR" in out and "SSIM 1.0000" in out


def test_help_lists_methods_and_settings(capsys) -> None:
    assert main(["reconstruct", "--help"]) == 0
    out = capsys.readouterr().out
    for text in ("fbp", "zero-filled", "cg", "tv", "iters=100", "lam=auto", "--set KEY=VALUE"):
        assert text in out


# ---- bad input: one message on stderr, exit 2, no traceback -------------------------------


def _files(tmp_path, tiny_volume) -> dict[str, str]:
    """Named input files, valid and broken, made on demand."""
    files = {}
    np.save(tmp_path / "vol.npy", tiny_volume)
    nan = tiny_volume.copy()
    nan[1, 2, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "complex.npy", tiny_volume.astype(np.complex64))
    np.save(tmp_path / "rect.npy", tiny_volume[:, :, :40])
    np.save(tmp_path / "4d.npy", tiny_volume[None])
    np.save(tmp_path / "small.npy", tiny_volume[:, :5, :5])
    (tmp_path / "text.npz").write_text("not a zip archive")
    (tmp_path / "fake.tif").write_text("not a tiff")
    np.savez(tmp_path / "volume.npz", volume=tiny_volume)
    tifffile.imwrite(tmp_path / "nogeom.tif", np.zeros((2, 8, 91), np.float32))
    k = np.ones((4, 64, 64), np.float32)
    mri = {"kind": np.array("mri"), "geometry": np.array("{}"), "mask": np.ones((64, 64))}
    np.savez(tmp_path / "realk.npz", data=k, **mri)
    np.savez(
        tmp_path / "badmask.npz", data=k.astype(np.complex64), **{**mri, "mask": np.ones((16, 64))}
    )
    assert (
        main(
            ["simulate", "ct", str(tmp_path / "vol.npy"), str(tmp_path / "ct.npz"), "--views", "8"]
        )
        == 0
    )
    assert main(["simulate", "mri", str(tmp_path / "vol.npy"), str(tmp_path / "mri.npz")]) == 0
    ct = dict(np.load(tmp_path / "ct.npz"))
    geometry = json.loads(str(ct["geometry"])) | {"fbp_filter": "sharp"}
    with h5py.File(tmp_path / "image.h5", "w") as f:
        f.create_dataset("image", data=np.zeros((2, 8, 8), np.complex64))
    with h5py.File(tmp_path / "zerok.h5", "w") as f:
        f.create_dataset("kspace", data=np.zeros((2, 8, 8), np.complex64))
    np.savez(tmp_path / "badfilter.npz", **(ct | {"geometry": np.array(json.dumps(geometry))}))
    files.update({p.stem: str(p) for p in tmp_path.iterdir()})
    return files


BAD = [
    (["simulate", "ct", "{missing}", "{out}"], "no such file"),
    (["simulate", "ct", "{nan}", "{out}"], "NaN/Inf"),
    (["simulate", "ct", "{complex}", "{out}"], "complex"),
    (["simulate", "ct", "{rect}", "{out}"], "square"),
    (["simulate", "ct", "{4d}", "{out}"], "expected (Y, X) or (Z, Y, X)"),
    (["simulate", "ct", "{text}", "{out}"], "not a readable .npz"),
    (["simulate", "mri", "{vol}", "{out}", "--views", "3"], "--views"),
    (["simulate", "ct", "{vol}", "{out}", "--views", "0"], "--views must be at least 1"),
    (["simulate", "ct", "{vol}", "{out}", "--noise", "-1"], "--noise must be a finite number ≥ 0"),
    (["simulate", "mri", "{vol}", "{out}", "--noise", "inf"], "--noise must be a finite"),
    (["simulate", "ct", "{vol}", "{out}", "--photons", "inf"], "--photons must be a finite"),
    (["simulate", "mri", "{vol}", "{out}", "--accel", "nan"], "--accel must be a finite"),
    (["simulate", "ct", "{vol}", "{tmp}", "--overwrite"], "is a folder"),
    (["simulate", "ct", "{vol}", "{ct}"], "output exists"),
    (["simulate", "ct", "{vol}", "{tmp}/out.png"], "must be one of .npz"),
    (["simulate", "mri", "{vol}", "{tmp}/out.tif"], "write it as .npz"),
    (["simulate", "ct", "{vol}", "{tmp}/nodir/out.npz"], "does not exist"),
    (["reconstruct", "{missing}", "{rout}", "--method", "fbp"], "no such file"),
    (["reconstruct", "{volume}", "{rout}", "--method", "fbp"], "not a measurement file"),
    (["reconstruct", "{text}", "{rout}", "--method", "fbp"], "not a readable .npz"),
    (["reconstruct", "{fake}", "{rout}", "--method", "fbp"], "not a readable TIFF"),
    (["reconstruct", "{nogeom}", "{rout}", "--method", "fbp"], "no CT geometry"),
    (["reconstruct", "{realk}", "{rout}", "--method", "zero-filled"], "must be complex"),
    (["reconstruct", "{badmask}", "{rout}", "--method", "zero-filled"], "sampling mask has shape"),
    (["reconstruct", "{mri}", "{rout}", "--method", "fbp"], "does not apply to mri"),
    (["reconstruct", "{ct}", "{rout}", "--method", "tv", "--set", "nope=1"], "no setting"),
    (["reconstruct", "{ct}", "{rout}", "--method", "tv", "--set", "iters=many"], "expected int"),
    (["reconstruct", "{ct}", "{rout}", "--method", "tv", "--set", "iters"], "KEY=VALUE"),
    (["reconstruct", "{ct}", "{vol}", "--method", "fbp"], "output exists"),
    (["reconstruct", "{ct}", "{rout}", "--method", "fbp", "--device", "cuda:7"], "--device"),
    (["reconstruct", "{ct}", "{rout}", "--method", "fbp", "--device", "gpu"], "--device"),
    (["reconstruct", "{badfilter}", "{rout}", "--method", "fbp"], "fbp_filter"),
    (["reconstruct", "{image}", "{rout}", "--method", "cg"], "not a measurement HDF5 file"),
    (["reconstruct", "{zerok}", "{rout}", "--method", "cg"], "zero everywhere"),
    (["reconstruct", "{ct}", "{tmp}/r.npy", "--method", "fbp"], "must be one of .tif"),
    (["reconstruct", "{nogeom}", "{nogeom}", "--method", "fbp", "--overwrite"], "input file"),
    (["simulate", "ct", "{volume}", "{volume}", "--overwrite"], "is the input file"),
    (
        [
            "reconstruct",
            "{ct}",
            "{rout}",
            "--method",
            "dds",
            "--save-adaptation",
            "{tmp}/a.safetensors",
        ],
        "dds adapts no shared LoRA",
    ),
    (["evaluate", "{small}", "--reference", "{small}"], "SSIM needs at least 7×7"),
    (["evaluate", "{vol}", "--reference", "{rect}"], "shapes differ"),
    (["evaluate", "{vol}", "--reference", "{missing}"], "no such file"),
    (["evaluate", "{ct}", "--reference", "{vol}"], "is a measurement file"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a[:2]) + f" {m}" for a, m in BAD])
def test_bad_input_gives_one_clear_error(tmp_path, tiny_volume, capsys, argv, message) -> None:
    files = _files(tmp_path, tiny_volume) | {
        "missing": str(tmp_path / "missing.npy"),
        "out": str(tmp_path / "out.npz"),
        "rout": str(tmp_path / "out.tif"),
        "tmp": str(tmp_path),
    }
    capsys.readouterr()
    argv = [a.format(**files) for a in argv]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("napari-ddip: error: ")
    assert message in lines[0]
    assert "Traceback" not in captured.err
    assert not (tmp_path / "out.npz").exists() and not (tmp_path / "out.tif").exists()


def test_bad_option_is_a_usage_error(capsys) -> None:
    assert main(["reconstruct", "a.npz", "b.tif", "--method", "magic"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and "Traceback" not in err
    for seed in ("-1", str(2**63), "many"):
        assert main(["simulate", "ct", "a.npy", "b.npz", "--seed", seed]) == 2
        err = capsys.readouterr().err
        assert "--seed" in err and "Traceback" not in err


def test_a_failed_write_is_one_error_line(tmp_path, capsys, volume_file) -> None:
    sino = tmp_path / "sino.npz"
    assert main(["simulate", "ct", str(volume_file), str(sino), "--views", "8"]) == 0
    folder = tmp_path / "folder.tif"
    folder.mkdir()
    capsys.readouterr()
    assert main(
        ["reconstruct", str(sino), str(folder), "--method", "fbp", "--overwrite", "--quiet"]
    ) in (1, 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("napari-ddip: error: ") and "folder.tif" in err[0]


def test_demo_writes_results_and_picture(tmp_path, capsys) -> None:
    from napari_ddip.demo import run_demo

    scores = run_demo(tmp_path, methods=("fbp",), quiet=True)
    assert scores["fbp"].psnr > 25
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {"phantom.tif", "sinogram.npz", "recon_fbp.tif", "comparison.png"}
    assert (tmp_path / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "PSNR" in capsys.readouterr().out
    assert main(["demo", "--out", str(tmp_path)]) == 2  # outputs exist, no --overwrite
    other = run_demo(tmp_path / "seed3", methods=("fbp",), seed=3, quiet=True)
    assert other["fbp"].psnr != scores["fbp"].psnr  # another phantom and noise
    assert main(["demo", "--out", str(tmp_path / "seed3"), "--seed", "3"]) == 2
    assert main(["demo", "--out", str(tmp_path / "gpu"), "--device", "gpu"]) == 2
    assert not (tmp_path / "gpu").exists()  # refused before anything was written


def test_train_and_finetune_prior_commands(tmp_path, capsys, volume_file) -> None:
    tiny = ["--batch-size", "4", "--patch-sizes", "16", "--patch-probs", "1", "--quiet"]
    out = tmp_path / "train"
    args = ["train-prior", "--out", str(out), "--name", "p", "--steps", "4", "--device", "cpu"]
    args += ["--base-channels", "8", "--channel-mults", "1,2", "--image-size", "32"]
    args += ["--pool-size", "4", "--data-scale", "2", *tiny]
    assert main([*args, "--ellipses", "1"]) == 2  # a clear error, not a traceback
    assert "at least 2 ellipses" in capsys.readouterr().err
    assert main([*args, "--ellipses", "6"]) == 0
    meta = json.loads((out / "p.json").read_text())
    assert meta["info"]["steps"] == 4 and "train-prior" in meta["info"]["command"]
    assert meta["config"]["data_scale"] == 2.0
    assert meta["info"]["train_config"]["ellipses"] == 6
    tuned = tmp_path / "tuned"
    args = ["finetune-prior", str(volume_file), "--out", str(tuned), "--name", "t"]
    args += ["--prior", str(out / "p.safetensors"), "--steps", "4", "--device", "cpu", *tiny]
    assert main(args) == 0
    assert (tuned / "t.safetensors").is_file() and (tuned / "t.md").is_file()
    assert "wrote prior" in capsys.readouterr().out
    assert main(args) == 0  # the same command again: finished, nothing to do
    assert "is already trained to --steps 4: nothing to do" in capsys.readouterr().out
    other = tmp_path / "other.npy"
    np.save(other, np.random.default_rng(0).random((3, 32, 32), dtype=np.float32))
    capsys.readouterr()
    assert main([*args, "--steps", "6"]) == 0  # the same run, resumed and continued
    args[1] = str(other)
    assert main(args) == 2  # other images: not a resume of this run
    assert "images differ" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    longer = tmp_path / "longer"
    args = ["train-prior", "--out", str(longer), "--name", "q", "--steps", "2", "--device", "cpu"]
    args += ["--init", str(out / "p.safetensors"), "--image-size", "32", "--pool-size", "4", *tiny]
    assert main(args) == 0
    meta = json.loads((longer / "q.json").read_text())
    assert meta["info"]["init"] == str(out / "p.safetensors")
    first = json.loads((out / "p.json").read_text())
    assert meta["config"] == first["config"]  # the architecture (and data scale) it continues
    capsys.readouterr()
    bad = ["finetune-prior", str(tmp_path / "missing.npy"), "--out", str(tuned), "--quiet"]
    assert main(bad) == 2
    assert "missing.npy" in capsys.readouterr().err


def test_finetune_prior_takes_any_images_of_one_shape_and_refuses_flat_or_repeated_ones(
    tmp_path, capsys
) -> None:
    from napari_ddip.prior.weights import save_prior
    from tiny import tiny_prior

    prior = save_prior(tiny_prior(patch=64), tmp_path / "p")
    rng = np.random.default_rng(0)
    files = {
        "slice.npy": rng.random((16, 24), dtype=np.float32),  # smaller than the 64² patches
        "hu.npy": rng.uniform(-1000, 3000, (2, 16, 24)).astype(np.float32),
        "mri.npy": rng.integers(0, 65535, (2, 16, 24)).astype(np.uint16),
        "blank.npy": np.zeros((3, 16, 24), np.float32),
    }
    for name, array in files.items():
        np.save(tmp_path / name, array)
    out = tmp_path / "tuned"
    options = ["--out", str(out), "--prior", str(prior), "--steps", "2", "--batch-size", "2"]
    options += ["--device", "cpu", "--quiet"]
    # 2D images and 3D volumes, non-square, in any units: 5 images in [0, 1], a finite loss.
    good = [str(tmp_path / name) for name in ("slice.npy", "hu.npy", "mri.npy")]
    assert main(["finetune-prior", *good, *options]) == 0
    assert json.loads((out / "prior.json").read_text())["info"]["data"] == "5 user images"
    loss = float((out / "loss.csv").read_text().splitlines()[-1].split(",")[1])
    assert np.isfinite(loss)
    # An all-zero volume (nothing to learn) or a file given twice (its images would count
    # twice): one clear line before anything is written.
    capsys.readouterr()
    fresh = ["--out", str(tmp_path / "fresh"), *options[2:]]
    assert main(["finetune-prior", good[0], str(tmp_path / "blank.npy"), *fresh]) == 2
    assert "blank.npy: every value is 0" in capsys.readouterr().err
    assert main(["finetune-prior", good[0], *good, *fresh]) == 2
    assert "slice.npy: given twice; give each file once" in capsys.readouterr().err
    (tmp_path / "link.npy").symlink_to(tmp_path / "hu.npy")
    assert main(["finetune-prior", good[1], str(tmp_path / "link.npy"), *fresh]) == 2
    assert f"link.npy: given twice (also as {good[1]})" in capsys.readouterr().err
    assert not (tmp_path / "fresh").exists()


def test_diffusion_reconstruction_with_samples_and_reusable_adaptation(
    tmp_path, capsys, volume_file
) -> None:
    from napari_ddip.prior.weights import save_prior
    from tiny import tiny_prior

    prior = save_prior(tiny_prior(), tmp_path / "p")
    sino = tmp_path / "sino.npz"
    assert main(["simulate", "ct", str(volume_file), str(sino), "--views", "16"]) == 0
    fast = ["--set", f"prior={prior}", "--set", "nfe=3", "--set", "adapt_steps=2", "--quiet"]
    out, adaptation = tmp_path / "d3ip.nii.gz", tmp_path / "lora.safetensors"
    args = ["reconstruct", str(sino), str(out), "--method", "d3ip", *fast, "--samples", "2"]
    assert main([*args, "--save-adaptation", str(adaptation)]) == 0
    std = read_volume(tmp_path / "d3ip_std.nii.gz")
    assert std.data.shape == read_volume(out).data.shape and std.data.max() > 0
    assert adaptation.stat().st_size < 2**20
    warm = tmp_path / "warm.tif"
    args = ["reconstruct", str(sino), str(warm), "--method", "d3ip", *fast]
    assert main([*args, "--warm-start", str(adaptation)]) == 0
    assert read_volume(warm).metadata["settings"]["warm_start"] == str(adaptation)
    # The same architecture with other weights: its LoRA means nothing there.
    other = tiny_prior()
    with torch.no_grad():
        next(other.net.parameters()).add_(1.0)
    other = save_prior(other, tmp_path / "other")
    args = ["reconstruct", str(sino), str(tmp_path / "o.tif"), "--method", "d3ip", *fast]
    capsys.readouterr()
    assert main([*args, "--set", f"prior={other}", "--warm-start", str(adaptation)]) == 2
    assert "adapted from the prior" in capsys.readouterr().err
    capsys.readouterr()
    bad = ["reconstruct", str(sino), str(tmp_path / "f.tif"), "--method", "fbp", "--samples", "2"]
    assert main(bad) == 2
    assert "not an option of fbp" in capsys.readouterr().err
    bad = ["reconstruct", str(sino), str(tmp_path / "g.tif"), "--method", "d3ip", *fast]
    assert main([*bad, "--warm-start", str(tmp_path / "missing.safetensors")]) == 2
    assert "no such adaptation file" in capsys.readouterr().err
    # Samples asked for as a setting: the standard deviation's file is checked before the run.
    (tmp_path / "g_std.tif").write_bytes(b"")
    assert main([*bad, "--set", "samples=2"]) == 2
    assert "g_std.tif" in capsys.readouterr().err and not (tmp_path / "g.tif").exists()


def test_a_setting_the_method_does_not_take_is_refused_naming_those_it_takes(
    tmp_path, capsys, volume_file
) -> None:
    sino, out = tmp_path / "sino.npz", tmp_path / "r.tif"
    assert main(["simulate", "ct", str(volume_file), str(sino), "--views", "16"]) == 0
    capsys.readouterr()
    for method, setting in [("dds", "lora_rank"), ("d3ip", "dps_step"), ("ddip", "k_slices")]:
        args = ["reconstruct", str(sino), str(out), "--method", method, "--set", f"{setting}=16"]
        assert main(args) == 2
        err = capsys.readouterr().err
        assert f"method {method!r} takes no setting {setting!r} (its settings: " in err
        assert "nfe" in err and setting not in err.split("its settings:")[1]
    args = ["reconstruct", str(sino), str(out), "--method", "dds", "--warm-start", str(sino)]
    assert main(args) == 2
    assert "dds cannot start from a saved adaptation" in capsys.readouterr().err
    assert not out.exists()


def test_a_setting_passes_its_range_check_once_on_the_way_to_the_sampler(
    tmp_path, capsys, volume_file, monkeypatch
) -> None:
    from napari_ddip.prior.weights import save_prior
    from napari_ddip.recon.config import Bound
    from tiny import tiny_prior

    prior = save_prior(tiny_prior(), tmp_path / "p")
    sino = tmp_path / "sino.npz"
    assert main(["simulate", "ct", str(volume_file), str(sino), "--views", "16"]) == 0
    checked: list[str] = []
    check = Bound.check
    monkeypatch.setattr(
        Bound, "check", lambda self, name, v: (checked.append(name), check(self, name, v))
    )
    settings = ["--set", f"prior={prior}", "--set", "nfe=2", "--set", "adapt_steps=1"]
    args = ["reconstruct", str(sino), str(tmp_path / "r.tif"), "--method", "d3ip", *settings]
    assert main([*args, "--quiet"]) == 0
    assert checked.count("nfe") == 1 and checked.count("adapt_steps") == 1
    assert read_volume(tmp_path / "r.tif").metadata["settings"]["adapt_steps"] == 1
