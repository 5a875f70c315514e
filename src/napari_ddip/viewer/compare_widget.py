"""Dock widget "Compare": a reconstruction layer against a reference layer.

Shows the mean PSNR/SSIM (as :func:`napari_ddip.metrics.score`), a table of the per-slice values
(:func:`napari_ddip.metrics.slice_scores`) and a per-slice PSNR plot, and adds (or updates on
re-run) the difference layer ``"<recon> − <reference>"`` = recon − reference, placed as the
reconstruction layer is (its scale and translate: a result of a slice subset sits at its depth).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, Table
from napari.layers import Image
from napari.qt.threading import FunctionWorker
from napari.utils.notifications import show_error

from napari_ddip.io import InputError
from napari_ddip.io.tiff import VoxelSize
from napari_ddip.metrics import Scores, SliceScores, slice_scores
from napari_ddip.viewer.background import run_in_background
from napari_ddip.viewer.layers import META_KEY, show_layer, volume_from_layer
from napari_ddip.viewer.slice_plot import SlicePlot

if TYPE_CHECKING:
    import napari

#: SSIM's window: slices must be at least this many pixels on each side.
MIN_SIDE = 7
COLUMNS = ("PSNR (dB)", "SSIM")


class CompareWidget(Container):
    """Pick a reconstruction and a reference (same shape) and press Compare.

    After a run, :attr:`scores` and :attr:`per_slice` hold the numbers shown.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.recon = ComboBox(label="reconstruction", choices=self._image_layers)
        self.reference = ComboBox(label="reference", choices=self._image_layers)
        self.run_button = PushButton(text="Compare")
        self.summary = Label(value="")
        self.table = Table(columns=COLUMNS)
        self.table.min_height = 120
        super().__init__(
            widgets=[self.recon, self.reference, self.run_button, self.summary, self.table]
        )
        self.plot = SlicePlot("PSNR (dB)")
        self.native.layout().addWidget(self.plot)
        self.run_button.changed.connect(self.run)
        self.scores: Scores | None = None
        self.per_slice: SliceScores | None = None

    def _image_layers(self, _: ComboBox) -> list[Image]:
        return [layer for layer in self._viewer.layers if isinstance(layer, Image)]

    def run(self) -> FunctionWorker | None:
        """Score in a thread worker (returned; None when the input is refused)."""
        recon_layer, reference_layer = self.recon.value, self.reference.value
        try:
            recon, voxel_size = volume_from_layer(recon_layer)
            reference, _ = volume_from_layer(reference_layer)
            _check_comparable(recon, reference, recon_layer.name, reference_layer.name)
        except InputError as exc:
            show_error(str(exc))
            return None
        name = f"{recon_layer.name} − {reference_layer.name}"
        work = partial(_compare, recon, reference)
        on_result = partial(self._show, name, voxel_size, tuple(recon_layer.translate))
        return run_in_background(work, on_result, busy=[self.run_button])

    def _show(
        self,
        name: str,
        voxel_size: VoxelSize,
        translate: tuple[float, ...],
        result: tuple[SliceScores, Scores, np.ndarray],
    ) -> None:
        per_slice, mean, difference = result
        self.per_slice, self.scores = per_slice, mean
        self.summary.value = (
            f"PSNR {mean.psnr:.2f} dB, SSIM {mean.ssim:.4f} (mean of {mean.n_slices} slices)"
        )
        rows = [
            [f"{p:.2f}", f"{s:.4f}"] for p, s in zip(per_slice.psnr, per_slice.ssim, strict=True)
        ]
        self.table.value = {
            "data": rows,
            "index": [str(z) for z in range(len(rows))],
            "columns": COLUMNS,
        }
        self.plot.plot(per_slice.psnr, mean.psnr)
        extent = float(np.abs(difference).max()) or 1.0
        kwargs = {
            "name": name,
            "scale": voxel_size,
            "translate": translate,
            "colormap": "PiYG",
            "contrast_limits": (-extent, extent),
            "metadata": {META_KEY: {"kind": "difference", "provenance": {"layers": name}}},
        }
        show_layer(self._viewer, (difference, kwargs, "image"))


def _check_comparable(
    recon: np.ndarray, reference: np.ndarray, recon_name: str, reference_name: str
) -> None:
    """Raise :class:`InputError` unless the two ``(Z, Y, X)`` volumes can be scored."""
    if recon.shape != reference.shape:
        raise InputError(
            f"'{recon_name}' has shape {recon.shape} but '{reference_name}' {reference.shape}: "
            "pick a reconstruction and the reference volume it should match"
        )
    if min(recon.shape[1:]) < MIN_SIDE:
        raise InputError(
            f"slices of {recon.shape[1:]} are too small for SSIM ({MIN_SIDE}×{MIN_SIDE} at least)"
        )


def _compare(recon: np.ndarray, reference: np.ndarray) -> tuple[SliceScores, Scores, np.ndarray]:
    """Per-slice and mean scores and the float32 difference ``recon − reference`` (worker)."""
    per_slice = slice_scores(recon, reference)
    try:
        mean = per_slice.mean()
    except ValueError as exc:  # a constant reference (the shapes were checked)
        raise InputError(f"cannot score against this reference: {exc}") from None
    return per_slice, mean, recon - reference
