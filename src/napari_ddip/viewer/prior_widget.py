"""Dock widget "Fine-tune prior": adapt a diffusion prior to a few slices of your own images.

The small-dataset setting of Hu et al. 2024 (docs/architecture.md §4): about ten slices, spread
evenly over the chosen image layers, fine-tune a prior (shipped, fine-tuned before, or a file)
as ``napari-ddip finetune-prior`` does (same defaults: flips and 90° rotations, EMA 0.99). The
run writes ``<folder>/<name>/<name>.safetensors`` (+ ``.json`` config, ``.md`` model card,
``loss.csv`` and a checkpoint) and makes the new prior selectable in the Reconstruct widget.
Cancel stops after the current step and still writes the prior trained until then; running
again with the same folder and name resumes from the checkpoint.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, FileEdit, LineEdit, Select, SpinBox
from napari.layers import Image
from napari.qt.threading import FunctionWorker
from napari.utils.notifications import show_error, show_info

from napari_ddip.io import InputError
from napari_ddip.viewer.devices import device_choices
from napari_ddip.viewer.jobs import (
    FinetuneJob,
    FinetuneResult,
    TrainProgress,
    pick_slices,
    run_finetune,
)
from napari_ddip.viewer.layers import our_metadata, volume_from_layer
from napari_ddip.viewer.priors import USER_PRIORS, PriorPicker
from napari_ddip.viewer.run_panel import RunPanel
from napari_ddip.viewer.settings_form import SettingsForm

if TYPE_CHECKING:
    import napari

#: Where fine-tuned priors go unless the user picks another folder.
DEFAULT_FOLDER = Path.home() / "napari-ddip" / "priors"
#: Slices to fine-tune on (the small-dataset setting of Hu et al. 2024).
DEFAULT_IMAGES = 10
OPTIONS = ("steps", "lr", "batch_size", "seed")
LABELS = {"lr": "learning rate", "batch_size": "batch size"}


class PriorWidget(Container):
    """Pick image layers, a base prior, the training options and an output, and press
    Fine-tune. After a run :attr:`result` holds the
    :class:`~napari_ddip.viewer.jobs.FinetuneResult`."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from napari_ddip.prior.train import train_options  # torch: when the dock opens

        self._viewer = viewer
        options = train_options(finetune=True)
        self.images = Select(label="image layers", choices=self._volume_layers)
        self.n_images = SpinBox(
            label="slices",
            value=DEFAULT_IMAGES,
            min=1,
            max=100_000,
            tooltip="fine-tune on this many slices, spread evenly over the chosen layers",
        )
        self.base = PriorPicker(label="base prior")
        self.training = SettingsForm(
            {o.name: o.default for o in options},
            OPTIONS,
            LABELS,
            tooltips={o.name: o.help for o in options},
        )
        self.folder = FileEdit(label="output folder", mode="d", value=DEFAULT_FOLDER)
        self.prior_name = LineEdit(
            label="name",
            value="finetuned",
            tooltip="file stem of the new prior; an earlier run of this name in the folder, "
            "on the same slices, is resumed",
        )
        self.device = ComboBox(label="device", choices=device_choices())
        self.panel = RunPanel("Fine-tune")
        super().__init__(
            widgets=[
                self.images,
                self.n_images,
                *self.base.widgets,
                *self.training.widgets,
                self.folder,
                self.prior_name,
                self.device,
                self.panel,
            ]
        )
        self.panel.run_button.changed.connect(self.run)
        self.result: FinetuneResult | None = None

    def _volume_layers(self, _: Select) -> list[Image]:
        return [
            layer
            for layer in self._viewer.layers
            if isinstance(layer, Image) and "measurement" not in our_metadata(layer.metadata)
        ]

    def run(self) -> FunctionWorker | None:
        """Fine-tune in a thread worker (returned; None when the input is refused)."""
        try:
            job = self._job()
        except InputError as exc:
            show_error(str(exc))
            return None
        self.result = None
        work = partial(run_finetune, job)
        on_result = partial(self._on_result, job.name)
        return self.panel.start(work, self._on_event, on_result, busy=[self.images])

    def _job(self) -> FinetuneJob:
        """The run the current settings describe; raises :class:`InputError`."""
        layers = list(self.images.value)
        if not layers:
            raise InputError("no image layer chosen: pick one or more image volumes to learn from")
        volumes = [volume_from_layer(layer)[0] for layer in layers]
        name = self.prior_name.value.strip()
        if not re.fullmatch(r"\w[\w.-]*", name):  # not "..": the prior goes in its own folder
            raise InputError(f"name {name!r}: use letters, digits, '-', '_' or '.' (not first)")
        if not self.folder.line_edit.value.strip():  # magicgui reads it as ".", napari's cwd
            raise InputError("no output folder: choose where the fine-tuned prior goes")
        return FinetuneJob(
            images=pick_slices(volumes, self.n_images.value),
            base=self.base.require(),
            folder=Path(self.folder.value).expanduser(),
            name=name,
            options=self.training.values(),
            device=self.device.value,
        )

    def _on_event(self, event: TrainProgress) -> None:
        self.panel.show_progress(event.step, event.total, event.eta, f"loss {event.loss:.4f}")

    def _on_result(self, name: str, result: FinetuneResult) -> None:
        self.result = result
        USER_PRIORS.add(name, result.path)
        stopped = f"stopped at step {result.step}; " if result.stopped else ""
        self.panel.status.value = f"{stopped}wrote {result.path.name}"
        show_info(f"prior '{name}' ({stopped}{result.path}) is now a choice in Reconstruct")
