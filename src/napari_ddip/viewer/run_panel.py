"""Run / Cancel buttons, a progress bar and a status line for long background work.

:meth:`RunPanel.start` runs ``work(emit, cancel)`` through
:func:`~napari_ddip.viewer.background.run_with_events`: Run (and the given widgets) stay
disabled and Cancel enabled until it ends; Cancel sets the ``threading.Event`` the work polls,
and so does closing the widget's dock (or the viewer), after which the run leaves the widgets
alone. A run that fails leaves "failed: <why>" on the status line; a cancelled one leaves
"cancelled at <where it was>" on the bar (no time left).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from magicgui.widgets import Container, Label, ProgressBar, PushButton, Widget
from napari.qt.threading import FunctionWorker
from qtpy.QtWidgets import QSizePolicy

from napari_ddip.run_time import format_seconds
from napari_ddip.viewer.background import run_with_events

T = TypeVar("T")
Work = Callable[[Callable[[Any], None], threading.Event], T]


class RunPanel(Container):
    """The lower part of a long-running widget; :attr:`cancel_event` is the current run's."""

    def __init__(self, run_text: str) -> None:
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        #: A note beside the buttons (the Reconstruct widget: the run's estimated time).
        self.note = Label(value="")
        buttons = Container(
            widgets=[self.run_button, self.cancel_button, self.note], layout="horizontal"
        )
        buttons.margins = (0, 0, 0, 0)
        self.progress = ProgressBar(value=0, min=0, max=1)
        self.status = Label(value="")
        # one line that never widens the dock (long text is cut; the tooltip has it all)
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.status.changed.connect(lambda text: setattr(self.status, "tooltip", text))
        super().__init__(widgets=[buttons, self.progress, self.status], labels=False)
        self.margins = (0, 0, 0, 0)
        self.cancel_event = threading.Event()
        self._steps = ""  # where the current run was at its last progress
        self._failed_run = False
        self.cancel_button.changed.connect(self.cancel)

    def start(
        self,
        work: Work[T],
        on_event: Callable[[Any], None],
        on_result: Callable[[T], None],
        busy: Sequence[Widget] = (),
    ) -> FunctionWorker:
        """Run ``work(emit, cancel)`` in a thread worker (returned)."""
        self.cancel_event = cancel = threading.Event()
        self._steps, self._failed_run = "", False
        self.progress.value, self.progress.max = 0, 1
        self.progress.native.setFormat("%p%")
        self.status.value = "starting…"
        self.note.value = ""

        def job(emit: Callable[[Any], None]) -> T:
            return work(emit, cancel)

        self.cancel_button.enabled = True
        busy = [self.run_button, *busy]
        return run_with_events(
            job, on_event, on_result, busy, self._finished, self._failed, on_close=cancel.set
        )

    def cancel(self) -> None:
        """Ask the running work to stop (it keeps what it has)."""
        self.cancel_event.set()
        self.cancel_button.enabled = False
        self.status.value = "cancelling…"

    def show_progress(
        self, step: int, total: int, eta: float | None, detail: str = "", words: str = ""
    ) -> None:
        """Move the bar to ``step`` of ``total`` with ``words`` (where the run is; default
        ``step/total``) and the time left on it; ``detail`` below."""
        self.progress.max = max(total, 1)
        self.progress.value = min(step, total)
        left = "" if eta is None else f" · {format_seconds(eta)} left"
        self._steps = words or f"{step}/{total}"
        self.progress.native.setFormat(f"{self._steps}{left}")
        self.status.value = detail

    def _failed(self, message: str) -> None:
        self._failed_run = True
        self.progress.native.setFormat("%p%")  # no time left on the bar
        self.status.value = f"failed: {message}"

    def _finished(self) -> None:
        self.cancel_button.enabled = False
        stopped = self.cancel_event.is_set() and self.progress.value < self.progress.max
        if stopped and not self._failed_run:
            where = f" at {self._steps}" if self._steps else ""
            self.progress.native.setFormat(f"cancelled{where}")
