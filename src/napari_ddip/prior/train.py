"""Training and fine-tuning the prior (``napari-ddip train-prior`` / ``finetune-prior``).

Training draws ellipse phantoms on the fly into a pool that is partly refreshed every step
(phantom drawing costs ~13 ms per 256² image on one core, so the pool keeps training from
being data-bound), crops random patches with a patch-size mixture (DESIGN §5) and minimises the
MSE of the network's ε- or v-prediction at timesteps drawn uniformly (or more often at low
noise). Fine-tuning does the same on a handful of user images with flips and 90° rotations.
Both keep an EMA of the weights, checkpoint regularly into ``OUT/checkpoint/`` and resume from
there (only a run with the same network and data: see :func:`run_identity`), log the loss to
``OUT/loss.csv``, and finally write ``OUT/NAME.safetensors`` + ``.json`` + ``.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from napari_ddip.device import available_device, to_device
from napari_ddip.precision import (
    PRECISIONS,
    check_precision,
    network_precision,
    resolve_precision,
    tf32_switches,
)
from napari_ddip.prior.ema import EMA
from napari_ddip.prior.model import PREDICTIONS, DiffusionPrior, PriorConfig
from napari_ddip.prior.patches import random_patches, with_coordinates
from napari_ddip.prior.phantoms import EllipseDistribution, ellipse_phantoms
from napari_ddip.prior.unet import UNet, UNetConfig
from napari_ddip.prior.weights import load_prior, save_prior


@dataclass
class TrainConfig:
    """Hyper-parameters of one training or fine-tuning run."""

    steps: int = 20000
    batch_size: int = 16  # images per step at the largest patch size
    patch_sizes: tuple[int, ...] = (16, 32, 64)
    patch_probs: tuple[float, ...] = (0.2, 0.3, 0.5)
    whole_image: bool = False  # train a whole-image prior instead of a patch prior
    prediction: str = "eps"  # network output: "eps" or "v" (see prior.model)
    data_scale: float = 1.0  # the network sees data_scale × the images (see prior.schedule)
    image_size: int = 256
    ellipses: int = EllipseDistribution.max_count  # min(Poisson(n), n) ellipses (DESIGN §5)
    lr: float = 2e-4
    lr_schedule: str = "constant"  # "constant" or "cosine" (to zero at the last step)
    warmup_steps: int = 0  # linear ramp of the learning rate from zero
    timestep_power: float = 1.0  # t = ⌊T·u^power⌋: 1 uniform, larger favours small t
    ema_decay: float = 0.999
    pool_size: int = 512
    pool_refresh: int = 2  # phantoms replaced in the pool per step
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 25
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4, 4)
    name: str = "prior"
    augment: bool = False  # random flips / 90° rotations (fine-tuning)
    precision: str = "auto"  # network passes: auto, fp32, tf32 or bf16 (napari_ddip.precision)
    extra: dict = field(default_factory=dict)


Progress = Callable[[int, int, float], bool | None]
LR_SCHEDULES = ("constant", "cosine")
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")  # a file stem: --name ../x would leave --out


class TrainingOutputError(ValueError):
    """The output folder holds a checkpoint of another run, or finished weights that a new run
    would replace."""


def run_identity(config: PriorConfig, cfg: TrainConfig, images: torch.Tensor | None) -> dict:
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


def check_config(cfg: TrainConfig, phantoms: bool = True) -> None:
    """Raise ValueError, naming the setting by its command-line option, for a configuration
    that cannot train; ``phantoms``: training draws ellipse phantoms (not fine-tuning images),
    so the pool and the image size matter."""
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, not {cfg.lr_schedule!r}")
    check_precision(cfg.precision)
    _check_counts(cfg, phantoms)
    _check_rates(cfg)
    _check_patches(cfg, phantoms)
    _check_network(cfg)
    _check_name(cfg.name)


def _at_least(option: str, value: int, least: int) -> None:
    """ValueError naming ``option`` unless ``value`` is at least ``least``."""
    if value < least:
        raise ValueError(f"{option} must be at least {least}, got {value}")


def _check_counts(cfg: TrainConfig, phantoms: bool) -> None:
    """Steps, batch size, logging and checkpoint intervals, warm-up, seed, and the phantom
    pool and ellipse count."""
    for option, value, least in (
        ("--steps", cfg.steps, 1),
        ("--batch-size", cfg.batch_size, 1),
        ("--log-every", cfg.log_every, 1),
        ("--checkpoint-every", cfg.checkpoint_every, 1),
        ("--warmup-steps", cfg.warmup_steps, 0),
        ("--seed", cfg.seed, 0),
    ):
        _at_least(option, value, least)
    if cfg.seed >= 2**64:  # torch's generators take 64-bit seeds
        raise ValueError(f"--seed must be below 2**64, got {cfg.seed}")
    if phantoms:
        _at_least("--pool-size", cfg.pool_size, 1)
    if cfg.ellipses < 2:
        raise ValueError(
            f"--ellipses must be at least 2, got {cfg.ellipses}: phantoms need at least 2 "
            "ellipses (the foreground is shifted to start at zero: a lone ellipse would vanish)"
        )


def _check_rates(cfg: TrainConfig) -> None:
    """Learning rate, data scale, timestep power (see :func:`training_timesteps`) and EMA
    decay (1 would never move the EMA from the initial weights)."""
    for option, value in (("--lr", cfg.lr), ("--data-scale", cfg.data_scale)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{option} must be a finite number above 0, got {value}")
    if not (math.isfinite(cfg.timestep_power) and cfg.timestep_power >= 1):
        raise ValueError(
            f"--timestep-power must be a finite number of at least 1, got {cfg.timestep_power}"
        )
    if not 0 <= cfg.ema_decay < 1:  # also refuses NaN
        raise ValueError(f"--ema-decay must be in [0, 1), got {cfg.ema_decay}")


def _check_patches(cfg: TrainConfig, phantoms: bool) -> None:
    """Patch sizes and their probabilities, and the phantoms' size. The network pads any size
    to its multiple of ``2**(levels-1)`` (:meth:`UNet.forward`), so every size from 1 trains."""
    sizes, probs = cfg.patch_sizes, cfg.patch_probs
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--patch-sizes must be one or more sizes of at least 1, got {sizes}")
    if len(sizes) != len(probs):
        raise ValueError(
            f"--patch-sizes and --patch-probs need the same number of entries, got "
            f"{len(sizes)} sizes and {len(probs)} probabilities"
        )
    if not all(math.isfinite(p) and p >= 0 for p in probs) or sum(probs) <= 0:
        raise ValueError(
            f"--patch-probs must be finite and at least 0, with a positive sum, got {probs}"
        )
    if phantoms:
        least = 1 if cfg.whole_image else max(sizes)
        reason = "" if cfg.whole_image else " (the largest of --patch-sizes)"
        if cfg.image_size < least:
            raise ValueError(f"--image-size must be at least {least}{reason}, got {cfg.image_size}")


def _check_network(cfg: TrainConfig) -> None:
    """The UNet's channels: the sinusoidal timestep embedding has ``--base-channels``
    dimensions, half cosines and half sines, so it must be even; every GroupNorm splits its
    ``c`` channels into ``min(8, c // 4)`` equal groups, so every layer needs at least 4
    channels and ``c`` divisible by that (a ``--base-channels`` that is a multiple of 8 always
    works). The network is built on the meta device to check the second: no memory, no
    arithmetic."""
    base, mults = cfg.base_channels, tuple(cfg.channel_mults)
    if base < 4 or base % 2:
        raise ValueError(
            f"--base-channels must be even and at least 4 (the timestep embedding has that "
            f"many dimensions, half cosines and half sines; GroupNorm needs 4 channels a "
            f"group), got {base}"
        )
    if not mults or min(mults) < 1:
        raise ValueError(f"--channel-mults must be one or more factors of at least 1, got {mults}")
    try:
        with torch.device("meta"):
            UNet(_unet_config(cfg))
    except ValueError as exc:  # GroupNorm: "num_channels (36) must be divisible by ..."
        raise ValueError(
            f"--base-channels {base} with --channel-mults {','.join(map(str, mults))} give a "
            f"layer that GroupNorm cannot split into min(8, channels // 4) equal groups ({exc}); "
            "a --base-channels that is a multiple of 8 always works"
        ) from None


def _unet_config(cfg: TrainConfig) -> UNetConfig:
    """The architecture of a new network."""
    return UNetConfig(base_channels=cfg.base_channels, channel_mults=tuple(cfg.channel_mults))


def _check_name(name: str) -> None:
    """A plain file stem, so that the prior lands in the output folder."""
    if not NAME_PATTERN.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"--name must be a file stem of letters, digits, '-', '_' and '.', got {name!r}"
        )
    if name.endswith((".safetensors", ".json")):
        raise ValueError(f"--name is the file stem, without .safetensors or .json: got {name!r}")


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


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Learning rate of step ``step`` (0-based): a linear warm-up over ``warmup_steps``, then
    ``lr`` held (``constant``) or decayed along a half cosine to zero at step ``steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(cfg.steps - cfg.warmup_steps, 1)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * min((step - cfg.warmup_steps) / span, 1.0)))


def training_timesteps(
    n: int, n_steps: int, power: float, generator: torch.Generator
) -> torch.Tensor:
    """``n`` training timesteps ``(n,)`` in ``[0, n_steps)``: ``⌊n_steps·u^power⌋`` for
    ``u ~ U[0, 1)``. Power 1 is uniform; power ``p`` puts a share ``(t / n_steps)^(1/p)`` below
    ``t`` (p = 2: 22 % below t = 50 instead of 5 %), where the images' detail is decided —
    on data with standard deviation ≈ 0.1 the linear-β noise hides an ellipse edge by t ≈ 50."""
    if power < 1:
        raise ValueError(f"the timestep power must be at least 1, got {power}")
    if power == 1:  # the draw of older runs, so that their checkpoints resume identically
        return torch.randint(0, n_steps, (n,), generator=generator)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return (n_steps * u**power).long().clamp(max=n_steps - 1)


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()} CPU, {torch.get_num_threads()} threads"


def _cpu_name() -> str:
    """The CPU's model name where Linux tells it, else the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class _Pool:
    """A pool of training images on the training device (so that batches are cut there), partly
    replaced by fresh phantoms at every step."""

    def __init__(
        self,
        images: torch.Tensor | None,
        cfg: TrainConfig,
        rng: np.random.Generator,
        device: torch.device,
    ):
        self.rng = rng
        self.fixed = images is not None
        self.cfg = cfg
        self.images = (
            images.to(device) if images is not None else self._phantoms(cfg.pool_size, device)
        )
        self.cursor = 0

    def refresh(self) -> None:
        if self.fixed or self.cfg.pool_refresh <= 0:
            return
        n = self.cfg.pool_refresh
        idx = (self.cursor + np.arange(n)) % len(self.images)
        fresh = self._phantoms(n, self.images.device)
        self.images[self._on_device(idx)] = fresh
        self.cursor = int(idx[-1] + 1)

    def _phantoms(self, n: int, device: torch.device) -> torch.Tensor:
        """``n`` fresh phantoms ``(n, S, S)`` of the configured size and ellipse count."""
        count = self.cfg.ellipses
        distribution = EllipseDistribution(mean_count=float(count), max_count=count)
        return ellipse_phantoms(n, self.cfg.image_size, self.rng, distribution, device)

    def draw(self, n: int, augment: bool) -> torch.Tensor:
        batch = self.images[self._on_device(self.rng.integers(0, len(self.images), n))]
        if augment:
            k = int(self.rng.integers(0, 4))
            batch = torch.rot90(batch, k, dims=(1, 2))
            if self.rng.random() < 0.5:
                batch = batch.flip(2)
        return batch

    def _on_device(self, idx: np.ndarray) -> torch.Tensor:
        """Indices drawn on the host as a tensor on the pool's device, copied without blocking
        (indexing a GPU tensor with host indices would synchronise the stream)."""
        return to_device(torch.from_numpy(idx), self.images.device)


def _batch(pool: _Pool, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Network inputs ``(B, 3, P, P)`` (patch + coordinates) for one step."""
    if cfg.whole_image:
        return with_coordinates(pool.draw(cfg.batch_size, cfg.augment))
    p = int(pool.rng.choice(cfg.patch_sizes, p=np.asarray(cfg.patch_probs) / sum(cfg.patch_probs)))
    largest = max(cfg.patch_sizes)
    n = min(cfg.batch_size * (largest // p) ** 2, 4 * cfg.batch_size)
    return random_patches(pool.draw(n, cfg.augment), p, gen)


def _truncate_log(path: Path, step: int) -> None:
    """Drop the rows of the loss log past ``step``: a run killed between two checkpoints logged
    steps that the resumed run repeats."""
    if not path.is_file():
        path.write_text("step,loss,seconds\n")
        return
    header, *rows = path.read_text().splitlines()
    kept = [row for row in rows if int(row.split(",", 1)[0]) <= step]
    path.write_text("\n".join([header, *kept]) + "\n")


def _phantom_description(ellipses: int) -> str:
    """The model card's data line for training on phantoms with ``ellipses`` ellipses."""
    if ellipses == TrainConfig.ellipses:
        return "random ellipse phantoms (DESIGN §5)"
    count = f"min(Poisson({ellipses}), {ellipses})"
    return f"random ellipse phantoms (DESIGN §5, with {count} ellipses)"


def _previous(ckpt: Path) -> Path:
    """Where a save parks the previous checkpoint while it swaps the new one in."""
    return ckpt.with_name(ckpt.name + ".old")


def _save_checkpoint(
    ckpt: Path,
    prior: DiffusionPrior,
    ema: EMA,
    opt,
    step: int,
    wall: float,
    pool,
    gen,
    identity: dict,
) -> None:
    """Write a complete checkpoint next to ``ckpt`` and swap it in, so that a process killed
    at any moment (a session ending mid-write) leaves ``ckpt`` or ``ckpt.old`` whole."""
    from safetensors.torch import save_file

    fresh, old = ckpt.with_name(ckpt.name + ".tmp"), _previous(ckpt)
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    for name, net in (("model", prior.net), ("ema", ema.shadow)):
        tensors = {k: v.contiguous() for k, v in net.state_dict().items()}
        save_file(tensors, str(fresh / f"{name}.safetensors"))
    torch.save(
        {
            "optimizer": opt.state_dict(),
            "torch_rng": gen.get_state(),
            "pool": pool.images.cpu(),
            "pool_cursor": pool.cursor,
        },
        fresh / "state.pt",
    )
    state = {
        "step": step,
        "ema_updates": ema.updates,
        "wall_seconds": wall,
        "numpy_rng": pool.rng.bit_generator.state,
        "identity": identity,
    }
    (fresh / "progress.json").write_text(json.dumps(state, default=int))
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


def _resumable_checkpoint(out: Path, name: str, identity: dict, overwrite: bool) -> Path | None:
    """The checkpoint in ``out`` to resume, after checking that it is this run's; None to start
    afresh. ``overwrite`` discards a checkpoint; without it, one of another run, or finished
    weights ``out/name.safetensors`` without a checkpoint, raise TrainingOutputError."""
    ckpt = out / "checkpoint"
    if overwrite:
        for folder in (ckpt, _previous(ckpt)):
            shutil.rmtree(folder, ignore_errors=True)
    last = _last_checkpoint(ckpt)
    if last is None:
        weights = _weights_path(out, name)
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


def _load_checkpoint(ckpt: Path, prior, ema, opt, pool, gen) -> tuple[int, float]:
    """Restore a checkpoint; returns its step and the wall seconds spent up to it."""
    from safetensors.torch import load_file

    prior.net.load_state_dict(load_file(str(ckpt / "model.safetensors")))
    ema.shadow.load_state_dict(load_file(str(ckpt / "ema.safetensors")))
    state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
    opt.load_state_dict(state["optimizer"])
    gen.set_state(state["torch_rng"])
    pool.images = state["pool"].to(pool.images.device)
    pool.cursor = int(state["pool_cursor"])
    progress = json.loads((ckpt / "progress.json").read_text())
    pool.rng.bit_generator.state = progress["numpy_rng"]
    ema.updates = int(progress["ema_updates"])
    return int(progress["step"]), float(progress["wall_seconds"])


def _weights_path(out: Path, name: str) -> Path:
    """Where a run writes its prior: ``out/NAME.safetensors``, also for a name with a dot."""
    return out / f"{name}.safetensors"


def _continued(cfg: TrainConfig, base: PriorConfig) -> TrainConfig:
    """``cfg`` for continuing the prior ``base``: the network decides the mode, so a
    whole-image prior keeps training on whole images of its own size."""
    return replace(
        cfg,
        whole_image=base.patch_size is None,
        prediction=base.prediction,
        data_scale=base.data_scale,
        image_size=base.image_size,
    )


def _initial_prior(cfg: TrainConfig, base: DiffusionPrior | None) -> DiffusionPrior:
    """A copy of ``base``, or (None) a random network as ``cfg`` describes."""
    if base is not None:
        prior = DiffusionPrior(base.config)
        prior.net.load_state_dict(base.net.state_dict())
        return prior
    patch = None if cfg.whole_image else max(cfg.patch_sizes)
    return DiffusionPrior(
        PriorConfig(
            unet=_unet_config(cfg),
            patch_size=patch,
            image_size=cfg.image_size,
            prediction=cfg.prediction,
            data_scale=cfg.data_scale,
        )
    )


def train_prior(
    cfg: TrainConfig,
    out_dir: str | Path,
    device: str = "auto",
    images: torch.Tensor | None = None,
    init: str | Path | None = None,
    progress: Progress | None = None,
    command: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Train (``images=None``: on ellipse phantoms) or fine-tune (``images (N, H, W)`` in
    ``[0, 1]``) and write ``OUT/NAME.safetensors``. ``init``: a prior (name or path) to start
    from instead of a random network; its architecture, patch mode, prediction, data scale and
    training image size are kept (a whole-image prior keeps seeing images of its own size).

    Resumes from ``OUT/checkpoint/`` when present and written by a run with the same network
    and data (:func:`run_identity`); raises TrainingOutputError, before any training, when it
    is another run's or when ``OUT/NAME.safetensors`` exists without a checkpoint, unless
    ``overwrite`` (start afresh, replacing both). A run whose checkpoint has reached
    ``cfg.steps`` and whose weights are written is finished: they are returned untouched
    (with any scores added to their card since), and nothing is trained.
    ``progress(step, steps, loss)`` is called every ``log_every`` steps; returning False stops
    (a checkpoint is written first). Returns the path of the final weights (EMA).
    """
    base = None if init is None else load_prior(init)
    if base is not None:
        cfg = _continued(cfg, base.config)
    # Every setting is checked before a file is written or a phantom drawn.
    check_config(cfg, phantoms=images is None)
    dev = available_device(device)
    precision = resolve_precision(cfg.precision, dev.type)
    torch.manual_seed(cfg.seed)
    prior = _initial_prior(cfg, base).to(dev).train()
    out = output_folder(out_dir)
    identity = run_identity(prior.config, cfg, images)
    last = _resumable_checkpoint(out, cfg.name, identity, overwrite)
    ema = EMA(prior.net, cfg.ema_decay)
    opt = torch.optim.AdamW(prior.net.parameters(), lr=cfg.lr, weight_decay=0.0)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    pool = _Pool(images, cfg, rng, dev)
    ckpt = out / "checkpoint"
    step, wall = (0, 0.0) if last is None else _load_checkpoint(last, prior, ema, opt, pool, gen)
    weights = _weights_path(out, cfg.name)
    if step >= cfg.steps and weights.is_file():  # finished: leave its weights and card as they are
        return weights
    log_path = out / "loss.csv"
    if step == 0:
        log_path.write_text("step,loss,seconds\n")
    else:
        _truncate_log(log_path, step)
    alpha_bar = prior.schedule.alpha_bar.to(dev)
    start, running, count = time.time(), 0.0, 0
    stopped = False
    while step < cfg.steps:
        pool.refresh()
        x = _batch(pool, cfg, gen)  # cut on the device, where the pool lives
        t = training_timesteps(x.shape[0], prior.schedule.n_steps, cfg.timestep_power, gen)
        t = to_device(t, dev)
        noise = to_device(torch.randn(x[:, :1].shape, generator=gen), dev)
        ab = alpha_bar[t][:, None, None, None]
        x0 = x[:, :1] * prior.config.data_scale  # the network's units
        noisy = torch.cat([ab.sqrt() * x0 + (1 - ab).sqrt() * noise, x[:, 1:]], dim=1)
        target = prior.target(x0, noise, ab)
        with network_precision(precision, dev):
            prediction = prior.net(noisy, t)
        loss = torch.nn.functional.mse_loss(prediction.float(), target)
        opt.zero_grad(set_to_none=True)
        with tf32_switches(precision, dev):
            loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.net.parameters(), 1.0)
        for group in opt.param_groups:
            group["lr"] = learning_rate(cfg, step)
        opt.step()
        ema.update(prior.net)
        step += 1
        # Summed on the device: reading the loss back every step would make a GPU wait.
        running, count = running + loss.detach().double(), count + 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            mean = float(running) / count
            elapsed = wall + time.time() - start
            with log_path.open("a") as f:
                f.write(f"{step},{mean:.6f},{elapsed:.1f}\n")
            running, count = 0.0, 0
            if progress is not None and progress(step, cfg.steps, mean) is False:
                stopped = True
        if step % cfg.checkpoint_every == 0 or step == cfg.steps or stopped:
            elapsed = wall + time.time() - start
            _save_checkpoint(ckpt, prior, ema, opt, step, elapsed, pool, gen, identity)
        if stopped:
            break
    wall += time.time() - start
    final = DiffusionPrior(prior.config)
    final.net.load_state_dict(ema.shadow.state_dict())
    info = {
        "data": _phantom_description(cfg.ellipses)
        if images is None
        else f"{len(images)} user images",
        "init": str(init) if init else None,
        "steps": step,
        "train_config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
        "hardware": _hardware(dev),
        "precision": precision,
        "wall_seconds": round(wall, 1),
        "command": command or " ".join(sys.argv),
        "commit": _git_commit(),
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in final.net.parameters()),
        **cfg.extra,
    }
    card = model_card(cfg.name, info)
    return save_prior(final, weights, info=info, card=card)


def model_card(name: str, info: dict) -> str:
    """Markdown model card from training facts (and scores, when ``info['scores']`` exists)."""
    lines = [
        f"# Prior `{name}`",
        "",
        f"- Data: {info['data']}"
        + (f", fine-tuned from `{info['init']}`" if info.get("init") else ""),
        f"- Parameters: {info['parameters']:,}",
        f"- Steps: {info['steps']}",
        f"- Hardware: {info['hardware']}"
        + (f", network passes in {info['precision']}" if "precision" in info else ""),
        f"- Wall time: {info['wall_seconds'] / 60:.1f} min",
        f"- Command: `{info['command']}`",
        f"- Commit: {info['commit']}, torch {info['torch']}",
        "",
        "## Training configuration",
        "",
        "```json",
        json.dumps(info["train_config"], indent=2),
        "```",
    ]
    for key in ("scores", "cost"):
        if key in info:
            lines += [
                "",
                f"## {key.title()}",
                "",
                "```json",
                json.dumps(info[key], indent=2),
                "```",
            ]
    return "\n".join(lines) + "\n"


def images_from_arrays(
    arrays: Sequence[np.ndarray], names: Sequence[str] | None = None
) -> torch.Tensor:
    """Fine-tuning images ``(N, H, W)`` in ``[0, 1]`` from 2D slices or 3D volumes.

    Every 2D array is one image; a 3D array contributes each of its slices along axis 0. Each
    volume is scaled by its 0.5/99.5 percentiles to ``[0, 1]`` (the prior's intensity range),
    whatever its units (any range, however small or large). All images must share one
    in-plane shape. ValueError for an array whose percentiles coincide (a constant one, or
    one with ≥ 99 % of its values equal), which no scaling maps to ``[0, 1]``; ``names`` (e.g.
    the files) name the arrays in messages, else they are numbered from 1.
    """
    slices = []
    for i, a in enumerate(arrays):
        a = np.asarray(a, dtype=np.float32)
        if a.ndim not in (2, 3):
            raise ValueError(f"fine-tuning images must be 2D or 3D, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("fine-tuning images contain NaN or Inf")
        lo, hi = np.percentile(a, [0.5, 99.5])
        if not hi > lo:
            what = names[i] if names is not None else f"fine-tuning image {i + 1}"
            raise ValueError(_flat_image_message(what, a, float(lo)))
        scaled = np.clip((a - lo) / (hi - lo), 0, 1)
        slices.extend(scaled[None] if a.ndim == 2 else scaled)
    shapes = {s.shape for s in slices}
    if len(shapes) != 1:
        raise ValueError(f"fine-tuning images must share one in-plane shape, got {sorted(shapes)}")
    return torch.from_numpy(np.stack(slices).astype(np.float32))


def _flat_image_message(what: str, array: np.ndarray, value: float) -> str:
    """Why ``array`` (``what``), whose 0.5 and 99.5 percentiles are both ``value``, cannot be
    scaled to ``[0, 1]``."""
    if np.ptp(array) == 0:
        return f"{what}: every value is {value:g}; a constant image has nothing to learn from"
    return (
        f"{what}: at least 99 % of its values are {value:g}, so the 0.5 and 99.5 percentiles "
        "that scale it to [0, 1] coincide; crop it to the object"
    )


def add_train_arguments(parser, finetune: bool = False) -> None:
    """Options shared by ``train-prior`` and ``finetune-prior`` (argparse)."""
    d = TrainConfig()
    parser.add_argument("--out", required=True, help="output folder (checkpoints, log, weights)")
    parser.add_argument("--name", default="prior", help="file stem of the written prior")
    parser.add_argument("--steps", type=int, default=500 if finetune else d.steps)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=1e-4 if finetune else d.lr)
    parser.add_argument(
        "--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule, help="learning-rate decay"
    )
    parser.add_argument(
        "--warmup-steps", type=int, default=d.warmup_steps, help="linear learning-rate warm-up"
    )
    parser.add_argument(
        "--timestep-power",
        type=float,
        default=d.timestep_power,
        help="training timesteps t = T·u^power: 1 uniform (default), 2 favours low noise",
    )
    parser.add_argument("--ema-decay", type=float, default=0.99 if finetune else d.ema_decay)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=d.precision,
        help="network passes: auto (tf32 on CUDA, fp32 on the CPU), fp32, tf32 or bf16 (mixed "
        "precision: float32 weights and optimiser)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh, replacing a checkpoint of another run in --out or finished weights "
        "of the same --name (without it, those stop the command; a checkpoint of the same "
        "run is resumed)",
    )
    parser.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    parser.add_argument("--log-every", type=int, default=d.log_every)
    parser.add_argument(
        "--patch-sizes", default=",".join(map(str, d.patch_sizes)), help="comma list, e.g. 16,32,64"
    )
    parser.add_argument(
        "--patch-probs", default=",".join(map(str, d.patch_probs)), help="comma list of weights"
    )
    if finetune:
        parser.add_argument("--prior", default="default", help="prior to start from")
    else:
        parser.add_argument(
            "--init",
            default=None,
            help="continue from this prior (name or .safetensors) instead of a random network; "
            "its architecture, prediction, data scale and image size are kept",
        )
        parser.add_argument("--whole-image", action="store_true", help="whole-image prior")
        parser.add_argument(
            "--prediction", choices=PREDICTIONS, default=d.prediction, help="network output"
        )
        parser.add_argument(
            "--data-scale",
            type=float,
            default=d.data_scale,
            help="the network sees the images multiplied by this (the schedule's noise is "
            "relative to it)",
        )
        parser.add_argument("--base-channels", type=int, default=d.base_channels)
        parser.add_argument(
            "--channel-mults", default=",".join(map(str, d.channel_mults)), help="e.g. 1,2,4,4"
        )
        parser.add_argument("--image-size", type=int, default=d.image_size)
        parser.add_argument(
            "--ellipses",
            type=int,
            default=d.ellipses,
            help="phantoms draw min(Poisson(n), n) ellipses (default: DESIGN's 140; fewer make "
            "simpler images)",
        )
        parser.add_argument("--pool-size", type=int, default=d.pool_size)


def _comma_list(text: str, kind: type, option: str) -> tuple:
    """The values of the comma list ``text`` of option ``option``, each made a ``kind``
    (``int`` or ``float``); ValueError, naming the option, for one that is not."""
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{option} must be a comma list of {what}, got {text!r}") from None


def config_from_args(args, finetune: bool = False) -> TrainConfig:
    """``TrainConfig`` from parsed ``add_train_arguments`` options; ValueError, naming the
    option, for a value that cannot train (:func:`check_config`)."""
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        timestep_power=args.timestep_power,
        ema_decay=args.ema_decay,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        precision=args.precision,
        patch_sizes=_comma_list(args.patch_sizes, int, "--patch-sizes"),
        patch_probs=_comma_list(args.patch_probs, float, "--patch-probs"),
        name=args.name,
    )
    if finetune:
        cfg.augment = True
        cfg.pool_refresh = 0
    else:
        cfg.whole_image = args.whole_image
        cfg.prediction = args.prediction
        cfg.data_scale = args.data_scale
        cfg.base_channels = args.base_channels
        cfg.channel_mults = _comma_list(args.channel_mults, int, "--channel-mults")
        cfg.image_size = args.image_size
        cfg.ellipses = args.ellipses
        cfg.pool_size = args.pool_size
    check_config(cfg, phantoms=not finetune)
    return cfg
