"""Typed events yielded by :func:`napari_ddip.recon.reconstruct`.

A run yields one :class:`Started`, then :class:`Progress` (with an ETA), :class:`Adapted`
(adaptation loss) and :class:`Preview` (the current estimate) events, and always ends with one
:class:`Finished` (``partial=True`` when cancelled). Volumes are float32 NumPy arrays
``(Z, Y, X)`` in the measurement's intensity units (magnitude for MRI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True)
class Started:
    """The run has resolved its settings and is about to do its first network call."""

    method: str
    n_slices: int
    total: int  # work units (network passes) the run will take
    device: str
    settings: dict[str, Any]
    estimate: float | None = None  # seconds the run should take (napari_ddip.recon.estimate)
    #: ``total`` and ``estimate`` count every adaptation step, which the discrepancy stop
    #: (``ReconConfig.discrepancy``) may end early: both are upper bounds.
    upper_bound: bool = False


@dataclass(frozen=True)
class Progress:
    """``step`` of ``total`` work units done; ``eta`` seconds left (None: unknown).

    A diffusion run's unit is one network pass over a batch of slices (or one slice) or one
    adaptation step; it also says where in the settings the run is: sampling step
    ``sampling_step`` of ``sampling_steps`` (NFE) and, while adapting, adaptation step
    ``adaptation_step`` of ``adaptation_steps`` (L).
    """

    step: int
    total: int
    elapsed: float
    eta: float | None
    phase: str  # "sampling", "meta-learning" or "fine-tuning" (a classical method: its name)
    sampling_step: int = 0
    sampling_steps: int = 0
    adaptation_step: int = 0
    adaptation_steps: int = 0

    def describe(self) -> str:
        """Where the run is in words of its settings, e.g. ``step 5/20 · adaptation 3/10``
        (``meta-learning step 5/20`` in D3IP meta's first pass; a classical method:
        ``iteration 5/30``)."""
        if not self.sampling_steps:
            return f"iteration {self.step}/{self.total}"
        prefix = "" if self.phase == "sampling" else f"{self.phase} "
        words = f"{prefix}step {self.sampling_step}/{self.sampling_steps}"
        if self.adaptation_steps:
            words += f" · adaptation {self.adaptation_step}/{self.adaptation_steps}"
        return words


@dataclass(frozen=True)
class Adapted:
    """Adaptation at sampling step ``t``: the mean relative measurement loss
    ``‖A x̃₀ − y‖² / ‖y‖²``, the slices of the last step, and the loss of every step (for
    per-slice methods: every slice's mean); ``ended``: the shared LoRA's last loss reached
    the measurement's noise, and it adapts no further (the discrepancy stop)."""

    t: int
    loss: float
    slices: tuple[int, ...]
    losses: tuple[float, ...] = ()
    ended: bool = False


@dataclass(frozen=True)
class Preview:
    """The current data-consistent estimate ``x̃₀`` of the slices in ``slices``."""

    t: int
    slices: tuple[int, ...]
    volume: np.ndarray  # (len(slices), Y, X) float32


@dataclass(frozen=True)
class Finished:
    """The reconstruction (partial when cancelled) and what the engine knows of the run
    (JSON-ready ``metadata``: method, resolved settings, prior, device, seed, scale, samples,
    ``partial``, …; :func:`napari_ddip.methods.make_provenance` makes a result's provenance
    from it).

    With several posterior samples, ``volume`` is their mean and ``std`` the per-voxel
    standard deviation (of the magnitude for MRI). ``adaptation`` holds the shared LoRA states
    by timestep (D3IP methods), for :func:`~napari_ddip.recon.adaptation.save_adaptation`.
    """

    volume: np.ndarray  # (Z, Y, X) float32
    metadata: dict[str, Any] = field(default_factory=dict)
    partial: bool = False
    complex_volume: np.ndarray | None = None  # (Z, Y, X) complex64 for MRI
    std: np.ndarray | None = None  # (Z, Y, X) float32 when samples > 1
    adaptation: dict[int, dict[str, torch.Tensor]] | None = None


Event = Started | Progress | Adapted | Preview | Finished
