"""The Simulate and Compare dock widgets, docked from the manifest and driven by their buttons."""

from __future__ import annotations

import numpy as np
import pytest
from napari.utils.notifications import notification_manager

from napari_ddip import simulate
from napari_ddip.metrics import score, slice_scores
from napari_ddip.viewer import simulate_widget
from napari_ddip.viewer.compare_widget import LEFT_OUT, PICK_TWO
from napari_ddip.viewer.layers import META_KEY, measurement_layer

pytestmark = pytest.mark.napari
TIMEOUT_MS = 60_000


def _dock(viewer, name):
    _, widget = viewer.window.add_plugin_dock_widget("napari-ddip", name)
    return widget


def _click_and_wait(qtbot, widget) -> None:
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=TIMEOUT_MS)


def _last_error() -> str:
    return notification_manager.records[-1].message if notification_manager.records else ""


def test_simulate_ct_and_mri_layers(make_napari_viewer, qtbot, tiny_volume) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(tiny_volume, name="vol", scale=(2.0, 0.5, 0.5))
    widget = _dock(viewer, "Simulate measurement")
    widget.views.value, widget.noise.value = 12, 0.0
    _click_and_wait(qtbot, widget)
    sinogram = viewer.layers["vol sinogram"]
    m = sinogram.metadata[META_KEY]["measurement"]
    assert sinogram.data.shape == m.data.shape == (4, 12, 91)
    assert m.voxel_size == (2.0, 0.5, 0.5)
    np.testing.assert_allclose(sinogram.scale, m.voxel_size)
    np.testing.assert_allclose(m.data, simulate.simulate_ct(tiny_volume, n_views=12).data)

    widget.views.value = 8  # a re-run updates the layer in place
    _click_and_wait(qtbot, widget)
    assert len(viewer.layers) == 2 and sinogram.data.shape == (4, 8, 91)

    widget.modality.value = "MRI"
    widget.accel.value, widget.mask.value, widget.coils.value = 2.0, "uniform1d", 2
    _click_and_wait(qtbot, widget)
    kspace = viewer.layers["vol k-space"]
    m = kspace.metadata[META_KEY]["measurement"]
    assert m.data.shape == (4, 2, 64, 64) and m.maps is not None
    assert m.provenance["settings"]["mask"] == "uniform1d"
    assert kspace.data.shape == (4, 64, 64) and kspace.data.dtype == np.float32


def test_simulate_refuses_bad_layers_with_a_notification(
    make_napari_viewer, qtbot, tiny_volume
) -> None:
    assert simulate_widget.MASKS == simulate.MASKS
    viewer = make_napari_viewer()
    widget = _dock(viewer, "Simulate measurement")
    viewer.add_image(tiny_volume[:, :, :40], name="narrow")  # CT needs square slices
    _click_and_wait(qtbot, widget)
    assert "square" in _last_error() and len(viewer.layers) == 1

    widget.views.value = 4
    viewer.add_image(tiny_volume, name="vol")
    widget.image.value = viewer.layers["vol"]
    _click_and_wait(qtbot, widget)
    widget.image.value = viewer.layers["vol sinogram"]  # a measurement is not a volume
    assert widget.run() is None
    assert "not a volume" in _last_error() and len(viewer.layers) == 3


def test_compare_scores_difference_and_errors(make_napari_viewer, qtbot, tiny_volume) -> None:
    rng = np.random.default_rng(0)
    recon = tiny_volume + rng.normal(0, 0.05, tiny_volume.shape).astype(np.float32)
    viewer = make_napari_viewer()
    ref_layer = viewer.add_image(tiny_volume, name="truth")
    viewer.add_image(recon, name="recon", scale=(2.0, 1.0, 1.0), translate=(4.0, 0.0, 0.0))
    widget = _dock(viewer, "Compare")
    widget.recon.value, widget.reference.value = viewer.layers["recon"], ref_layer
    for _ in range(2):  # the re-run updates the difference layer, no copy
        _click_and_wait(qtbot, widget)
        assert len(viewer.layers) == 3
    expected = score(recon, tiny_volume)
    assert widget.scores.psnr == pytest.approx(expected.psnr)
    assert widget.scores.ssim == pytest.approx(expected.ssim)
    np.testing.assert_allclose(widget.per_slice.psnr, slice_scores(recon, tiny_volume).psnr)
    assert f"{expected.psnr:.2f} dB" in widget.summary.value
    assert widget.table.shape == (4, 2)
    valid = int(np.flatnonzero(widget.per_slice.valid)[0])
    assert widget.table.value["data"][valid][0] == f"{widget.per_slice.psnr[valid]:.2f}"
    difference = viewer.layers["recon − truth"]
    np.testing.assert_allclose(difference.data, recon - tiny_volume)
    np.testing.assert_allclose(difference.scale, (2.0, 1.0, 1.0))
    np.testing.assert_allclose(difference.translate, (4.0, 0.0, 0.0))  # at the recon's depth

    # the reference is constant in slices 0 and 3: said, and shown as gaps in the table
    assert "mean of 2 of 4 slices; left out: slices 0, 3, where the reference is constant" in (
        widget.summary.value
    )
    assert widget.table.value["data"][0] == [LEFT_OUT, LEFT_OUT]

    viewer.add_image(tiny_volume[:2], name="short")  # a refusal clears the numbers shown
    widget.reference.value = viewer.layers["short"]
    assert widget.run() is None
    assert "records no slice range" in _last_error() and len(viewer.layers) == 4
    assert widget.scores is None and widget.per_slice is None
    assert widget.summary.value == f"not scored: {_last_error()}"
    assert widget.table.value["data"] == []

    widget.reference.value = viewer.layers["recon"]  # a layer against itself
    assert widget.run() is None and "compared with itself" in _last_error()


def test_compare_opens_on_a_reconstruction_and_its_reference(
    make_napari_viewer, qtbot, tiny_volume
) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(tiny_volume, name="truth")
    data, kwargs, _ = measurement_layer(simulate.simulate_ct(tiny_volume, n_views=8), "sino")
    viewer.add_image(data, **kwargs)
    widget = _dock(viewer, "Compare")
    assert widget.summary.value == PICK_TWO  # one volume (a sinogram is none): nothing to pair
    assert widget.recon.choices == (viewer.layers["truth"],)
    recon = tiny_volume[1:3] + np.float32(0.01)
    provenance = {"method": "tv", "slices": [1, 3]}
    preview = {"status": "preview at t = 2"} | provenance  # a live preview is never picked
    viewer.add_image(recon, name="tv preview", metadata={META_KEY: {"provenance": preview}})
    assert widget.recon.value is widget.reference.value is viewer.layers["truth"]
    viewer.add_image(recon, name="tv", metadata={META_KEY: {"provenance": provenance}})
    assert widget.recon.value is viewer.layers["tv"]
    assert widget.reference.value is viewer.layers["truth"]
    _click_and_wait(qtbot, widget)
    expected = score(recon, tiny_volume[1:3])  # the reference's slices 1 and 2
    assert widget.scores == expected and widget.first == 1
    assert [str(z) for z in widget.table.value["index"]] == ["1", "2"]
    assert "(reference slices 1–2 of 0–3)" in widget.summary.value
    widget.reference.value = viewer.layers["tv − truth"]  # another choice: numbers cleared
    assert widget.scores is None and widget.summary.value == ""

    viewer.add_image(tiny_volume[1], name="2D truth")  # 2D images: one slice each
    viewer.add_image(tiny_volume[1] + np.float32(0.01), name="2D", scale=(0.5, 0.5))
    widget.recon.value, widget.reference.value = viewer.layers["2D"], viewer.layers["2D truth"]
    _click_and_wait(qtbot, widget)
    assert widget.scores == score(tiny_volume[1:2] + np.float32(0.01), tiny_volume[1:2])
    difference = viewer.layers["2D − 2D truth"]
    assert difference.data.shape == (1, 64, 64)
    np.testing.assert_allclose(difference.scale, (1.0, 0.5, 0.5))
