"""Run a widget's work in a napari thread worker, with its buttons disabled meanwhile.

Input problems (:class:`~napari_ddip.io.InputError`) raised by the work become a napari error
notification with the message; anything else is a bug and goes to napari's error reporting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from magicgui.widgets import Widget
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_error

from napari_ddip.io import InputError

T = TypeVar("T")


def run_in_background(
    work: Callable[[], T], on_result: Callable[[T], None], busy: Sequence[Widget]
) -> FunctionWorker:
    """Start ``work()`` in a thread; ``on_result(value)`` runs in the GUI thread afterwards.

    ``busy`` widgets are disabled until the worker finishes, whatever the outcome.
    """

    def guarded() -> tuple[Any, str | None]:
        try:
            return work(), None
        except InputError as exc:
            return None, str(exc)

    def returned(outcome: tuple[Any, str | None]) -> None:
        value, error = outcome
        if error is None:
            on_result(value)
        else:
            show_error(error)

    def finished() -> None:
        for widget in busy:
            widget.enabled = True

    for widget in busy:
        widget.enabled = False
    worker = create_worker(guarded, _start_thread=False)
    worker.returned.connect(returned)
    worker.finished.connect(finished)
    worker.start()
    return worker
