"""Dock widget "Simulate measurement": an image volume → a CT sinogram or MRI k-space layer.

Wraps :func:`napari_ddip.simulate.simulate_ct` / :func:`~napari_ddip.simulate.simulate_mri`;
the new layer (named after the image, replaced on re-run) carries the measurement for
reconstruction, as described in :mod:`napari_ddip.viewer.layers`.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FloatSpinBox, PushButton, SpinBox
from napari.layers import Image
from napari.qt.threading import FunctionWorker
from napari.utils.notifications import show_error

from napari_ddip.io import InputError, Measurement
from napari_ddip.viewer.background import run_in_background
from napari_ddip.viewer.layers import measurement_layer, show_layer, volume_from_layer

if TYPE_CHECKING:
    import napari

MODALITIES = ("CT", "MRI")
MASKS = ("poisson", "uniform1d")  # napari_ddip.simulate.MASKS (that module imports torch)


class SimulateWidget(Container):
    """Settings and a button; the output layer is ``"<image> sinogram"`` / ``"<image> k-space"``.

    CT: ``views`` over ``angular range`` degrees (< 180 = limited angle), Gaussian ``noise``
    relative to mean |sinogram|. MRI: ``acceleration`` with a Poisson-disc or 1D-uniform
    ``mask``, ``coils`` simulated coils (maps kept), complex Gaussian ``noise`` relative to
    mean |k|. ``seed`` fixes the noise and the mask.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.image = ComboBox(label="image", choices=self._image_layers)
        self.modality = ComboBox(label="modality", choices=MODALITIES, value="CT")
        self.views = SpinBox(label="views", value=60, min=1, max=3600)
        self.angular_range = FloatSpinBox(
            label="angular range (°)", value=180.0, min=1.0, max=180.0, step=5.0
        )
        self.accel = FloatSpinBox(label="acceleration", value=4.0, min=1.0, max=32.0, step=0.5)
        self.mask = ComboBox(label="mask", choices=MASKS, value="poisson")
        self.coils = SpinBox(label="coils", value=1, min=1, max=32)
        self.noise = FloatSpinBox(
            label="noise (relative)", value=0.01, min=0.0, max=1.0, step=0.005
        )
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.run_button = PushButton(text="Simulate")
        super().__init__(
            widgets=[
                self.image,
                self.modality,
                self.views,
                self.angular_range,
                self.accel,
                self.mask,
                self.coils,
                self.noise,
                self.seed,
                self.run_button,
            ]
        )
        self.modality.changed.connect(self._show_modality_settings)
        self.run_button.changed.connect(self.run)
        self._show_modality_settings()

    def _image_layers(self, _: ComboBox) -> list[Image]:
        return [layer for layer in self._viewer.layers if isinstance(layer, Image)]

    def _show_modality_settings(self) -> None:
        is_ct = self.modality.value == "CT"
        for widget in (self.views, self.angular_range):
            widget.visible = is_ct
        for widget in (self.accel, self.mask, self.coils):
            widget.visible = not is_ct

    def run(self) -> FunctionWorker | None:
        """Simulate in a thread worker (returned; None when the input is refused)."""
        layer = self.image.value
        try:
            volume, voxel_size = volume_from_layer(layer)
        except InputError as exc:
            show_error(str(exc))
            return None
        settings = {"noise": self.noise.value, "seed": self.seed.value, "voxel_size": voxel_size}
        if self.modality.value == "CT":
            settings |= {"n_views": self.views.value, "angular_range": self.angular_range.value}
            name = f"{layer.name} sinogram"
        else:
            settings |= {"accel": self.accel.value, "mask": self.mask.value}
            settings |= {"coils": self.coils.value}
            name = f"{layer.name} k-space"
        work = partial(_simulate, self.modality.value, volume, settings)
        return run_in_background(work, partial(self._show, name), busy=[self.run_button])

    def _show(self, name: str, m: Measurement) -> None:
        show_layer(self._viewer, measurement_layer(m, name))


def _simulate(modality: str, volume: np.ndarray, settings: dict[str, Any]) -> Measurement:
    """``simulate_ct`` or ``simulate_mri`` of ``volume`` ``(Z, Y, X)`` (runs in the worker)."""
    from napari_ddip.simulate import simulate_ct, simulate_mri

    simulate = simulate_ct if modality == "CT" else simulate_mri
    return simulate(volume, **settings)
