"""Run a widget's work in a napari thread worker, with its buttons disabled meanwhile.

Input problems (:class:`~napari_ddip.io.InputError`) raised by the work become a napari error
notification with the message; anything else is a bug and goes to napari's error reporting.
Either way an ``on_error(message)`` callback hears of it. Long work reports as it goes through
:func:`run_with_events`.

A run belongs to the napari dock widget that holds its widgets. napari closes a dock (its ×,
``remove_dock_widget``) by orphaning the inner widget, which lives on hidden, and deleting the
dock; closing the viewer deletes the docks with it. Once the dock is deleted an ``on_close()``
callback asks the work to stop, and the run's other callbacks do nothing: their widgets are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from magicgui.widgets import Widget
from napari.qt.threading import FunctionWorker, create_worker
from napari.utils.notifications import show_error
from qtpy.compat import isalive
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QDockWidget, QWidget

from napari_ddip.io import InputError

T = TypeVar("T")


def run_in_background(
    work: Callable[[], T],
    on_result: Callable[[T], None],
    busy: Sequence[Widget],
    on_finished: Callable[[], None] | None = None,
    on_error: Callable[[str], None] | None = None,
    on_close: Callable[[], None] | None = None,
) -> FunctionWorker:
    """Start ``work()`` in a thread; ``on_result(value)`` runs in the GUI thread afterwards.

    If ``work`` raises, ``on_error(message)`` runs instead (after the error is shown).
    ``busy`` widgets (at least one) are disabled until the worker finishes, whatever the
    outcome; then ``on_finished()`` runs (also whatever the outcome). If the dock widget
    holding ``busy`` is deleted first, ``on_close()`` runs instead of any of these.
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
        if on_close is not None:
            dock.destroyed.disconnect(on_close)
        for widget in busy:
            widget.enabled = True
        if on_finished is not None:
            on_finished()

    dock = _dock_of(busy[0])
    if on_close is not None:
        dock.destroyed.connect(on_close)
    for widget in busy:
        widget.enabled = False
    worker = create_worker(guarded, _start_thread=False)
    worker.returned.connect(_while_open(dock, returned))
    if on_error is not None:  # a bug: napari shows it, on_error only hears of it
        report = _while_open(dock, on_error)
        worker.errored.connect(lambda exc: report(f"{type(exc).__name__}: {exc}"))
    worker.finished.connect(_while_open(dock, finished))
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
    on_close: Callable[[], None] | None = None,
) -> FunctionWorker:
    """As :func:`run_in_background`, for work that reports as it goes: ``work(emit)`` may call
    ``emit(obj)`` from its thread, and ``on_event(obj)`` then runs in the GUI thread, in order
    and before ``on_result``."""
    relay = _Relay()  # made here, so it lives in the GUI thread
    relay.message.connect(_while_open(_dock_of(busy[0]), on_event))

    def finished() -> None:  # holds the relay until every event has been delivered
        relay.deleteLater()
        if on_finished is not None:
            on_finished()

    job = partial(work, relay.message.emit)
    return run_in_background(job, on_result, busy, finished, on_error, on_close)


def _dock_of(widget: Widget) -> QWidget:
    """The dock widget holding ``widget`` (its top-level ancestor when it is not docked)."""
    qt = widget.native
    while not isinstance(qt, QDockWidget) and qt.parentWidget() is not None:
        qt = qt.parentWidget()
    return qt


def _while_open(dock: QWidget, callback: Callable[..., None]) -> Callable[..., None]:
    """``callback``, made to do nothing once ``dock`` is deleted."""

    def guarded(*args: Any) -> None:
        if isalive(dock):
            callback(*args)

    return guarded
