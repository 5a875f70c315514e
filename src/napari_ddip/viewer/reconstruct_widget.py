"""Dock widget "Reconstruct": a sinogram or k-space layer → a volume layer.

Classical methods (fbp / zero-filled, cg, tv) run through
:func:`napari_ddip.methods.reconstruct_measurement`; the diffusion methods through the engine
:func:`napari_ddip.recon.reconstruct`, whose events drive the progress bar (with the time
left) and a live preview in a layer ``"<result> preview"``, so the result of an earlier run
stays whole until this one finishes (a run that fails leaves it, and the labelled preview).
Cancel keeps the partial result. The result layer ``"<measurement> [<method>]"`` (replaced on
re-run, with its ``std`` layer when the run drew several posterior samples, removed when it
did not) has the measurement's voxel size as scale and the run's provenance (method,
settings, prior, seed, device, version, the measurement's own provenance) in its metadata,
which the napari-ddip TIFF writer saves.
"""

from __future__ import annotations

from dataclasses import fields
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, Label, LineEdit, SpinBox
from napari.layers import Image
from napari.qt.threading import FunctionWorker
from napari.utils.notifications import show_error, show_info

from napari_ddip.io import InputError
from napari_ddip.viewer.devices import device_choices
from napari_ddip.viewer.jobs import ReconJob, ReconResult, measurement_slab, run_recon, slice_range
from napari_ddip.viewer.layers import (
    measurement_from_layer,
    our_metadata,
    show_layer,
    volume_layer,
)
from napari_ddip.viewer.priors import PriorPicker
from napari_ddip.viewer.run_panel import RunPanel
from napari_ddip.viewer.settings_form import SettingsForm

if TYPE_CHECKING:
    import napari

#: Diffusion settings shown at once; the others are under "Advanced".
BASIC = ("nfe", "adapt_steps", "k_slices", "lr")
LABELS = {
    "nfe": "NFE (steps)",
    "adapt_steps": "L (adapt steps)",
    "k_slices": "K (slices/step)",
    "lr": "learning rate",
}
TOOLTIPS = {
    "nfe": "sampling steps = network evaluations per slice (Chung & Ye 2024: 50)",
    "adapt_steps": "optimiser steps per sampling step (auto: 10 CT, 5 MRI)",
    "k_slices": "slices drawn per adaptation step (D3IP)",
    "lr": "AdamW learning rate of the LoRA (auto: 1e-3 CT, 1e-4 MRI)",
    "timestep_power": "spacing of the sampling steps, t ∝ (i/(NFE−1))^p: 1 even (the paper), "
    "larger spends more steps near the end, where detail is set",
    "slice_batch": "slices per sampling batch (auto: 8 on CPU, 64 on a GPU, where they go "
    "through the network in one call); lower it when a GPU runs out of memory",
    "keep_optimizer": "carry the AdamW state of D3IP's shared LoRA across sampling steps "
    "(off: a fresh optimiser per step, as measured in BENCHMARKS)",
    "precision": "network arithmetic: auto (TF32 on a GPU, float32 on the CPU), fp32, tf32 "
    "(GPU) or bf16",
    "preview_every": "update the live preview every this many sampling steps (0: never)",
    "mbir_anchor": "D3IP mbir: weight of the pull towards the network's estimate in the ADMM "
    "data consistency (auto: 0 CT, 0.2 MRI; 0 is hard data consistency)",
    "admm_lam": "D3IP mbir: weight of the TV along z (auto: scaled to the data for CT, 1e-3 MRI)",
    "admm_rho": "D3IP mbir: ADMM penalty (auto: 1e-3 CT, 1e-2 MRI)",
}
DEFAULT_METHOD = "d3ip"


class ReconstructWidget(Container):
    """Pick a measurement layer, a method and its settings, and press Run.

    ``slices`` reconstructs a subset for a quick preview (``all``, ``12`` or ``10:14``); the
    result layer then covers those slices, placed at their depth. After a run
    :attr:`result` holds the last :class:`~napari_ddip.viewer.jobs.ReconResult`.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from napari_ddip.methods import METHODS
        from napari_ddip.recon import DIFFUSION_METHODS, ReconConfig

        self._viewer = viewer
        self._methods = METHODS
        self._diffusion = tuple(DIFFUSION_METHODS)
        self.measurement = ComboBox(label="measurement", choices=self._measurement_layers)
        self.method = ComboBox(label="method", choices=self._method_choices)
        self.summary = Label(value="")
        self.summary.native.setWordWrap(True)
        self.prior = PriorPicker(follow_new=True)
        own = ("method", "prior", "seed")  # chosen by their own widgets
        defaults = {k: v for k, v in ReconConfig().to_dict().items() if k not in own}
        optional = {
            f.name: int if str(f.type).startswith("int") else float for f in fields(ReconConfig)
        }
        rest = [key for key in defaults if key not in BASIC]
        self.basic = SettingsForm(defaults, BASIC, LABELS, optional, TOOLTIPS)
        self.advanced = SettingsForm(defaults, rest, LABELS, optional, TOOLTIPS)
        self.classical = {
            name: SettingsForm(m.defaults, list(m.defaults), prefix=f"{name}_")
            for name, m in METHODS.items()
            if name not in DIFFUSION_METHODS and m.defaults
        }
        self.slices = LineEdit(
            label="slices", value="all", tooltip="all, one slice (12) or start:stop (10:14)"
        )
        self.seed = SpinBox(label="seed", value=0, min=0, max=2**31 - 1)
        self.device = ComboBox(label="device", choices=device_choices())
        self.advanced_box = Container(labels=False)
        self.panel = RunPanel("Run")
        classical_widgets = [w for form in self.classical.values() for w in form.widgets]
        super().__init__(
            widgets=[
                self.measurement,
                self.method,
                self.summary,
                *self.prior.widgets,
                *self.basic.widgets,
                *classical_widgets,
                self.slices,
                self.seed,
                self.device,
                self.advanced_box,
                self.panel,
            ]
        )
        self._advanced_fields = Container(widgets=self.advanced.widgets)
        self._collapsible = _collapsible("Advanced", self._advanced_fields)
        self.advanced_box.native.layout().addWidget(self._collapsible)
        self.result: ReconResult | None = None
        self._device, self._loss = "", ""
        self.measurement.changed.connect(self.method.reset_choices)
        self.method.changed.connect(self._show_method_settings)
        self.panel.run_button.changed.connect(self.run)
        if DEFAULT_METHOD in self.method.choices:
            self.method.value = DEFAULT_METHOD
        self._show_method_settings()

    # -- choices ---------------------------------------------------------------------------
    def _measurement_layers(self, _: ComboBox) -> list[Image]:
        """Image layers, those holding a measurement first."""
        images = [layer for layer in self._viewer.layers if isinstance(layer, Image)]
        return sorted(images, key=lambda layer: "measurement" not in our_metadata(layer.metadata))

    def _method_choices(self, _: ComboBox) -> list[tuple[str, str]]:
        """Methods that apply to the chosen measurement's kind (all when it has none)."""
        layer = self.measurement.value
        kind = our_metadata(layer.metadata).get("kind") if layer is not None else None
        usable = [m for m in self._methods.values() if kind not in ("ct", "mri") or kind in m.kinds]
        diffusion = [m for m in usable if m.name in self._diffusion]
        classical = [m for m in usable if m.name not in self._diffusion]
        return [(m.name, m.name) for m in diffusion + classical]

    def _show_method_settings(self, *_: Any) -> None:
        method = self.method.value
        is_diffusion = method in self._diffusion
        self.summary.value = self._methods[method].summary if method else ""
        self.prior.visible = is_diffusion
        self.basic.show(is_diffusion)
        self.advanced_box.visible = is_diffusion
        for name, form in self.classical.items():
            form.show(name == method)

    # -- running ---------------------------------------------------------------------------
    def run(self) -> FunctionWorker | None:
        """Reconstruct in a thread worker (returned; None when the input is refused)."""
        layer = self.measurement.value
        try:
            job = self._job(layer)
        except InputError as exc:
            show_error(str(exc))
            return None
        self.result = None
        name = f"{layer.name} [{job.method}]"
        place = _placement(layer, job)
        on_event = partial(self._on_event, name, place)
        on_result = partial(self._on_result, name, place)
        busy = [self.measurement, self.method]
        return self.panel.start(partial(run_recon, job), on_event, on_result, busy)

    def _job(self, layer: Image | None) -> ReconJob:
        """The run the current settings describe; raises :class:`InputError` saying what to
        change."""
        from napari_ddip.methods import get_method, resolve_settings
        from napari_ddip.recon import ReconConfig

        m = measurement_from_layer(layer)
        method = get_method(self.method.value, m.kind).name
        z_range = slice_range(self.slices.value, m.data.shape[0])
        common = {
            "measurement": measurement_slab(m, *z_range),
            "method": method,
            "seed": self.seed.value,
            "device": self.device.value,
            "z_range": z_range,
            "source": layer.name,
        }
        if method not in self._diffusion:
            form = self.classical.get(method)
            settings = resolve_settings(self._methods[method], form.values() if form else {})
            return ReconJob(config=None, settings=settings, **common)
        values = self.basic.values() | self.advanced.values()
        try:
            config = ReconConfig(
                method=method, prior=self.prior.require(), seed=self.seed.value, **values
            )
        except ValueError as exc:
            raise InputError(str(exc)) from None
        return ReconJob(config=config, **common)

    def _on_event(self, name: str, place: dict[str, Any], event: Any) -> None:
        from napari_ddip.recon import Adapted, Preview, Progress, Started

        if isinstance(event, Started):
            self._device = event.device
            self._loss = ""
            self.panel.show_progress(0, event.total, None, f"{event.method} on {event.device}")
        elif isinstance(event, Progress):
            detail = f"{event.phase} on {self._device}{self._loss}"
            self.panel.show_progress(event.step, event.total, event.eta, detail)
        elif isinstance(event, Adapted):
            self._loss = f" · loss {event.loss:.3g}"
        elif isinstance(event, Preview):
            provenance = {"status": f"preview at t = {event.t}", **place["provenance"]}
            self._show(f"{name} preview", place, event.volume, provenance)

    def _on_result(self, name: str, place: dict[str, Any], result: ReconResult | None) -> None:
        if result is None:
            self.panel.status.value = "cancelled"
            show_info(f"cancelled: {self.method.value} keeps no partial result")
            return
        self.result = result
        self._show(name, place, result.volume, result.provenance)
        self._remove(f"{name} preview")
        if result.std is not None:
            provenance = result.provenance | {"output": "posterior standard deviation"}
            self._show(f"{name} std", place, result.std, provenance, colormap="magma")
        else:  # an earlier run's std would pass for this one's
            self._remove(f"{name} std")
        if result.partial:
            self.panel.status.value = "cancelled: partial result kept"
            show_info(f"cancelled: '{name}' holds the partial result")
        else:
            self.panel.progress.value = self.panel.progress.max
            self.panel.status.value = f"done in {result.provenance.get('seconds', 0.0):.1f} s"

    def _show(
        self,
        name: str,
        place: dict[str, Any],
        volume: np.ndarray,
        provenance: dict[str, Any],
        colormap: str = "gray",
    ) -> None:
        data, kwargs, kind = volume_layer(volume, place["scale"], name, provenance)
        kwargs |= {"translate": place["translate"], "colormap": colormap}
        show_layer(self._viewer, (data, kwargs, kind))

    def _remove(self, name: str) -> None:
        """Remove the layer ``name`` if there is one."""
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)


def _placement(layer: Image, job: ReconJob) -> dict[str, Any]:
    """Scale, translate (the subset's depth) and what a preview layer records."""
    scale = job.measurement.voxel_size
    translate = (float(layer.translate[0]) + job.z_range[0] * scale[0], 0.0, 0.0)
    provenance = {"method": job.method, "source_layer": job.source, "slices": list(job.z_range)}
    return {"scale": scale, "translate": translate, "provenance": provenance}


def _collapsible(title: str, content: Container) -> Any:
    """A folded section (superqt's QCollapsible, which napari brings) holding ``content``."""
    from superqt import QCollapsible

    box = QCollapsible(title)
    content.margins = (0, 0, 0, 0)
    box.addWidget(content.native)
    return box
