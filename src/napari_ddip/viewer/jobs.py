"""The work the Reconstruct and Fine-tune prior widgets run in their thread (no Qt here).

Each ``run_*(job, emit, cancel)`` reports with ``emit(event)`` as it goes, stops soon after
``cancel`` is set, and raises :class:`~napari_ddip.io.InputError` with what to change for
anything the user can fix (a prior that does not load, GPU memory, bad settings).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_ddip.io import InputError, Measurement

if TYPE_CHECKING:
    from napari_ddip.methods import Reconstruction, Request

Emit = Callable[[Any], None]


@contextmanager
def user_errors(device: str) -> Iterator[None]:
    """Turn what the user can fix into :class:`InputError`: GPU memory, priors, values."""
    import torch

    from napari_ddip.prior.weights import PriorLoadError
    from napari_ddip.viewer.priors import HOW_TO_GET_A_PRIOR

    try:
        yield
    except torch.cuda.OutOfMemoryError:
        raise InputError(
            f"out of GPU memory on {device}: use fewer slices per batch (Advanced → "
            "slice_batch), a slice subset, or the CPU"
        ) from None
    except PriorLoadError as exc:
        raise InputError(f"{exc}; {HOW_TO_GET_A_PRIOR}") from None
    except InputError:
        raise
    except ValueError as exc:  # the engine's word for input it refuses
        raise InputError(str(exc)) from None


# -- reconstruction -----------------------------------------------------------------------


def slice_range(text: str, n_slices: int) -> tuple[int, int]:
    """``(start, stop)`` of ``all``, one slice ``k`` or ``start:stop`` (Python slicing, either
    end may be left out, negative counts from the end); raises :class:`InputError`."""
    text = text.strip().lower()
    if text in ("", "all", ":"):
        return 0, n_slices
    try:
        if ":" in text:
            start, stop = (int(end) if end else None for end in text.split(":"))
            chosen = range(n_slices)[start:stop]
        else:
            k = int(text)
            chosen = range(n_slices)[k : k + 1 or None]
    except ValueError:
        raise InputError(
            f"slices {text!r}: write all, one slice (e.g. 12) or start:stop (e.g. 10:14)"
        ) from None
    if len(chosen) == 0:
        raise InputError(f"slices {text!r} selects none of the slices 0 to {n_slices - 1}")
    return chosen.start, chosen.stop


def measurement_slab(m: Measurement, start: int, stop: int) -> Measurement:
    """Slices ``start:stop`` of ``m`` (with their mask and coil maps)."""
    if (start, stop) == (0, m.data.shape[0]):
        return m
    z = slice(start, stop)
    mask = m.mask[z] if m.mask is not None and m.mask.ndim == 3 else m.mask
    maps = m.maps[z] if m.maps is not None else None
    return replace(m, data=m.data[z], mask=mask, maps=maps)


@dataclass(frozen=True)
class ReconJob:
    """One reconstruction.

    Attributes:
        request: the checked run (:func:`napari_ddip.methods.prepare`, on the measurement
            already cut to the chosen slices).
        z_range: ``(start, stop)`` of the slices in the whole measurement.
        source: name of the measurement layer.
        save_adaptation: a ``.safetensors`` file to write the adaptation to (methods that can
            save one), or None.
    """

    request: Request
    z_range: tuple[int, int] = (0, 0)
    source: str = ""
    save_adaptation: Path | None = None


def run_recon(job: ReconJob, emit: Emit, cancel: threading.Event) -> Reconstruction | None:
    """Run ``job`` by :func:`napari_ddip.methods.run`, emitting its events; diffusion methods
    finish with the result, partial if cancelled (then no adaptation is saved), classical
    methods return None when cancelled."""
    from napari_ddip.methods import run, write_adaptation
    from napari_ddip.recon import Cancelled

    with user_errors(str(job.request.device)):
        try:
            result = run(job.request, cancel, emit)
        except Cancelled:
            return None
        if job.save_adaptation is not None and not result.partial:
            write_adaptation(job.save_adaptation, result)
    extra = {"source_layer": job.source, "slices": list(job.z_range)}
    return replace(result, provenance=result.provenance | extra)


def eta_seconds(elapsed: float, step: int, total: int) -> float | None:
    """Seconds left at a constant rate (None before the first step)."""
    return elapsed / step * (total - step) if step > 0 else None


# -- fine-tuning --------------------------------------------------------------------------


def pick_slices(volumes: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """At most ``n`` slices spread evenly over the non-constant slices of ``volumes``
    ``(Z, Y, X)``, as one ``(k, Y, X)`` array per volume that gives any."""
    candidates = [
        (v, z) for v, volume in enumerate(volumes) for z in range(len(volume)) if np.ptp(volume[z])
    ]
    if not candidates:
        raise InputError("the chosen layers hold only constant slices: nothing to learn from")
    picks = np.unique(np.linspace(0, len(candidates) - 1, min(n, len(candidates))).round())
    chosen = [candidates[int(i)] for i in picks]
    return [
        volume[[z for w, z in chosen if w == v]]
        for v, volume in enumerate(volumes)
        if any(w == v for w, _ in chosen)
    ]


@dataclass(frozen=True)
class FinetuneJob:
    """One fine-tuning run: ``images`` (from :func:`pick_slices`) into ``folder/name/``.

    ``options`` overrides settings of :func:`~napari_ddip.prior.train.finetune_config` (steps,
    lr, batch_size, seed, ...).
    """

    images: list[np.ndarray]
    base: str
    folder: Path
    name: str
    options: dict[str, Any]
    device: str = "auto"


@dataclass(frozen=True)
class TrainProgress:
    """``step`` of ``total`` done, the mean loss since the last report, seconds left."""

    step: int
    total: int
    loss: float
    eta: float | None


@dataclass(frozen=True)
class FinetuneResult:
    """The written prior; ``stopped`` when cancelled before the last step."""

    path: Path
    step: int
    stopped: bool


def run_finetune(job: FinetuneJob, emit: Emit, cancel: threading.Event) -> FinetuneResult:
    """Fine-tune ``job.base`` on ``job.images`` as ``napari-ddip finetune-prior`` does,
    reporting every step; a cancel stops after writing a checkpoint and the prior trained
    until then."""
    from napari_ddip.prior.train import (
        check_config,
        finetune_config,
        images_from_arrays,
        train_prior,
    )

    start, done = time.perf_counter(), [0]

    def progress(step: int, total: int, loss: float) -> bool:
        done[0] = step
        eta = eta_seconds(time.perf_counter() - start, step, total)
        emit(TrainProgress(step, total, loss, eta))
        return not cancel.is_set()

    with user_errors(job.device):
        cfg = finetune_config(**job.options, name=job.name, log_every=1)
        check_config(cfg, phantoms=False)
        images = images_from_arrays(job.images)
        path = train_prior(
            cfg,
            job.folder / job.name,
            device=job.device,
            images=images,
            init=job.base,
            progress=progress,
            command=f"napari widget 'Fine-tune prior' from {job.base}",
        )
    return FinetuneResult(path, done[0], cancel.is_set() and done[0] < cfg.steps)
