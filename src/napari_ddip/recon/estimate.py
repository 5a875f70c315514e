"""How long a reconstruction will take, from the measured time of one network call.

Before its first step a run measures one network call of its prior on one slice of the
measurement's size (cached in memory per prior, device, slice shape and precision, so a second
run of the same size measures nothing) and one application of ``AᴴA`` to one slice. Each work
unit the engine counts then gets its cost in seconds:

- a sampling unit (one batch of ``b`` slices): ``b·c_net`` plus the data consistency,
  ``b·n_dc·c_op`` (``n_dc`` operator applications per slice: CG iterations, DDNM's CG, or
  mbir/tv's ``admm_iters × admm_cg`` on the volume, shared over the batches);
- an adaptation step on ``k`` slices: ``k·c_train``, the loss of one step on one slice and its
  gradient, measured once as ``c_net`` is (per consistency and its iterations as well);
- DPS's unit: a forward and a backward pass through the network and one ``A``.

The sum is the run's estimate; the engine's clock counts the cost of the work done, so the time
left is about ``elapsed · (total − done) / done`` in seconds of estimated work, right when the
estimate's proportions are, whatever its absolute error (before any work is done: the
estimate).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch

#: Seconds of one network call on one slice, by (prior, device, slice shape, precision).
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


def network_seconds(key: Hashable, call: Callable[[], object], device: torch.device) -> float:
    """Seconds of one network call on one slice: measured by :func:`timed` once per ``key``
    (prior, device, slice shape, precision), then from memory."""
    if key not in _CALL_SECONDS:
        _CALL_SECONDS[key] = timed(call, device)
    return _CALL_SECONDS[key]


@dataclass(frozen=True)
class UnitCosts:
    """Estimated seconds of the engine's work units.

    Attributes:
        net: one network call on one slice (``c_net``).
        op: one ``AᴴA`` on one slice (``c_op``).
        consistency: operator applications per slice of one sampling step's data consistency.
        adapt_consistency: operator applications per slice of the consistency inside an
            adaptation step's loss.
        train: an adaptation step's loss on one slice and its gradient (measured; None:
            from ``net`` and ``op``).
        guidance: DPS (a backward pass through the network and ``A`` for every unit).
    """

    net: float
    op: float
    consistency: float
    adapt_consistency: float
    train: float | None = None
    guidance: bool = False

    def sampling(self, slices: int) -> float:
        """One sampling unit of ``slices`` slices."""
        per_slice = self.net + self.consistency * self.op
        if self.guidance:
            per_slice += BACKWARD * self.net + (1 + BACKWARD) * self.op
        return slices * per_slice

    def adaptation(self, slices: int) -> float:
        """One adaptation step on ``slices`` slices."""
        if self.train is not None:
            return slices * self.train
        return slices * (1 + BACKWARD) * (self.net + (self.adapt_consistency + 1) * self.op)


def consistency_applications(mode: str, cg_iters: int, admm_iters: int, admm_cg: int, ddnm: int):
    """``AᴴA`` applications per slice of a sampling step's data consistency ``mode`` and of the
    one inside the adaptation loss (where mbir/tv run one ADMM iteration)."""
    if mode == "cg":
        return cg_iters, cg_iters
    if mode == "project":
        return ddnm, ddnm
    if mode in ("mbir", "tv"):
        return admm_iters * admm_cg, admm_cg
    return 0, 0
