"""Exponential moving average of a network's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow = decay·shadow + (1 − decay)·weights`` after every :meth:`update`.

    Warm-up: the effective decay is ``min(decay, (1 + n)/(10 + n))`` after ``n`` updates, so an
    early EMA is not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for s, p in zip(
            self.shadow.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if s.dtype.is_floating_point:
                s.lerp_(p, 1 - d)
            else:
                s.copy_(p)
