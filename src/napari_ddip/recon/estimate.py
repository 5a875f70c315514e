"""How long a reconstruction will take, from the measured time of one network call.

Before its first step a run measures one network call of its prior on one slice of the
measurement's size (cached in memory per prior, device, slice shape and precision, so a second
run of the same size measures nothing), one data consistency as a sampling step computes it
on one batch of slices (``c_dc`` per slice) and, for a method that adapts, one adaptation
step's loss on one slice and its gradient (``c_train``, cached as the network call is, per
consistency). Each work unit the engine counts then gets its cost in seconds:

- a sampling unit (one batch of ``b`` slices): ``b·(c_net + c_dc)``; DPS adds a backward pass
  through the network (about twice a forward);
- an adaptation step on ``k`` slices: ``k·c_train``.

The sum is the run's estimate; the engine's clock (:class:`WorkClock`) counts the cost of the
work done, so the time left is about ``elapsed · (total − done) / done`` in seconds of
estimated work, right when the estimate's proportions are, whatever its absolute error
(before any work is done: the estimate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

from napari_ddip.recon.events import Progress

#: Seconds of one network call on one slice, by (prior, device, slice shape, precision, …).
_CALL_SECONDS: dict[Hashable, float] = {}
#: A backward pass costs about twice its forward pass.
BACKWARD = 2.0


def timed(call: Callable[[], object], device: torch.device) -> float:
    """Seconds of ``call()`` after one untimed warm-up call (CUDA synchronised)."""
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def network_seconds(
    key: Hashable | None, call: Callable[[], object], device: torch.device
) -> float:
    """Seconds of one network call: measured by :func:`timed` once per ``key`` (prior,
    device, slice shape, precision, …), then from memory; ``key`` None: measured every time
    (a prior with no name, whose object id a later prior could reuse)."""
    if key is None:
        return timed(call, device)
    if key not in _CALL_SECONDS:
        _CALL_SECONDS[key] = timed(call, device)
    return _CALL_SECONDS[key]


@dataclass(frozen=True)
class UnitCosts:
    """Estimated seconds of the engine's work units.

    Attributes:
        net: one network call on one slice (``c_net``).
        consistency: a sampling step's data consistency, per slice (``c_dc``).
        train: an adaptation step's loss on one slice and its gradient (``c_train``; None: the
            method does not adapt).
        guidance: DPS (a backward pass through the network for every unit).
    """

    net: float
    consistency: float
    train: float | None = None
    guidance: bool = False

    def sampling(self, slices: int) -> float:
        """One sampling unit of ``slices`` slices."""
        network = (1 + BACKWARD) * self.net if self.guidance else self.net
        return slices * (network + self.consistency)

    def adaptation(self, slices: int) -> float:
        """One adaptation step on ``slices`` slices."""
        return slices * (self.train or 0.0)


class WorkClock:
    """Counts work units (network passes and adaptation steps) and their estimated cost in
    seconds (:mod:`napari_ddip.recon.estimate`), and tells the time left: the estimated work
    left at the rate measured since the first unit (which also warms up: not counted), with
    the estimate's own rate (one second per estimated second) weighed as a tenth of the run;
    up to the first unit, the estimate."""

    def __init__(self, total: int, total_cost: float, nfe: int) -> None:
        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.total_cost, self.done_cost = total_cost, 0.0
        self.phase, self.nfe = "sampling", nfe
        self.first = (0.0, 0.0)  # (elapsed, cost) at the end of the first unit

    def restart(self) -> None:
        """Count the elapsed time from now."""
        self.start = time.perf_counter()

    def eta(self, elapsed: float) -> float:
        left = max(self.total_cost - self.done_cost, 0.0)
        weight = 0.1 * self.total_cost
        seconds, cost = elapsed - self.first[0], self.done_cost - self.first[1]
        if self.done <= 1 or cost + weight <= 0:
            return left
        return (seconds + weight) / (cost + weight) * left

    def drop(self, units: int, cost: float) -> None:
        """Take ``units`` units of estimated ``cost`` seconds out of the run: work that will
        not be done (adaptation ended by the discrepancy principle)."""
        self.total -= units
        self.total_cost -= cost

    def advance(self, cost: float, j: int, adapt: tuple[int, int] = (0, 0)) -> Progress:
        """One unit of estimated ``cost`` seconds done at sampling step ``j`` (0-based);
        ``adapt``: (step, of steps) of the adaptation it belongs to."""
        self.done += 1
        self.done_cost += cost
        elapsed = time.perf_counter() - self.start
        if self.done == 1:
            self.first = (elapsed, self.done_cost)
        return Progress(
            self.done, self.total, elapsed, self.eta(elapsed), self.phase, j + 1, self.nfe, *adapt
        )
