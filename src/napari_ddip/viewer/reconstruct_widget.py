"""Dock widget "Reconstruct": a sinogram or k-space layer → a volume layer.

Every method runs through :func:`napari_ddip.methods.prepare` (checked when Run is pressed)
and :func:`napari_ddip.methods.run` (in a thread), as on the command line. The form shows the
settings the chosen method takes (its record in :data:`napari_ddip.methods.METHODS`), and
for methods that can, files to warm-start from and to save the adaptation to (Advanced).
A preset (:data:`napari_ddip.presets.PRESETS`: preview, standard, quality, best, paper) sets the
diffusion fields to its values over the defaults (and the preview's middle slices); what the
user types after wins. When a diffusion run starts, its estimated time
(``napari_ddip.recon.estimate``) shows beside Run, with a warning where it is long.
The run's events drive the progress bar (where the run is in sampling and adaptation steps,
and the time left, from the estimate until work is measured) and a live preview in a layer
``"<result> preview"``, so the result of an earlier run stays whole until this one finishes
(a run that fails leaves it, and the labelled preview).
Cancel keeps the partial result as ``"<measurement> [<method>, partial <step>/<total>]"``
beside any complete one. The status line is made afresh for every run (method, device, loss).
The result layer ``"<measurement> [<method>]"`` (replaced on re-run, with its ``std`` layer
when the run drew several posterior samples, removed when it did not) has the measurement's
voxel size as scale and the run's provenance (method, settings, prior, seed, device, version,
the measurement's own provenance) in its metadata, which the napari-ddip TIFF writer saves.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, SpinBox
from napari.layers import Image
from napari.qt.threading import FunctionWorker
from napari.utils.notifications import show_error, show_info, show_warning

from napari_ddip.io import InputError
from napari_ddip.viewer.devices import device_choices
from napari_ddip.viewer.jobs import ReconJob, measurement_slab, run_recon, slice_range
from napari_ddip.viewer.layers import (
    STD_OUTPUT,
    measurement_from_layer,
    merge_preview,
    our_metadata,
    show_layer,
    volume_layer,
)
from napari_ddip.viewer.priors import PriorPicker
from napari_ddip.viewer.run_panel import RunPanel
from napari_ddip.viewer.settings_form import SettingsForm

if TYPE_CHECKING:
    import napari

    from napari_ddip.methods import Method, Reconstruction

#: Diffusion settings shown at once; the others are under "Advanced".
BASIC = ("nfe", "adapt_steps", "k_slices", "lr", "equivariant")
LABELS = {
    "nfe": "NFE (steps)",
    "equivariant": "equivariant rotations",
    "adapt_steps": "L (adapt steps)",
    "k_slices": "K (slices/step)",
    "lr": "learning rate",
}
#: Tooltip of the field that is a command-line option, not a setting (the settings' tooltips
#: are their help, :func:`napari_ddip.settings_doc.tooltips`).
SAVE_ADAPTATION_TIP = "a .safetensors file to save this run's adapted LoRA to (empty: none)"
DEFAULT_METHOD = "dds-tv"


class ReconstructWidget(Container):
    """Pick a measurement layer, a method and its settings, and press Run.

    ``slices`` reconstructs a subset for a quick preview (``all``, ``12`` or ``10:14``); the
    result layer then covers those slices, placed at their depth. After a run
    :attr:`result` holds the last :class:`~napari_ddip.methods.Reconstruction`.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from napari_ddip.methods import METHODS, WARM_START
        from napari_ddip.presets import DEFAULT_PRESET, PRESETS
        from napari_ddip.recon.config import ENGINE_SETTINGS
        from napari_ddip.settings_doc import tooltips

        self._viewer = viewer
        self._methods = METHODS
        self._presets = PRESETS
        self.measurement = ComboBox(label="measurement", choices=self._measurement_layers)
        self.method = ComboBox(label="method", choices=self._method_choices)
        self.preset = ComboBox(
            label="preset",
            choices=list(PRESETS),
            value=DEFAULT_PRESET,
            tooltip="\n".join(f"{p.name}: {p.summary}" for p in PRESETS.values())
            + "\n(sets the fields below; change any of them after)",
        )
        self.summary = Label(value="")
        self.summary.native.setWordWrap(True)
        self.prior = PriorPicker(follow_new=True, first=ENGINE_SETTINGS["prior"].default)
        self.prior.choice.tooltip = ENGINE_SETTINGS["prior"].help
        engine = {k: s for k, s in ENGINE_SETTINGS.items() if k != "prior"}  # its own picker
        defaults = {key: s.default for key, s in engine.items()}
        optional = {key: s.kind for key, s in engine.items()}
        rest = [key for key in defaults if key not in BASIC]
        tips = tooltips(engine)
        self.basic = SettingsForm(defaults, BASIC, LABELS, optional, tips)
        self.advanced = SettingsForm(defaults, rest, LABELS, optional, tips)
        self.warm_start = _file_edit("warm start", "r", WARM_START.help)
        self.save_adaptation = _file_edit("save adaptation", "w", SAVE_ADAPTATION_TIP)
        self.classical = {
            name: SettingsForm(
                m.defaults, list(m.defaults), tooltips=tooltips(m.settings), prefix=f"{name}_"
            )
            for name, m in METHODS.items()
            if m.diffusion is None and m.defaults
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
                self.preset,
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
        adaptation_files = [self.warm_start, self.save_adaptation]
        self._advanced_fields = Container(widgets=[*self.advanced.widgets, *adaptation_files])
        self._collapsible = _collapsible("Advanced", self._advanced_fields)
        self.advanced_box.native.layout().addWidget(self._collapsible)
        self.result: Reconstruction | None = None
        self.measurement.changed.connect(self.method.reset_choices)
        self.method.changed.connect(self._show_method_settings)
        self.preset.changed.connect(self._apply_preset)
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
        diffusion = [m for m in usable if m.diffusion is not None]
        classical = [m for m in usable if m.diffusion is None]
        return [(m.name, m.name) for m in diffusion + classical]

    def _show_method_settings(self, *_: Any) -> None:
        """Show the settings the chosen method takes; the adaptation files are enabled for
        the methods whose record says they can use them."""
        method = self._methods.get(self.method.value)
        takes = set(method.settings) if method is not None else set()
        is_diffusion = method is not None and method.diffusion is not None
        self.summary.value = method.summary if method is not None else ""
        self.prior.visible = is_diffusion
        self.basic.show(takes if is_diffusion else ())
        self.advanced.show(takes if is_diffusion else ())
        self.advanced_box.visible = is_diffusion
        self.warm_start.enabled = method is not None and method.can_warm_start
        self.save_adaptation.enabled = method is not None and method.can_save_adaptation
        for name, form in self.classical.items():
            form.show(form.keys if method is not None and name == method.name else ())

    def _apply_preset(self, *_: Any) -> None:
        """Set the diffusion settings to the chosen preset's values over the defaults (for
        the measurement's kind; CT when it has none) and the slices to its middle slices."""
        preset = self._presets[self.preset.value]
        layer = self.measurement.value
        kind = our_metadata(layer.metadata).get("kind") if layer is not None else None
        values = preset.for_kind(kind if kind in ("ct", "mri") else "ct")
        self.basic.reset(values)
        self.advanced.reset(values)
        n = int(layer.data.shape[0]) if layer is not None else 0
        start, stop = preset.slice_range(n)
        self.slices.value = "all" if (start, stop) == (0, n) else f"{start}:{stop}"

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
        name = f"{layer.name} [{job.request.method.name}]"
        place = _placement(layer, job)
        method, device = job.request.method.name, str(job.request.device)
        run = _RunState(source=layer.name, method=method, device=device)
        on_event = partial(self._on_event, name, place, run)
        on_result = partial(self._on_result, name, place, run)
        busy = [self.measurement, self.method]
        return self.panel.start(partial(run_recon, job), on_event, on_result, busy)

    def _job(self, layer: Image | None) -> ReconJob:
        """The run the current settings describe, checked by
        :func:`~napari_ddip.methods.prepare`; raises :class:`InputError` saying what to
        change."""
        from napari_ddip.methods import prepare

        m = measurement_from_layer(layer)
        method = self._methods[self.method.value]
        z_range = slice_range(self.slices.value, m.data.shape[0])
        save = None
        if method.diffusion is None:
            form = self.classical.get(method.name)
            settings = form.values() if form else {}
        else:
            settings, save = self._diffusion_settings(method)
        slab = measurement_slab(m, *z_range)
        request = prepare(slab, method.name, settings, self.device.value, self.seed.value)
        return ReconJob(request, z_range, layer.name, save)

    def _diffusion_settings(self, method: Method) -> tuple[dict[str, Any], Path | None]:
        """The settings ``method`` takes from the forms and the prior picker (and the warm
        start file), and the file to save its adaptation to (None: not saved)."""
        takes = method.settings
        values = self.basic.values(takes) | self.advanced.values(takes)
        values["prior"] = self.prior.require()
        warm, save = _chosen_file(self.warm_start), _chosen_file(self.save_adaptation)
        if method.can_warm_start and warm is not None:
            values["warm_start"] = str(warm)
        if not method.can_save_adaptation or save is None:
            return values, None
        if save.suffix != ".safetensors":
            raise InputError(f"save adaptation {save}: use a .safetensors name")
        return values, save

    def _on_event(self, name: str, place: dict[str, Any], run: _RunState, event: Any) -> None:
        from napari_ddip.recon import Adapted, Preview, Progress, Started
        from napari_ddip.run_time import ended_text

        if isinstance(event, Started):
            run.device, run.total, run.n_slices = event.device, event.total, event.n_slices
            self.panel.show_progress(0, event.total, event.estimate, run.status(event.method))
            self._show_estimate(event)
        elif isinstance(event, Progress):
            run.step, run.total = event.step, event.total
            status, words = run.status(event.phase), event.describe()
            self.panel.show_progress(event.step, event.total, event.eta, status, words)
        elif isinstance(event, Adapted):
            run.loss = event.loss
            if event.ended:
                run.ended = ended_text(event)
        elif isinstance(event, Preview):
            shown = f"{name} preview"
            earlier = self._viewer.layers[shown].data if shown in self._viewer.layers else None
            volume = merge_preview(earlier, run.n_slices, event.slices, event.volume)
            provenance = {"status": f"preview at t = {event.t}", **place["provenance"]}
            self._show(shown, place, volume, provenance)

    def _show_estimate(self, event: Any) -> None:
        """The run's estimated time beside Run; a warning where it is long."""
        from napari_ddip.run_time import estimate_text, is_long

        if event.estimate is None:
            return
        text = estimate_text(event, self._methods[event.method].diffusion)
        self.panel.note.value = text
        self.panel.note.tooltip = text
        if is_long(event.estimate):
            self.panel.note.value = f"⚠ {text}"
            show_warning(
                f"{event.method}: {text}; the preview preset gives a first look in about a "
                "minute (Cancel keeps what is done)"
            )

    def _on_result(
        self, name: str, place: dict[str, Any], run: _RunState, result: Reconstruction | None
    ) -> None:
        if result is None:
            self.panel.status.value = "cancelled"
            show_info(f"cancelled: {run.method} keeps no partial result")
            return
        self.result = result
        self._remove(f"{name} preview")
        if result.partial:  # a name of its own: an earlier complete result stays as it was
            name = f"{run.source} [{run.method}, partial {run.step}/{run.total}]"
        self._show(name, place, result.volume, result.provenance)
        if result.std is not None:
            provenance = result.provenance | {"output": STD_OUTPUT}
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


@dataclass
class _RunState:
    """What one run has reported up to now (the status line and a partial result's name)."""

    source: str  # the measurement layer's name
    method: str
    device: str  # the checked request's device (the engine's Started event names it again)
    loss: float | None = None
    step: int = 0
    total: int = 0
    n_slices: int = 0
    ended: str = ""  # where the adaptation ended at the measurement's noise, in words

    def status(self, phase: str) -> str:
        """``<phase> on <device>[ · loss <loss>][ · adaptation ended at …]``."""
        loss = "" if self.loss is None else f" · loss {self.loss:.3g}"
        ended = f" · {self.ended}" if self.ended else ""
        return f"{phase} on {self.device}{loss}{ended}"


def _file_edit(label: str, mode: str, tooltip: str) -> FileEdit:
    """A ``.safetensors`` file picker (``mode`` ``r``: an existing file, ``w``: a new one)."""
    return FileEdit(label=label, mode=mode, filter="*.safetensors", tooltip=tooltip, value="")


def _chosen_file(picker: FileEdit) -> Path | None:
    """The file typed or picked in ``picker``, None when its field is empty (its ``value``
    would be the working directory)."""
    text = picker.line_edit.value.strip()
    return Path(text).expanduser() if text else None


def _placement(layer: Image, job: ReconJob) -> dict[str, Any]:
    """Scale, translate (the subset's depth) and what a preview layer records."""
    scale = job.request.measurement.voxel_size
    translate = (float(layer.translate[0]) + job.z_range[0] * scale[0], 0.0, 0.0)
    method = job.request.method.name
    provenance = {"method": method, "source_layer": job.source, "slices": list(job.z_range)}
    return {"scale": scale, "translate": translate, "provenance": provenance}


def _collapsible(title: str, content: Container) -> Any:
    """A folded section (superqt's QCollapsible, which napari brings) holding ``content``."""
    from superqt import QCollapsible

    box = QCollapsible(title)
    content.margins = (0, 0, 0, 0)
    box.addWidget(content.native)
    return box
