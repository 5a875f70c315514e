"""The settings of a training or fine-tuning run: one dataclass, its checks, and its options.

Every setting a user may change carries its help text (and, where fine-tuning starts from
other values, its fine-tuning default) in the field's metadata. :func:`train_options` lists
them; the command line (``napari-ddip train-prior`` / ``finetune-prior``) and the Fine-tune
prior widget both take their options, defaults and help from it, so that the three never
disagree.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch

from napari_ddip.precision import PRECISIONS, check_precision
from napari_ddip.prior.model import PREDICTIONS
from napari_ddip.prior.phantoms import EllipseDistribution
from napari_ddip.prior.unet import UNet, UNetConfig

LR_SCHEDULES = ("constant", "cosine")
NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")  # a file stem: --name ../x would leave --out
#: Which commands take a setting as an option: both, or ``train-prior`` alone (the network
#: and the phantoms: fine-tuning keeps its base prior's network and trains on images).
BOTH, TRAIN_ONLY = "both", "train"
_SAME = object()


def _setting(
    default: Any,
    help: str = "",
    *,
    option: str | None = BOTH,
    finetune: Any = _SAME,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A :class:`TrainConfig` field: ``default``, the option's ``help`` and ``choices``, which
    commands take it (``option``: BOTH, TRAIN_ONLY, or None for no option) and its default
    when fine-tuning (``finetune``, when it differs)."""
    metadata: dict[str, Any] = {"help": help, "option": option, "choices": choices}
    if finetune is not _SAME:
        metadata["finetune"] = finetune
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Hyper-parameters of one training or fine-tuning run (the help of each is its field's
    ``metadata["help"]``; :func:`finetune_config` gives the fine-tuning defaults)."""

    steps: int = _setting(20000, "training steps", finetune=500)
    batch_size: int = _setting(
        16, "images per step at the largest patch size (smaller patches: more, up to 4×)"
    )
    patch_sizes: tuple[int, ...] = _setting((16, 32, 64), "comma list, e.g. 16,32,64")
    patch_probs: tuple[float, ...] = _setting((0.2, 0.3, 0.5), "comma list of weights")
    whole_image: bool = _setting(False, "whole-image prior", option=TRAIN_ONLY)
    prediction: str = _setting(
        "eps", "network output (see prior.model)", option=TRAIN_ONLY, choices=PREDICTIONS
    )
    data_scale: float = _setting(
        1.0,
        "the network sees the images multiplied by this (the schedule's noise is relative to it)",
        option=TRAIN_ONLY,
    )
    image_size: int = _setting(256, "side of the phantoms in pixels", option=TRAIN_ONLY)
    ellipses: int = _setting(
        EllipseDistribution.max_count,
        f"phantoms draw min(Poisson(n), n) ellipses (default {EllipseDistribution.max_count}, "
        "the reference distribution of docs/architecture.md; fewer make simpler images)",
        option=TRAIN_ONLY,
    )
    lr: float | None = _setting(
        2e-4,
        "AdamW learning rate (fine-tuning: auto = 1e-4 for a diffusion prior, 1e-5 for a "
        "denoiser prior such as ffdnet-color)",
        finetune=None,
    )
    lr_schedule: str = _setting(
        "constant", "learning-rate decay (cosine: to zero at the last step)", choices=LR_SCHEDULES
    )
    warmup_steps: int = _setting(0, "linear learning-rate warm-up")
    timestep_power: float = _setting(
        1.0, "training timesteps t = T·u^power: 1 uniform (default), 2 favours low noise"
    )
    ema_decay: float = _setting(
        0.999, "decay of the weights' moving average (the written prior)", finetune=0.99
    )
    pool_size: int = _setting(512, "phantoms in the training pool", option=TRAIN_ONLY)
    pool_refresh: int = _setting(2, option=None, finetune=0)  # phantoms replaced per step
    seed: int = _setting(0, "random seed")
    checkpoint_every: int = _setting(250, "steps between checkpoints (OUT/checkpoint/)")
    log_every: int = _setting(25, "steps between rows of the loss log (OUT/loss.csv)")
    base_channels: int = _setting(16, "channels of the UNet's first level", option=TRAIN_ONLY)
    channel_mults: tuple[int, ...] = _setting(
        (1, 2, 4, 4),
        "channels of each UNet level / --base-channels, e.g. 1,2,4,4",
        option=TRAIN_ONLY,
    )
    name: str = _setting("prior", "file stem of the written prior")
    augment: bool = _setting(False, option=None, finetune=True)  # flips / 90° rotations
    precision: str = _setting(
        "auto",
        "network passes: auto (tf32 on CUDA, fp32 on the CPU), fp32, tf32 or bf16 (mixed "
        "precision: float32 weights and optimiser, and float32 passes at the lowest noise "
        "levels)",
        choices=PRECISIONS,
    )
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainOption:
    """A setting as a command-line option or widget field."""

    name: str  # the TrainConfig field
    default: Any
    help: str
    choices: tuple[str, ...] | None

    @property
    def flag(self) -> str:
        """The command-line option, e.g. ``--batch-size``."""
        return "--" + self.name.replace("_", "-")


def finetune_config(**changes: Any) -> TrainConfig:
    """The fine-tuning defaults (fewer steps, a lower learning rate, a faster EMA, flips and
    rotations of a fixed set of images), with ``changes``."""
    tuned = {
        f.name: f.metadata["finetune"] for f in fields(TrainConfig) if "finetune" in f.metadata
    }
    return replace(TrainConfig(), **(tuned | changes))


def finetune_learning_rate(denoiser: bool) -> float:
    """The fine-tuning learning rate when the user leaves it to the base prior: 1e-4 for a
    diffusion prior, 1e-5 for a denoiser prior, whose trained weights are moved off their
    optimum by larger steps (FFDNet, 500 steps on ten MNI152 slices: one-step denoising in
    the brain 0.2–0.4 dB better at 1e-5, 0.4–1.7 dB worse at 1e-4; BENCHMARKS.md,
    "Fine-tuning")."""
    return 1e-5 if denoiser else 1e-4


def train_options(finetune: bool = False) -> list[TrainOption]:
    """The options of ``finetune-prior`` (``finetune``) or ``train-prior``, in field order,
    with that command's defaults."""
    defaults = finetune_config() if finetune else TrainConfig()
    taken = (BOTH,) if finetune else (BOTH, TRAIN_ONLY)
    return [
        TrainOption(f.name, getattr(defaults, f.name), f.metadata["help"], f.metadata["choices"])
        for f in fields(TrainConfig)
        if f.metadata.get("option") in taken
    ]


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
    """Learning rate (``None``: the base prior's, see :func:`finetune_learning_rate`), data
    scale, timestep power (see
    :func:`~napari_ddip.prior.train.loop.training_timesteps`) and EMA decay (1 would never
    move the EMA from the initial weights)."""
    rates = [("--data-scale", cfg.data_scale)] + ([("--lr", cfg.lr)] if cfg.lr is not None else [])
    for option, value in rates:
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
            UNet(unet_config(cfg))
    except ValueError as exc:  # GroupNorm: "num_channels (36) must be divisible by ..."
        raise ValueError(
            f"--base-channels {base} with --channel-mults {','.join(map(str, mults))} give a "
            f"layer that GroupNorm cannot split into min(8, channels // 4) equal groups ({exc}); "
            "a --base-channels that is a multiple of 8 always works"
        ) from None


def unet_config(cfg: TrainConfig) -> UNetConfig:
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
