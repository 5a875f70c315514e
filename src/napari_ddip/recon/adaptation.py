"""Reusable adaptations: the shared LoRA states of a D3IP run, by timestep, as a small
safetensors file that warm-starts the adaptation of another volume (e.g. from the same scanner).

The file holds one tensor per (timestep, LoRA tensor) named ``t0980/<tensor name>`` and, in the
safetensors metadata, a JSON description (``napari_ddip_adaptation``): method, prior (and the
SHA-256 of its weights), LoRA rank, timesteps, settings, software version. Loading never
unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from napari_ddip.recon.lora import LoRAState

#: LoRA states by diffusion timestep.
Adaptation = dict[int, LoRAState]
META_KEY = "napari_ddip_adaptation"


def nearest_state(states: Adaptation, t: int) -> LoRAState:
    """The state recorded at the timestep nearest to ``t``."""
    return states[min(states, key=lambda s: abs(s - t))]


def save_adaptation(path: str | Path, states: Adaptation, info: dict[str, Any]) -> Path:
    """Write ``states`` with the JSON-ready ``info`` to ``path`` (``.safetensors``)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: an adaptation file ends in .safetensors")
    if not states:
        raise ValueError("no adaptation to save (the method did not adapt a shared LoRA)")
    tensors = {
        f"t{t:04d}/{name}": value.detach().cpu().contiguous()
        for t, state in states.items()
        for name, value in state.items()
    }
    meta = {"timesteps": sorted(states, reverse=True), **info}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={META_KEY: json.dumps(meta)})
    return path


def load_adaptation(path: str | Path) -> tuple[Adaptation, dict[str, Any]]:
    """``(states, info)`` from a file written by :func:`save_adaptation`.

    Raises:
        ValueError: the file is missing or is not an adaptation file.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such adaptation file")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a safetensors file ({exc})") from None
    if META_KEY not in meta:
        raise ValueError(f"{path}: not a napari-ddip adaptation file (no {META_KEY} metadata)")
    states: Adaptation = {}
    for key, value in tensors.items():
        step, _, name = key.partition("/")
        states.setdefault(int(step[1:]), {})[name] = value
    return states, json.loads(meta[META_KEY])


def prior_sha256(prior: str | Path) -> str | None:
    """The SHA-256 of the weights of ``prior`` (a name or a path), as its JSON records it."""
    from napari_ddip.prior.weights import read_prior_meta

    return read_prior_meta(prior).get("sha256")


def load_warm_start(path: str | Path, prior: str | Path) -> Adaptation:
    """The states of the adaptation file ``path`` for a run on ``prior``.

    Raises:
        ValueError: not an adaptation file, or one adapted from other weights (a LoRA only
            means something on top of the network it was trained on).
    """
    states, info = load_adaptation(path)
    made_on = info.get("prior_sha256")
    if made_on is not None and made_on != prior_sha256(prior):
        raise ValueError(
            f"{path}: adapted from the prior {info.get('prior')!r}, not from {str(prior)!r}; "
            "warm-start with the prior it was made on"
        )
    return states
