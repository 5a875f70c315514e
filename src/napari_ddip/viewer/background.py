"""Run a widget's work in a napari thread worker, with its buttons disabled meanwhile.

Input problems (:class:`~napari_ddip.io.InputError`) raised by the work become a napari error
notification with the message; anything else is a bug and goes to napari's error reporting.
Either way an ``on_error(message)`` callback hears of it. Long work reports as it goes through
:func:`run_with_events`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from magicgui.widgets import Widget
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal

from napari_ddip.io import InputError

T = TypeVar("T")


def run_in_background(
    work: Callable[[], T],
    on_result: Callable[[T], None],
    busy: Sequence[Widget],
    on_finished: Callable[[], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> FunctionWorker:
    """Start ``work()`` in a thread; ``on_result(value)`` runs in the GUI thread afterwards.

    If ``work`` raises, ``on_error(message)`` runs instead (after the error is shown).
    ``busy`` widgets are disabled until the worker finishes, whatever the outcome; then
    ``on_finished()`` runs (also whatever the outcome).
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
            if on_error is not None:
                on_error(error)

    def finished() -> None:
        for widget in busy:
            widget.enabled = True
        if on_finished is not None:
            on_finished()

    for widget in busy:
        widget.enabled = False
    worker = create_worker(guarded, _start_thread=False)
    worker.returned.connect(returned)
    if on_error is not None:  # a bug: napari shows it, on_error only hears of it
        worker.errored.connect(lambda exc: on_error(f"{type(exc).__name__}: {exc}"))
    worker.finished.connect(finished)
    worker.start()
    return worker


class _Relay(QObject):
    """Carries objects from the worker thread to the GUI thread (a queued Qt connection)."""

    message = Signal(object)  # not "event": that is QObject.event()


def run_with_events(
    work: Callable[[Callable[[Any], None]], T],
    on_event: Callable[[Any], None],
    on_result: Callable[[T], None],
    busy: Sequence[Widget],
    on_finished: Callable[[], None] | None = None,
    on_error: Callable[[str], None] | None = None,
) -> FunctionWorker:
    """As :func:`run_in_background`, for work that reports as it goes: ``work(emit)`` may call
    ``emit(obj)`` from its thread, and ``on_event(obj)`` then runs in the GUI thread, in order
    and before ``on_result``."""
    relay = _Relay()  # made here, so it lives in the GUI thread
    relay.message.connect(on_event)

    def finished() -> None:  # holds the relay until every event has been delivered
        relay.deleteLater()
        if on_finished is not None:
            on_finished()

    job = partial(work, relay.message.emit)
    return run_in_background(job, on_result, busy, finished, on_error)
