"""Presets (``--preset``, the widget's "preset"), the estimate of a run's time, the words and
time left of its progress, and when its first preview comes; real runs on tiny sizes."""

from __future__ import annotations

import time

import numpy as np
import pytest

from napari_ddip.cli import main
from napari_ddip.io import InputError, read_volume, save_measurement
from napari_ddip.methods import METHODS, prepare, run
from napari_ddip.presets import PRESETS, apply_preset, preset_settings
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.prior.weights import save_prior
from napari_ddip.recon import Preview, Progress, ReconConfig, Started
from napari_ddip.simulate import simulate_ct, simulate_mri
from tiny import tiny_prior

pytestmark = pytest.mark.usefixtures("one_thread")
DIFFUSION = [name for name, m in METHODS.items() if m.diffusion is not None]


@pytest.fixture(scope="module")
def prior_path(tmp_path_factory) -> str:
    return str(save_prior(tiny_prior(), tmp_path_factory.mktemp("prior") / "tiny"))


@pytest.fixture(scope="module")
def ct():
    return simulate_ct(ellipsoid_volume((4, 32, 32), seed=1), n_views=16, noise=0.01)


@pytest.fixture(scope="module")
def mri():
    return simulate_mri(ellipsoid_volume((4, 32, 32), seed=1), accel=2.0)


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("method", list(METHODS))
def test_a_preset_sets_exactly_its_values_and_the_users_win(ct, mri, name, method) -> None:
    chosen = METHODS[method]
    m = ct if "ct" in chosen.kinds else mri
    own = PRESETS[name].for_kind(m.kind)
    expected = chosen.defaults | {k: v for k, v in own.items() if k in chosen.settings}
    request = prepare(m, method, apply_preset(name, chosen, m.kind))
    assert request.settings == expected
    if "nfe" in chosen.settings:  # a value the user gives wins over the preset's
        settings = apply_preset(name, chosen, m.kind, {"nfe": "7"})
        assert prepare(m, method, settings).settings == expected | {"nfe": 7}


def test_the_paper_preset_follows_the_modality() -> None:
    d3ip = METHODS["d3ip"]
    assert preset_settings("paper", d3ip, "ct") == {
        "nfe": 50,
        "timestep_power": 1.0,
        "k_slices": 3,
        "discrepancy": 0.0,
        "adapt_steps": 10,
        "lr": 1e-3,
    }
    mri_values = preset_settings("paper", d3ip, "mri")
    assert mri_values["adapt_steps"] == 5 and mri_values["lr"] == 1e-4
    assert preset_settings("paper", METHODS["dds"], "ct") == {"nfe": 50, "timestep_power": 1.0}
    assert preset_settings("standard", d3ip, "ct") == {}
    assert preset_settings("quality", METHODS["dds"], "mri") == {"equivariant": 4}
    assert preset_settings("quality", METHODS["tv"], "ct") == {}
    best = {"equivariant": 4, "equivariant_steps": 600, "equivariant_slices": 8}
    assert preset_settings("best", METHODS["d3ip"], "ct") == best
    assert preset_settings("preview", METHODS["tv"], "ct") == {}
    assert PRESETS["preview"].slice_range(32) == (14, 18)  # the widget's slices
    assert PRESETS["preview"].slice_range(3) == PRESETS["paper"].slice_range(3) == (0, 3)
    names = r"unknown preset 'fast'.*preview, standard, quality, best, paper"
    with pytest.raises(InputError, match=names):
        preset_settings("fast", d3ip, "ct")


@pytest.mark.parametrize("method", DIFFUSION)
def test_every_diffusion_method_takes_the_preview_preset(ct, mri, method) -> None:
    preview = PRESETS["preview"].values
    for m in (ct, mri):
        config = prepare(m, method, apply_preset("preview", METHODS[method], m.kind)).config
        assert config.nfe == preview["nfe"]
        if METHODS[method].diffusion.adapts:
            assert config.adapt_steps == preview["adapt_steps"]


def _events(m, method: str, settings: dict) -> tuple[list, float]:
    events: list = []
    start = time.perf_counter()
    result = run(prepare(m, method, settings), on_event=events.append)
    assert not result.partial
    return events, time.perf_counter() - start


@pytest.mark.parametrize("method", ["d3ip", "dds-tv"])
def test_the_estimate_is_within_a_factor_of_two_of_the_run(prior_path, method) -> None:
    # 64×64 slices: enough work per step that the run is not all fixed overhead
    m = simulate_ct(ellipsoid_volume((4, 64, 64), seed=1), n_views=16, noise=0.01)
    settings = {"prior": prior_path, "nfe": 6, "adapt_steps": 2, "k_slices": 2, "t_min": 0}
    settings = {k: v for k, v in settings.items() if k in METHODS[method].settings}
    _events(m, method, settings)  # warm: the next run's network call comes from memory
    events, _ = _events(m, method, settings)
    started = next(e for e in events if isinstance(e, Started))
    progress = [e for e in events if isinstance(e, Progress)]
    seconds = progress[-1].elapsed
    assert started.estimate is not None
    assert seconds / 2 <= started.estimate <= 2 * seconds, (started.estimate, seconds)
    assert all(e.eta is not None for e in progress) and progress[-1].eta == pytest.approx(0)


def test_progress_speaks_of_sampling_and_adaptation_steps(ct, prior_path) -> None:
    settings = {"prior": prior_path, "nfe": 3, "adapt_steps": 2, "k_slices": 2, "t_min": 0}
    events, _ = _events(ct, "d3ip", settings | {"slice_batch": 4})
    words = [e.describe() for e in events if isinstance(e, Progress)]
    # each sampling step: L adaptation steps, then one network pass over the 4 slices
    expected = [f"step {j}/3 · adaptation {a}/2" for j in (1, 2, 3) for a in (1, 2)]
    assert [w for w in words if "adaptation" in w] == expected
    assert [w for w in words if "adaptation" not in w] == ["step 1/3", "step 2/3", "step 3/3"]
    total = next(e for e in events if isinstance(e, Started)).total
    assert len(words) == total == 9


def test_the_first_preview_comes_within_the_first_eighth_of_the_steps(ct, prior_path) -> None:
    assert ReconConfig(nfe=50).resolved("ct", "cpu").preview_every == 6
    assert ReconConfig(nfe=4).resolved("ct", "cpu").preview_every == 1
    assert ReconConfig(nfe=50, preview_every=0).resolved("ct", "cpu").preview_every == 0
    events, _ = _events(ct, "dds", {"prior": prior_path, "nfe": 16, "slice_batch": 4})
    first = next(i for i, e in enumerate(events) if isinstance(e, Preview))
    done = [e for e in events[:first] if isinstance(e, Progress)]
    assert done[-1].step / done[-1].total <= 0.15
    assert sum(isinstance(e, Preview) for e in events) == 8


def test_d3ip_shows_its_first_adapted_slices_before_the_first_step_ends(ct, prior_path) -> None:
    settings = {"prior": prior_path, "nfe": 8, "adapt_steps": 3, "k_slices": 2, "t_min": 0}
    events, _ = _events(ct, "d3ip", settings | {"slice_batch": 4})
    first = next(i for i, e in enumerate(events) if isinstance(e, Preview))
    done = [e for e in events[:first] if isinstance(e, Progress)]
    assert done[-1].step / done[-1].total <= 0.15
    preview = events[first]
    assert len(preview.slices) == 2 and preview.volume.shape == (2, 32, 32)
    assert np.isfinite(preview.volume).all() and preview.volume.std() > 0
    later = [e for e in events[first + 1 :] if isinstance(e, Preview)]
    assert later and all(e.slices == (0, 1, 2, 3) for e in later)


def test_a_preview_of_some_slices_fills_those_of_the_preview_volume() -> None:
    from napari_ddip.viewer.layers import merge_preview

    part = np.full((2, 3, 3), 5.0, np.float32)
    merged = merge_preview(None, 4, (1, 3), part)
    assert merged.shape == (4, 3, 3)
    assert (merged[[1, 3]] == 5).all() and (merged[[0, 2]] == 0).all()
    again = merge_preview(merged, 4, (0,), np.ones((1, 3, 3), np.float32))
    assert (again[0] == 1).all() and (again[[1, 3]] == 5).all()
    whole = np.ones((4, 3, 3), np.float32)
    assert merge_preview(merged, 4, (0, 1, 2, 3), whole) is whole


def test_the_command_line_takes_a_preset_and_prints_the_estimate(
    tmp_path, capsys, ct, prior_path
) -> None:
    save_measurement(tmp_path / "ct.npz", ct)
    out = tmp_path / "r.tif"
    argv = ["reconstruct", str(tmp_path / "ct.npz"), str(out), "--method", "d3ip"]
    given = ["--set", f"prior={prior_path}", "--set", "nfe=2", "--set", "t_min=0"]
    assert main([*argv, "--preset", "preview", *given]) == 0
    settings = read_volume(out).metadata["settings"]
    assert settings["nfe"] == 2  # --set wins
    assert settings["adapt_steps"] == 3 and settings["k_slices"] == 2  # the preset's
    err = capsys.readouterr().err
    estimate = [line for line in err.splitlines() if line.startswith("d3ip: at most ")]
    assert len(estimate) == 1 and "on cpu: 4 slices, NFE 2, L 3, K 2" in estimate[0], err
    assert "step 2/2 · 0:00 left" in err
    assert main([*argv, "--preset", "fast", *given]) == 2
    assert "invalid choice: 'fast'" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--quiet", *given]) == 0
    assert read_volume(out).metadata["settings"]["adapt_steps"] == 10  # standard: CT's auto
    assert capsys.readouterr().err == ""
    np.testing.assert_equal(read_volume(out).data.shape, (4, 32, 32))
