"""The Reconstruct and Fine-tune prior dock widgets, driven for real on a tiny CT measurement
with a tiny random-init prior (no mocked engine)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from functools import partial

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_ddip.cli import main
from napari_ddip.io import load_measurement, read_volume, save_measurement, write_result
from napari_ddip.methods import prepare
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.prior.weights import save_prior
from napari_ddip.simulate import simulate_ct, simulate_mri
from napari_ddip.viewer.jobs import ReconJob, run_recon
from napari_ddip.viewer.layers import META_KEY, measurement_layer
from napari_ddip.viewer.priors import FILE, USER_PRIORS
from napari_ddip.viewer.reconstruct_widget import BASIC
from napari_ddip.viewer.writers import write_image
from tiny import tiny_prior

pytestmark = [pytest.mark.napari, pytest.mark.usefixtures("one_thread")]
TIMEOUT_MS = 60_000
VOXEL = (2.0, 0.5, 0.5)
TINY = {"nfe": 3, "adapt_steps": "2", "k_slices": 2}


@pytest.fixture(scope="module")
def prior_path(tmp_path_factory) -> str:
    return str(save_prior(tiny_prior(), tmp_path_factory.mktemp("prior") / "tiny"))


@pytest.fixture
def viewer_with_ct(make_napari_viewer):
    """A viewer holding a 4×32×32 phantom's 16-view sinogram as the reader makes it."""
    viewer = make_napari_viewer()
    m = simulate_ct(ellipsoid_volume((4, 32, 32), seed=1), n_views=16, voxel_size=VOXEL)
    data, kwargs, _ = measurement_layer(m, "ct")
    viewer.add_image(data, **kwargs)
    return viewer


def _dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget("napari-ddip", name)
    return widget


def _reconstruct_widget(viewer, prior_path, method="d3ip", **settings):
    widget = _dock(viewer, "Reconstruct")
    widget.measurement.value = viewer.layers["ct"]
    widget.method.value = method
    widget.device.value = "cpu"
    if method != "fbp":
        widget.prior.choice.value = FILE
        widget.prior.file.value = prior_path
        for key, value in (TINY | settings).items():
            form = widget.basic if key in BASIC else widget.advanced
            form[key].value = value
        widget.advanced["slice_batch"].value = "2"
        widget.advanced["preview_every"].value = "1"
    return widget


def _run_and_wait(qtbot, widget) -> None:
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: widget.panel.run_button.enabled, timeout=TIMEOUT_MS)


def _last_message() -> str:
    return notification_manager.records[-1].message if notification_manager.records else ""


def test_d3ip_result_layer_has_scale_and_provenance_and_reruns_in_place(
    viewer_with_ct, qtbot, prior_path, tmp_path
) -> None:
    viewer = viewer_with_ct
    widget = _reconstruct_widget(viewer, prior_path)
    _run_and_wait(qtbot, widget)
    layer = viewer.layers["ct [d3ip]"]
    assert layer.data.shape == (4, 32, 32) and layer.data.dtype == np.float32
    np.testing.assert_allclose(layer.scale, VOXEL)
    block = layer.metadata[META_KEY]
    provenance = block["provenance"]
    assert block["kind"] == "volume" and provenance["method"] == "d3ip"
    assert provenance["settings"]["nfe"] == 3 and provenance["settings"]["adapt_steps"] == 2
    assert provenance["prior"] == prior_path and provenance["device"] == "cpu"
    assert provenance["measurement"]["simulated"] == "ct" and not provenance["partial"]
    assert provenance["source_layer"] == "ct" and provenance["slices"] == [0, 4]
    assert provenance["output"] == "real"
    assert widget.panel.progress.value == widget.panel.progress.max
    assert not widget.panel.cancel_button.enabled

    saved = read_volume(write_image(str(tmp_path / "r.tif"), layer.data, _meta(layer))[0])
    assert saved.voxel_size == VOXEL and saved.metadata["method"] == "d3ip"

    widget.slices.value = "1:3"  # a preview of two slices updates the same layer
    widget.advanced["samples"].value = 2  # ... and adds the posterior std
    _run_and_wait(qtbot, widget)
    assert len(viewer.layers) == 3 and layer.data.shape == (2, 32, 32)
    assert layer.translate[0] == pytest.approx(VOXEL[0])
    assert layer.metadata[META_KEY]["provenance"]["slices"] == [1, 3]
    std = viewer.layers["ct [d3ip] std"]
    assert std.data.shape == (2, 32, 32) and np.all(std.data >= 0)
    np.testing.assert_allclose(std.translate, layer.translate)

    widget.advanced["samples"].value = 1  # one sample: the earlier std layer goes
    _run_and_wait(qtbot, widget)
    assert layer.data.shape == (2, 32, 32) and widget.result.std is None
    assert "ct [d3ip] std" not in viewer.layers and len(viewer.layers) == 2

    statuses = []  # the status line of a classical run after a D3IP one is its own
    show_progress = widget.panel.show_progress
    widget.panel.show_progress = lambda *args: (statuses.append(args[3]), show_progress(*args))
    widget.method.value = "tv"
    _run_and_wait(qtbot, widget)
    assert statuses and set(statuses) == {"tv on cpu"}, statuses


def test_previews_leave_the_earlier_result_whole_until_the_run_ends(
    viewer_with_ct, qtbot, prior_path
) -> None:
    viewer = viewer_with_ct
    widget = _reconstruct_widget(viewer, prior_path)
    _run_and_wait(qtbot, widget)
    layer = viewer.layers["ct [d3ip]"]
    earlier, provenance = layer.data.copy(), layer.metadata[META_KEY]["provenance"]
    widget.seed.value = 1
    widget.panel.run_button.native.click()
    qtbot.waitUntil(lambda: "ct [d3ip] preview" in viewer.layers, timeout=TIMEOUT_MS)
    preview = viewer.layers["ct [d3ip] preview"]
    assert preview.metadata[META_KEY]["provenance"]["status"].startswith("preview at t = ")
    np.testing.assert_array_equal(layer.data, earlier)  # a failure now would lose nothing
    assert layer.metadata[META_KEY]["provenance"] == provenance
    qtbot.waitUntil(lambda: widget.panel.run_button.enabled, timeout=TIMEOUT_MS)
    assert "ct [d3ip] preview" not in viewer.layers
    assert layer.metadata[META_KEY]["provenance"]["seed"] == 1
    assert not np.array_equal(layer.data, earlier)


def test_a_preset_sets_the_fields_and_the_run_shows_its_estimate_and_steps(
    viewer_with_ct, qtbot, prior_path
) -> None:
    viewer = viewer_with_ct
    widget = _dock(viewer, "Reconstruct")
    widget.measurement.value = viewer.layers["ct"]
    widget.preset.value = "paper"  # CT: the paper's L and learning rate
    basic, advanced = widget.basic, widget.advanced
    assert basic["nfe"].value == 50 and basic["adapt_steps"].value == "10"
    assert basic["k_slices"].value == 3 and basic["lr"].value == "0.001"
    assert advanced["timestep_power"].value == "1.0" and widget.slices.value == "all"
    assert advanced["discrepancy"].value == "0.0"  # the paper adapts every step
    widget.preset.value = "standard"  # back to the shipped defaults
    assert basic["adapt_steps"].value == "auto" and basic["lr"].value == "auto"
    assert advanced["timestep_power"].value == "auto"
    widget.preset.value = "preview"
    assert basic["nfe"].value == 10 and basic["adapt_steps"].value == "3"
    assert basic["k_slices"].value == 2 and widget.slices.value == "all"  # its 4 middle ones

    widget.method.value, widget.device.value = "d3ip", "cpu"
    widget.prior.choice.value = FILE
    widget.prior.file.value = prior_path
    basic["nfe"].value = 2  # the user's value wins over the preset's
    advanced["t_min"].value = 0
    words = []
    show_progress = widget.panel.show_progress
    widget.panel.show_progress = lambda *args: (words.append(args), show_progress(*args))
    _run_and_wait(qtbot, widget)
    settings = viewer.layers["ct [d3ip]"].metadata[META_KEY]["provenance"]["settings"]
    assert settings["nfe"] == 2 and settings["adapt_steps"] == 3 and settings["k_slices"] == 2
    assert widget.panel.note.value.startswith("about ")  # noise-free: no discrepancy stop
    assert widget.panel.note.value.endswith("on cpu: 4 slices, NFE 2, L 3, K 2")
    assert words[0][2] is not None  # the bar has a time left from the start
    assert [w[4] for w in words[1:4]] == [f"step 1/2 · adaptation {a}/3" for a in (1, 2, 3)]
    assert words[-1][4] == "step 2/2"
    # With a noise given (the sinogram has none) and a τ that the tiny prior's first loss is
    # below, the estimate is an upper bound, the adaptation ends and the status says so.
    advanced["noise_std"].value = "0.01"
    advanced["discrepancy"].value = "1e30"
    words.clear()
    _run_and_wait(qtbot, widget)
    assert widget.panel.note.value.startswith("at most ")
    assert any("adaptation ended at t = " in w[3] for w in words), words


def test_an_equivariant_run_shows_its_rotations_and_fine_tuning_and_records_them(
    viewer_with_ct, qtbot
) -> None:
    viewer = viewer_with_ct
    widget = _dock(viewer, "Reconstruct")
    widget.measurement.value = viewer.layers["ct"]
    widget.method.value, widget.device.value = "dds", "cpu"
    widget.prior.choice.value = "ffdnet-color"
    widget.basic["nfe"].value = 2
    widget.basic["equivariant"].value = 1
    widget.advanced["equivariant_steps"].value = 2
    words = []
    show_progress = widget.panel.show_progress
    widget.panel.show_progress = lambda *args: (words.append(args), show_progress(*args))
    _run_and_wait(qtbot, widget)
    assert widget.panel.note.value.endswith("NFE 2, 1 equivariant rotation")
    assert [w[4] for w in words[-4:]] == [  # a noise-free sinogram: no unrotated copy
        "rotation 1/1 step 1/2",
        "rotation 1/1 step 2/2",
        "equivariant fine-tuning step 1/2",
        "equivariant fine-tuning step 2/2",
    ]
    provenance = viewer.layers["ct [dds]"].metadata[META_KEY]["provenance"]
    assert provenance["settings"]["equivariant"] == 1
    assert provenance["equivariant"]["done"] and provenance["equivariant"]["level"] > 0


def _meta(layer) -> dict:
    return {"name": layer.name, "scale": layer.scale, "metadata": layer.metadata}


def test_cancel_keeps_the_partial_result_and_reenables_run(
    viewer_with_ct, qtbot, prior_path
) -> None:
    viewer = viewer_with_ct
    widget = _reconstruct_widget(viewer, prior_path, nfe=40)
    widget.panel.run_button.native.click()
    assert not widget.panel.run_button.enabled and widget.panel.cancel_button.enabled
    qtbot.waitUntil(lambda: widget.panel.progress.value >= 1, timeout=TIMEOUT_MS)
    widget.panel.cancel_button.native.click()
    qtbot.waitUntil(lambda: widget.panel.run_button.enabled, timeout=TIMEOUT_MS)
    (layer,) = [layer for layer in viewer.layers if layer.name.startswith("ct [d3ip")]
    step, total = re.fullmatch(r"ct \[d3ip, partial (\d+)/(\d+)\]", layer.name).groups()
    assert layer.data.shape == (4, 32, 32)
    assert layer.metadata[META_KEY]["provenance"]["partial"] is True
    assert widget.result.partial and f"'{layer.name}' holds the partial" in _last_message()
    assert 1 <= int(step) < int(total) and widget.panel.progress.value == int(step)
    bar = widget.panel.progress.native.format()  # where the run was, in its settings' words
    assert re.fullmatch(r"cancelled at step \d+/40( · adaptation \d/2)?", bar), bar
    assert not widget.panel.cancel_button.enabled


def test_subset_result_compares_as_evaluate_and_reopens_at_its_depth(
    viewer_with_ct, qtbot, prior_path, tmp_path, capsys
) -> None:
    viewer = viewer_with_ct
    truth = ellipsoid_volume((4, 32, 32), seed=1)  # the phantom of the sinogram "ct"
    viewer.add_image(truth, name="phantom", scale=VOXEL)
    widget = _reconstruct_widget(viewer, prior_path, method="fbp")
    widget.slices.value = "1:4"  # the quick preview of three slices
    _run_and_wait(qtbot, widget)
    result = viewer.layers["ct [fbp]"]
    assert result.data.shape == (3, 32, 32)

    compare = _dock(viewer, "Compare")  # opens on the result and the phantom
    assert compare.recon.value is result and compare.reference.value is viewer.layers["phantom"]
    compare.run_button.native.click()
    qtbot.waitUntil(lambda: compare.run_button.enabled, timeout=TIMEOUT_MS)
    # napari-ddip evaluate on the saved result and the phantom's slices 1-3
    result.save(str(tmp_path / "r.tif"), plugin="napari-ddip")
    write_result(tmp_path / "ref.tif", truth[1:4], VOXEL, {})
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "r.tif"), "--reference", str(tmp_path / "ref.tif"),
                "--json"]) == 0  # fmt: skip
    evaluated = json.loads(capsys.readouterr().out)
    assert compare.scores.psnr == pytest.approx(evaluated["psnr"], abs=1e-9)
    assert compare.scores.ssim == pytest.approx(evaluated["ssim"], abs=1e-9)
    assert compare.scores.n_slices == evaluated["n_slices"] == 2  # slice 3 is empty
    assert "left out: slice 3, where the reference is constant" in compare.summary.value
    difference = viewer.layers["ct [fbp] − phantom"]
    np.testing.assert_allclose(difference.data, result.data - truth[1:4])

    (reopened,) = viewer.open(tmp_path / "r.tif", plugin="napari-ddip")
    np.testing.assert_allclose(reopened.scale, VOXEL)
    np.testing.assert_allclose(reopened.translate, (VOXEL[0], 0.0, 0.0))  # slice 1's depth
    np.testing.assert_allclose(reopened.translate, result.translate)
    assert reopened.metadata[META_KEY]["provenance"]["slices"] == [1, 4]


def _close_while_running(qtbot, worker, close) -> None:
    """``close()`` and wait for ``worker`` to end; no callback may raise meanwhile."""
    with qtbot.captureExceptions() as exceptions:
        with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
            close()
        qtbot.wait(50)  # the dock goes by deleteLater
    assert not exceptions


@pytest.mark.parametrize("what", ["dock", "viewer"])
def test_closing_the_dock_or_viewer_cancels_the_run(
    viewer_with_ct, qtbot, prior_path, what
) -> None:
    viewer = viewer_with_ct
    widget = _reconstruct_widget(viewer, prior_path, nfe=40)
    worker = widget.run()
    qtbot.waitUntil(lambda: widget.panel.progress.value >= 1, timeout=TIMEOUT_MS)
    if what == "dock":
        close = partial(viewer.window.remove_dock_widget, widget.native)
    else:
        close = viewer.close
    _close_while_running(qtbot, worker, close)
    assert widget.panel.cancel_event.is_set()
    assert widget.result is None  # the result callback left the closed widget alone


def test_mri_diffusion_result_is_recorded_as_magnitude(prior_path) -> None:
    m = simulate_mri(ellipsoid_volume((4, 32, 32), seed=1)[1:3], accel=2.0)
    request = prepare(m, "dds", {"prior": prior_path, "nfe": 2, "slice_batch": 2}, "cpu")
    job = ReconJob(request, z_range=(0, 2), source="k-space")
    result = run_recon(job, lambda event: None, threading.Event())
    assert result.volume.dtype == np.float32 and result.volume.shape == (2, 32, 32)
    assert result.provenance["output"] == "magnitude"  # as the CLI records it


def test_refusals_are_notifications_and_fbp_runs(
    viewer_with_ct, qtbot, prior_path, tmp_path
) -> None:
    viewer = viewer_with_ct
    widget = _reconstruct_widget(viewer, prior_path)
    viewer.add_image(np.zeros((4, 32, 32), np.float32), name="plain")
    widget.measurement.value = viewer.layers["plain"]
    assert widget.run() is None and "holds no measurement" in _last_message()

    widget.measurement.value = viewer.layers["ct"]
    widget.basic["lr"].value = "fast"
    assert widget.run() is None and "'lr'" in _last_message()
    widget.basic["lr"].value = "auto"
    widget.prior.file.value = ""
    assert widget.run() is None and "train-prior" in _last_message()
    widget.slices.value = "7:9"
    assert widget.run() is None and "selects none" in _last_message()
    assert len(viewer.layers) == 2

    widget.slices.value = "all"  # a prior that fails to load in the run: said on the panel too
    (tmp_path / "broken.safetensors").write_bytes(b"not a prior")
    widget.prior.file.value = tmp_path / "broken.safetensors"
    _run_and_wait(qtbot, widget)
    assert "broken.json is missing" in _last_message() and len(viewer.layers) == 2
    assert widget.panel.status.value == f"failed: {_last_message()}"
    assert not widget.panel.cancel_button.enabled

    widget.method.value = "fbp"
    assert not widget.prior.choice.visible and not widget.advanced_box.visible
    _run_and_wait(qtbot, widget)
    layer = viewer.layers["ct [fbp]"]
    assert layer.data.shape == (4, 32, 32)
    np.testing.assert_allclose(layer.scale, VOXEL)
    assert layer.metadata[META_KEY]["provenance"]["method"] == "fbp"


def test_the_form_follows_the_method_record_and_a_saved_adaptation_warm_starts(
    viewer_with_ct, qtbot, prior_path, tmp_path
) -> None:
    widget = _reconstruct_widget(viewer_with_ct, prior_path)
    assert widget.warm_start.enabled and widget.save_adaptation.enabled
    assert not widget.advanced["lora_rank"].native.isHidden()
    widget.method.value = "dds"  # takes no LoRA setting and has no adaptation to save
    assert not widget.warm_start.enabled and not widget.save_adaptation.enabled
    assert widget.advanced["lora_rank"].native.isHidden()
    assert not widget.advanced["cg_iters"].native.isHidden()
    widget.method.value = "ddip"  # one LoRA per slice: nothing shared to save
    assert not widget.save_adaptation.enabled and not widget.basic["nfe"].native.isHidden()
    widget.method.value = "d3ip"
    widget.save_adaptation.value = tmp_path / "lora.txt"
    assert widget.run() is None and ".safetensors" in _last_message()
    saved = tmp_path / "lora.safetensors"
    widget.save_adaptation.value = saved
    _run_and_wait(qtbot, widget)
    assert saved.is_file() and widget.panel.status.value.startswith("done")
    widget.save_adaptation.line_edit.value = ""  # emptied: nothing saved
    widget.warm_start.value = saved
    widget.basic["adapt_steps"].value = "0"  # the saved states as they are
    _run_and_wait(qtbot, widget)
    provenance = widget.result.provenance
    assert provenance["warm_start"] is True and provenance["settings"]["warm_start"] == str(saved)


def test_the_widget_and_the_command_line_record_the_same_provenance(
    make_napari_viewer, qtbot, prior_path, tmp_path
) -> None:
    m = simulate_ct(ellipsoid_volume((4, 32, 32), seed=1), n_views=16, voxel_size=VOXEL)
    save_measurement(tmp_path / "ct.npz", m)
    settings = TINY | {"prior": prior_path, "slice_batch": 2, "preview_every": 1}
    given = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    out = tmp_path / "r.tif"
    args = ["reconstruct", str(tmp_path / "ct.npz"), str(out), "--method", "d3ip", "--quiet"]
    assert main([*args, *given]) == 0
    viewer = make_napari_viewer()
    data, kwargs, _ = measurement_layer(load_measurement(tmp_path / "ct.npz"), "ct")
    viewer.add_image(data, **kwargs)
    widget = _reconstruct_widget(viewer, prior_path)
    _run_and_wait(qtbot, widget)
    from_cli = read_volume(out)
    # The same volume up to the order of floating-point sums: the widget computes in a worker
    # thread, and run after the widget tests in one process the two differ by a few 1e-6 of
    # the volume's range.
    scale = float(np.abs(from_cli.data).max())
    np.testing.assert_allclose(widget.result.volume, from_cli.data, rtol=0, atol=1e-5 * scale)
    time = {"created", "seconds"}
    cli = {k: v for k, v in from_cli.metadata.items() if k not in time | {"measurement_file"}}
    gui = json.loads(json.dumps(widget.result.provenance))  # as a file keeps it
    gui = {k: v for k, v in gui.items() if k not in time | {"source_layer", "slices"}}
    assert cli == gui
    assert gui["settings"]["adapt_steps"] == 2 and "dps_step" not in gui["settings"]


def _finetune_widget(viewer, prior_path, steps: int):
    """The Fine-tune prior dock on a layer "mine", from ``prior_path``, ``steps`` of batch 2."""
    viewer.add_image(ellipsoid_volume((4, 32, 32), seed=2), name="mine")
    widget = _dock(viewer, "Fine-tune prior")
    widget.images.value = [viewer.layers["mine"]]
    widget.base.choice.value = FILE
    widget.base.file.value = prior_path
    widget.training["steps"].value = steps
    widget.training["batch_size"].value = 2
    return widget


def test_finetuned_prior_becomes_a_reconstruct_choice(
    make_napari_viewer, qtbot, prior_path, tmp_path
) -> None:
    viewer = make_napari_viewer()
    recon = _dock(viewer, "Reconstruct")
    widget = _finetune_widget(viewer, prior_path, steps=2)
    widget.folder.line_edit.value = ""  # would be napari's working directory
    assert widget.run() is None and "no output folder" in _last_message()
    widget.folder.value = tmp_path
    widget.prior_name.value = ".."  # would write beside the folder, not in it
    assert widget.run() is None and "'..'" in _last_message()
    widget.prior_name.value = "mine-prior"
    widget.device.value = "cpu"
    _run_and_wait(qtbot, widget)
    path = str(tmp_path / "mine-prior" / "mine-prior.safetensors")
    assert widget.result is not None and str(widget.result.path) == path
    assert widget.result.step == 2 and not widget.result.stopped
    assert path in USER_PRIORS.paths()
    assert path in recon.prior.choice.choices and recon.prior.value == path
    assert widget.panel.status.value == "wrote mine-prior.safetensors"
    # Other slices under the same name: refused with a message, the prior left as it was.
    written = (tmp_path / "mine-prior" / "mine-prior.safetensors").read_bytes()
    viewer.add_image(ellipsoid_volume((4, 32, 32), seed=3), name="other")
    widget.images.value = [viewer.layers["other"]]
    _run_and_wait(qtbot, widget)
    assert "images differ" in _last_message()
    assert widget.panel.status.value == f"failed: {_last_message()}"
    assert (tmp_path / "mine-prior" / "mine-prior.safetensors").read_bytes() == written


def test_the_fine_tune_dock_fine_tunes_the_shipped_ffdnet_at_its_own_rate(
    make_napari_viewer, qtbot, tmp_path
) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(ellipsoid_volume((4, 32, 32), seed=2), name="mine")
    widget = _dock(viewer, "Fine-tune prior")
    widget.images.value = [viewer.layers["mine"]]
    widget.base.choice.value = "ffdnet-color"
    assert widget.training["lr"].value == "auto"  # the base prior's rate
    assert widget.training.values(["lr"]) == {"lr": None}
    widget.training["steps"].value = 1
    widget.training["batch_size"].value = 2
    widget.folder.value = tmp_path
    widget.device.value = "cpu"
    _run_and_wait(qtbot, widget)
    assert widget.result is not None and widget.result.step == 1
    meta = json.loads(widget.result.path.with_suffix(".json").read_text())
    assert meta["config"]["network"] == "ffdnet" and meta["info"]["train_config"]["lr"] == 1e-5
    assert meta["info"]["licence"].startswith("MIT")


def test_closing_the_fine_tune_dock_stops_the_run(
    make_napari_viewer, qtbot, prior_path, tmp_path
) -> None:
    viewer = make_napari_viewer()
    widget = _finetune_widget(viewer, prior_path, steps=1000)
    widget.folder.value = tmp_path
    widget.device.value = "cpu"
    worker = widget.run()
    qtbot.waitUntil(lambda: widget.panel.progress.value >= 1, timeout=TIMEOUT_MS)
    dock = widget.native.parent()
    _close_while_running(qtbot, worker, dock.title.close_button.click)  # the dock's ×
    assert widget.panel.cancel_event.is_set() and widget.result is None


def test_widget_modules_import_without_torch() -> None:
    modules = ["reconstruct_widget", "prior_widget", "jobs", "priors", "devices"]
    names = ", ".join(f"napari_ddip.viewer.{m}" for m in modules)
    code = f"import sys; import {names}; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
