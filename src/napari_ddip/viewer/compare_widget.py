"""Dock widget "Compare": a reconstruction layer against a reference layer.

Shows the mean PSNR/SSIM (as :func:`napari_ddip.metrics.score`, which ``napari-ddip
evaluate`` prints), a table of the per-slice values (:func:`napari_ddip.metrics.slice_scores`)
and a per-slice PSNR plot, and adds (or updates on re-run) the difference layer
``"<recon> − <reference>"`` = recon − reference, placed as the reconstruction layer is (its
scale and translate: a result of a slice subset sits at its depth).

A reconstruction of a slice subset (``"slices": [start, stop]`` in its provenance, as the
Reconstruct widget and the reader record it) is scored against the reference's slices
``start:stop`` (the reference's own recorded start subtracted when it is a subset too).
Slices where the reference is constant have no data range and are left out of the means; the
summary names them. The numbers shown always belong to the two layers picked: they are
cleared when the choice changes or a comparison is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, Table
from napari.layers import Image
from napari.qt.threading import FunctionWorker
from napari.utils.notifications import show_error

from napari_ddip.io import InputError
from napari_ddip.io.tiff import VoxelSize
from napari_ddip.metrics import Scores, SliceScores, slice_scores
from napari_ddip.viewer.background import run_in_background
from napari_ddip.viewer.layers import (
    META_KEY,
    STD_OUTPUT,
    first_slice,
    our_metadata,
    show_layer,
    volume_from_layer,
)
from napari_ddip.viewer.slice_plot import SlicePlot

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

#: SSIM's window: slices must be at least this many pixels on each side.
MIN_SIDE = 7
COLUMNS = ("PSNR (dB)", "SSIM")
#: What a table cell shows for a slice left out (constant reference).
LEFT_OUT = "—"
#: The summary when both choices hold the same layer (nothing to compare yet).
PICK_TWO = "pick a reconstruction and the reference it should match (two different layers)"


class CompareWidget(Container):
    """Pick a reconstruction and a reference and press Compare.

    After a run, :attr:`scores` and :attr:`per_slice` hold the numbers shown and
    :attr:`first` the reference slice the first scored slice is; all are None after a refusal.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.recon = ComboBox(label="reconstruction", choices=self._volume_layers)
        self.reference = ComboBox(label="reference", choices=self._volume_layers)
        self.run_button = PushButton(text="Compare")
        self.summary = Label(value="")
        self.summary.native.setWordWrap(True)
        self.table = Table(columns=COLUMNS)
        self.table.min_height = 120
        super().__init__(
            widgets=[self.recon, self.reference, self.run_button, self.summary, self.table]
        )
        self.plot = SlicePlot("PSNR (dB)")
        self.native.layout().addWidget(self.plot)
        self.scores: Scores | None = None
        self.per_slice: SliceScores | None = None
        self.first: int | None = None
        self.run_button.changed.connect(self.run)
        self.recon.changed.connect(self._clear)
        self.reference.changed.connect(self._clear)
        self._pick_distinct()

    def _volume_layers(self, _: ComboBox) -> list[Image]:
        """Image layers that are not measurements (a sinogram or k-space is no volume)."""
        return [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, Image)
            and our_metadata(layer.metadata).get("kind") not in ("ct", "mri")
        ]

    def reset_choices(self, *args: Any) -> None:
        """Refresh the layer lists (napari calls this when layers change)."""
        super().reset_choices(*args)
        self._pick_distinct()

    def _pick_distinct(self) -> None:
        """When both choices hold the same layer, pick the newest result (its provenance
        names a method; else the newest layer) and a reference beside it: a layer that is no
        result or difference, with slices of the same size if there is one. Live previews
        and posterior standard deviations are left out."""
        if self.recon.value is not self.reference.value:
            return
        layers = [layer for layer in self.recon.choices if _pairable(layer)]
        results = [layer for layer in layers if "method" in _provenance(layer)]
        recon = (results or layers)[-1] if layers else None
        others = [layer for layer in layers if layer is not recon]
        if recon is None or not others:
            self.summary.value = PICK_TWO
            return
        plain = [layer for layer in others if layer not in results and _kind(layer) == "volume"]
        same_size = [layer for layer in plain or others if _sides(layer) == _sides(recon)]
        self.recon.value = recon
        self.reference.value = (same_size or plain or others)[0]

    def run(self) -> FunctionWorker | None:
        """Score in a thread worker (returned; None when the input is refused)."""
        recon_layer, reference_layer = self.recon.value, self.reference.value
        self._clear()
        try:
            matched = matched_volumes(recon_layer, reference_layer)
        except InputError as exc:
            show_error(str(exc))
            self._not_scored(str(exc))
            return None
        name = f"{recon_layer.name} − {reference_layer.name}"
        n = matched.recon.shape[0]
        start = first_slice(_provenance(recon_layer), n)
        slices = None if start is None else [start, start + n]
        translate = tuple(float(t) for t in recon_layer.translate)
        placement = {
            "scale": matched.voxel_size,
            "translate": (0.0,) * (3 - len(translate)) + translate,  # a 2D layer: one slice
            "slices": slices,
        }
        work = partial(_compare, matched.recon, matched.reference)
        on_result = partial(self._show, name, placement, matched.first, matched.n_reference)
        busy = [self.run_button, self.recon, self.reference]
        return run_in_background(work, on_result, busy, on_error=self._not_scored)

    def _clear(self, *_: Any) -> None:
        """Forget the numbers shown (they belong to another choice)."""
        self.scores = self.per_slice = self.first = None
        self.summary.value = ""
        self.table.value = {"data": [], "index": [], "columns": COLUMNS}
        self.plot.plot(np.array([]), float("nan"))

    def _not_scored(self, message: str) -> None:
        """Say why on the summary line (the notification has been shown)."""
        self._clear()
        self.summary.value = f"not scored: {message}"

    def _show(
        self,
        name: str,
        placement: dict[str, Any],
        first: int,
        n_reference: int,
        result: tuple[SliceScores, Scores, np.ndarray],
    ) -> None:
        per_slice, mean, difference = result
        self.per_slice, self.scores, self.first = per_slice, mean, first
        self.summary.value = summary_text(per_slice, mean, first, n_reference)
        rows = [
            [_cell(p, ".2f"), _cell(s, ".4f")]
            for p, s in zip(per_slice.psnr, per_slice.ssim, strict=True)
        ]
        self.table.value = {
            "data": rows,
            "index": [str(first + z) for z in range(len(rows))],
            "columns": COLUMNS,
        }
        self.plot.plot(per_slice.psnr, mean.psnr, first)
        provenance: dict[str, Any] = {"layers": name}
        if placement["slices"] is not None:
            provenance["slices"] = placement["slices"]
        extent = float(np.abs(difference).max()) or 1.0
        kwargs = {
            "name": name,
            "scale": placement["scale"],
            "translate": placement["translate"],
            "colormap": "PiYG",
            "contrast_limits": (-extent, extent),
            "metadata": {META_KEY: {"kind": "difference", "provenance": provenance}},
        }
        show_layer(self._viewer, (difference, kwargs, "image"))


def _provenance(layer: Layer) -> dict[str, Any]:
    provenance = our_metadata(layer.metadata).get("provenance")
    return provenance if isinstance(provenance, dict) else {}


def _pairable(layer: Layer) -> bool:
    """Whether ``layer`` may be picked by default: no live preview (its provenance has a
    ``status``) or posterior standard deviation."""
    provenance = _provenance(layer)
    return "status" not in provenance and provenance.get("output") != STD_OUTPUT


def _kind(layer: Layer) -> str | None:
    return our_metadata(layer.metadata).get("kind", "volume")


def _sides(layer: Layer) -> tuple[int, ...]:
    return tuple(np.shape(layer.data)[-2:])


class Matched(NamedTuple):
    """A reconstruction ``(Z, Y, X)`` float32 with its voxel size ``(z, y, x)`` mm and the
    reference slices it matches (same shape): ``first`` is the index of the first of them
    among the reference's ``n_reference`` slices."""

    recon: np.ndarray
    voxel_size: VoxelSize
    reference: np.ndarray
    first: int
    n_reference: int


def matched_volumes(recon_layer: Layer | None, reference_layer: Layer | None) -> Matched:
    """The reconstruction and the reference slices it matches; raises :class:`InputError`
    saying what to pick.

    Volumes with as many slices match slice by slice. A reconstruction with fewer slices
    matches the reference slices its provenance records (``"slices": [start, stop]``, less
    the reference's own recorded start).
    """
    if recon_layer is not None and recon_layer is reference_layer:
        raise InputError(
            f"'{recon_layer.name}' is compared with itself: pick a reconstruction and a "
            "different reference layer"
        )
    recon, voxel_size = volume_from_layer(recon_layer)
    reference, _ = volume_from_layer(reference_layer)
    names = f"'{recon_layer.name}'", f"'{reference_layer.name}'"
    if recon.shape[1:] != reference.shape[1:]:
        raise InputError(
            f"{names[0]} has slices of {_size(recon)} pixels but {names[1]} of "
            f"{_size(reference)}: pick the reference volume the reconstruction should match"
        )
    if min(recon.shape[1:]) < MIN_SIDE:
        raise InputError(
            f"slices of {_size(recon)} pixels are too small for SSIM "
            f"({MIN_SIDE}×{MIN_SIDE} at least)"
        )
    n, n_ref = recon.shape[0], reference.shape[0]
    if n == n_ref:
        return Matched(recon, voxel_size, reference, 0, n_ref)
    start = first_slice(_provenance(recon_layer), n)
    if start is None:
        raise InputError(
            f"{names[0]} has {n} slices but {names[1]} {n_ref}, and {names[0]} records no "
            "slice range (provenance 'slices'): pick the reference volume it should match"
        )
    reference_start = first_slice(_provenance(reference_layer), n_ref) or 0
    first = start - reference_start
    if not 0 <= first <= n_ref - n:
        raise InputError(
            f"{names[0]} covers slices {start}:{start + n} but {names[1]} holds slices "
            f"{reference_start}:{reference_start + n_ref}: pick the reference volume it "
            "should match"
        )
    return Matched(recon, voxel_size, reference[first : first + n], first, n_ref)


def _size(volume: np.ndarray) -> str:
    return f"{volume.shape[1]}×{volume.shape[2]}"


def _cell(value: float, spec: str) -> str:
    return LEFT_OUT if np.isnan(value) else format(value, spec)


def summary_text(per_slice: SliceScores, mean: Scores, first: int, n_reference: int) -> str:
    """The line above the table: the means, which slices they cover, and why any is left out
    (constant reference) or has an infinite PSNR (identical to the reference)."""
    n = per_slice.psnr.size
    counted = f"{mean.n_slices} slices" if mean.n_slices == n else f"{mean.n_slices} of {n} slices"
    text = f"PSNR {mean.psnr:.2f} dB, SSIM {mean.ssim:.4f}: mean of {counted}"
    if n < n_reference:
        text += f" (reference slices {first}–{first + n - 1} of 0–{n_reference - 1})"
    left_out = first + np.flatnonzero(~per_slice.valid)
    if left_out.size:
        text += (
            f"; left out: {_slice_list(left_out)}, where the reference is constant "
            "(no data range to score)"
        )
    identical = first + np.flatnonzero(np.isinf(per_slice.psnr))
    if identical.size:
        text += f"; identical to the reference in {_slice_list(identical)} (PSNR inf)"
    return text


def _slice_list(slices: Sequence[int] | np.ndarray) -> str:
    """``slice 3`` or ``slices 0–2, 7`` (runs of consecutive slices joined)."""
    runs: list[list[int]] = []
    for z in (int(s) for s in slices):
        if runs and z == runs[-1][-1] + 1:
            runs[-1].append(z)
        else:
            runs.append([z])
    parts = [str(r[0]) if len(r) == 1 else f"{r[0]}–{r[-1]}" for r in runs]
    return ("slice " if len(slices) == 1 else "slices ") + ", ".join(parts)


def _compare(recon: np.ndarray, reference: np.ndarray) -> tuple[SliceScores, Scores, np.ndarray]:
    """Per-slice and mean scores and the float32 difference ``recon − reference`` (worker)."""
    per_slice = slice_scores(recon, reference)
    try:
        mean = per_slice.mean()
    except ValueError as exc:  # a constant reference (the shapes were checked)
        raise InputError(f"cannot score against this reference: {exc}") from None
    return per_slice, mean, recon - reference
