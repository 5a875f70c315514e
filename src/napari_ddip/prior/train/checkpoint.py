"""The output folder of a training run: its checkpoint, and whether a run may resume it.

``OUT/checkpoint/`` holds the network, its EMA, the optimiser, the random generators, the
image pool and the step reached (``progress.json``), together with the run's identity
(:func:`run_identity`): only a run with the same network and data resumes it. A save writes a
complete new folder and swaps it in, so a process killed at any moment leaves a whole one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from napari_ddip.prior.denoiser import DenoiserPriorConfig
from napari_ddip.prior.ema import EMA
from napari_ddip.prior.model import PriorConfig
from napari_ddip.prior.train.config import TrainConfig
from napari_ddip.prior.train.pool import TrainingPool
from napari_ddip.prior.weights import Prior


class TrainingOutputError(ValueError):
    """The output folder holds a checkpoint of another run, or finished weights that a new run
    would replace."""


@dataclass
class TrainingState:
    """Everything a training step changes and a checkpoint keeps."""

    prior: Prior
    ema: EMA
    optimizer: torch.optim.Optimizer
    pool: TrainingPool
    generator: torch.Generator  # batches, timesteps and noise

    @property
    def rng(self) -> np.random.Generator:
        """The host generator (phantoms, pool indices, patch sizes, augmentation)."""
        return self.pool.rng


def run_identity(
    config: PriorConfig | DenoiserPriorConfig, cfg: TrainConfig, images: torch.Tensor | None
) -> dict:
    """What a checkpoint shares with every run that may resume it: the network
    (``config``) and the data — the phantom distribution and pool, or a SHA-256 of the
    fine-tuning ``images`` and whether they are augmented. Steps, learning rate, timesteps,
    batch size and precision may change between resumes."""
    identity: dict = {**config.to_dict(), "augment": cfg.augment}
    if images is None:
        identity.update(ellipses=cfg.ellipses, pool_size=cfg.pool_size)
    else:
        array = images.detach().cpu().contiguous().numpy()
        identity["images"] = f"{array.shape} {hashlib.sha256(array.tobytes()).hexdigest()}"
    return json.loads(json.dumps(identity))  # tuples as lists, as read back from JSON


def output_folder(out_dir: str | Path) -> Path:
    """``out_dir``, created if missing; ValueError if it or a folder above it is a file."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"--out {out} cannot be made: a folder above it is a file") from None
    return out


def weights_path(out: Path, name: str) -> Path:
    """Where a run writes its prior: ``out/NAME.safetensors``, also for a name with a dot."""
    return out / f"{name}.safetensors"


def _previous(ckpt: Path) -> Path:
    """Where a save parks the previous checkpoint while it swaps the new one in."""
    return ckpt.with_name(ckpt.name + ".old")


def save_checkpoint(
    ckpt: Path, state: TrainingState, step: int, wall: float, identity: dict
) -> None:
    """Write a complete checkpoint next to ``ckpt`` and swap it in, so that a process killed
    at any moment (a session ending mid-write) leaves ``ckpt`` or ``ckpt.old`` whole."""
    from safetensors.torch import save_file

    fresh, old = ckpt.with_name(ckpt.name + ".tmp"), _previous(ckpt)
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    for name, net in (("model", state.prior.net), ("ema", state.ema.shadow)):
        tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(tensors, str(fresh / f"{name}.safetensors"))
    torch.save(
        {
            "optimizer": state.optimizer.state_dict(),
            "torch_rng": state.generator.get_state(),
            "pool": state.pool.images.cpu(),
            "pool_cursor": state.pool.cursor,
        },
        fresh / "state.pt",
    )
    progress = {
        "step": step,
        "ema_updates": state.ema.updates,
        "wall_seconds": wall,
        "numpy_rng": state.rng.bit_generator.state,
        "identity": identity,
    }
    (fresh / "progress.json").write_text(json.dumps(progress, default=int))
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        ckpt.replace(old)
    fresh.replace(ckpt)
    shutil.rmtree(old, ignore_errors=True)


def _last_checkpoint(ckpt: Path) -> Path | None:
    """``ckpt``, or ``ckpt.old`` if a run was killed between the two renames of a save."""
    for folder in (ckpt, _previous(ckpt)):
        if (folder / "progress.json").is_file():
            return folder
    return None


def resumable_checkpoint(out: Path, name: str, identity: dict, overwrite: bool) -> Path | None:
    """The checkpoint in ``out`` to resume, after checking that it is this run's; None to start
    afresh. ``overwrite`` discards a checkpoint; without it, one of another run, or finished
    weights ``out/name.safetensors`` without a checkpoint, raise TrainingOutputError."""
    ckpt = out / "checkpoint"
    if overwrite:
        for folder in (ckpt, _previous(ckpt)):
            shutil.rmtree(folder, ignore_errors=True)
    last = _last_checkpoint(ckpt)
    if last is None:
        weights = weights_path(out, name)
        if weights.exists() and not overwrite:
            raise TrainingOutputError(
                f"{weights} exists and {ckpt} holds no run to resume: choose another output "
                "folder or name, or overwrite it"
            )
        return None
    # Checkpoints written before the identity was stored resume as they always did.
    stored = json.loads((last / "progress.json").read_text()).get("identity", identity)
    keys = identity.keys() | stored.keys()
    differing = sorted(k for k in keys if identity.get(k) != stored.get(k))
    if differing:
        raise TrainingOutputError(
            f"{ckpt} is a run with other settings ({', '.join(differing)} differ): resume it "
            "with the same network and data, choose another output folder, or overwrite it"
        )
    return last


def load_checkpoint(ckpt: Path, state: TrainingState) -> tuple[int, float]:
    """Restore ``state`` from a checkpoint; returns its step and the wall seconds spent up to
    it."""
    from safetensors.torch import load_file

    state.prior.net.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    state.ema.shadow.load_state_dict(load_file(str(ckpt / "ema.safetensors")))
    saved = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    state.optimizer.load_state_dict(saved["optimizer"])
    state.generator.set_state(saved["torch_rng"])
    state.pool.images = saved["pool"].to(state.pool.images.device)
    state.pool.cursor = int(saved["pool_cursor"])
    progress = json.loads((ckpt / "progress.json").read_text())
    state.rng.bit_generator.state = progress["numpy_rng"]
    state.ema.updates = int(progress["ema_updates"])
    return int(progress["step"]), float(progress["wall_seconds"])
