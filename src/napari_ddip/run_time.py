"""The time a run will take and where its adaptation ended, in words for the command line and
the Reconstruct widget."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from napari_ddip.recon.diffusion_methods import DiffusionMethod
    from napari_ddip.recon.events import Adapted, Started

#: A run estimated longer than this (seconds) comes with a warning and the advice of a preset.
LONG_RUN_SECONDS = 180.0


def format_seconds(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``)."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def estimate_text(started: Started, spec: DiffusionMethod) -> str:
    """``about 1:05 on cpu: 4 slices, NFE 10, L 3, K 2``: the estimate of the run that
    ``started`` begins, with the settings it follows from (L where ``spec`` adapts, K where it
    adapts a shared LoRA, the rotations of an equivariant self-supervision); ``at most``
    instead of ``about`` where the adaptation may end early (``Started.upper_bound``)."""
    s, n = started.settings, started.n_slices
    words = [f"{n} slice{'s' if n != 1 else ''}", f"NFE {s['nfe']}"]
    if spec.adapts:
        words.append(f"L {s['adapt_steps']}")
    if spec.shared_lora:
        words.append(f"K {min(s['k_slices'], n)}")
    if s.get("equivariant"):
        rotations = s["equivariant"]
        words.append(f"{rotations} equivariant rotation{'s' if rotations != 1 else ''}")
    seconds = format_seconds(started.estimate or 0.0)
    bound = "at most" if started.upper_bound else "about"
    return f"{bound} {seconds} on {started.device}: {', '.join(words)}"


def ended_text(adapted: Adapted) -> str:
    """``adaptation ended at t = 940: its loss reached the measurement's noise``: what an
    :class:`~napari_ddip.recon.Adapted` event with ``ended`` says."""
    return f"adaptation ended at t = {adapted.t}: its loss reached the measurement's noise"


def is_long(seconds: float) -> bool:
    """Whether a run of ``seconds`` deserves a warning."""
    return seconds > LONG_RUN_SECONDS
