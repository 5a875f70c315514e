"""The training loop of ``napari-ddip train-prior`` / ``finetune-prior``.

Each step draws a batch (:mod:`~napari_ddip.prior.train.pool`), timesteps (uniform, or more
often at low noise) and noise, and minimises the MSE of the network's ε- or v-prediction
(:meth:`~napari_ddip.prior.model.DiffusionPrior.target`) with AdamW, keeping an EMA of the
weights. Fine-tuning a denoiser prior (FFDNet) minimises the same ε-MSE, its ε̂ taken by
Tweedie from the denoiser at the timestep's noise level
(:meth:`~napari_ddip.prior.denoiser.DenoiserPrior.training_output`): the denoising error
weighted by ``1/s_t²``. The run checkpoints into ``OUT/checkpoint/`` and resumes from there
(:mod:`~napari_ddip.prior.train.checkpoint`), logs the loss to ``OUT/loss.csv``, and finally
writes the EMA weights as ``OUT/NAME.safetensors`` + ``.json`` + ``.md``
(:mod:`~napari_ddip.prior.train.card`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from napari_ddip.device import available_device, to_device
from napari_ddip.precision import (
    network_precision,
    pass_precision,
    resolve_precision,
    tf32_switches,
)
from napari_ddip.prior.denoiser import DenoiserPrior
from napari_ddip.prior.ema import EMA
from napari_ddip.prior.model import DiffusionPrior, PriorConfig
from napari_ddip.prior.train.card import model_card, training_info
from napari_ddip.prior.train.checkpoint import (
    TrainingState,
    load_checkpoint,
    output_folder,
    resumable_checkpoint,
    run_identity,
    save_checkpoint,
    weights_path,
)
from napari_ddip.prior.train.config import (
    TrainConfig,
    check_config,
    finetune_learning_rate,
    unet_config,
)
from napari_ddip.prior.train.pool import TrainingPool, training_batch
from napari_ddip.prior.weights import Prior, load_prior, save_prior

Progress = Callable[[int, int, float], bool | None]
LOG_HEADER = "step,loss,seconds\n"


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
    and data (:func:`~napari_ddip.prior.train.checkpoint.run_identity`); raises
    TrainingOutputError, before any training, when it is another run's or when
    ``OUT/NAME.safetensors`` exists without a checkpoint, unless ``overwrite`` (start afresh,
    replacing both). A run whose checkpoint has reached ``cfg.steps`` and whose weights are
    written is finished: they are returned untouched (with any scores added to their card
    since), and nothing is trained. ``progress(step, steps, loss)`` is called every
    ``log_every`` steps; returning False stops (a checkpoint is written first). Returns the
    path of the final weights (EMA).
    """
    base = None if init is None else load_prior(init)
    if base is not None:
        cfg = _continued(cfg, base)
    elif cfg.lr is None:
        cfg = replace(cfg, lr=TrainConfig.lr)
    # Every setting is checked before a file is written or a phantom drawn.
    check_config(cfg, phantoms=images is None)
    dev = available_device(device)
    precision = resolve_precision(cfg.precision, dev.type)
    torch.manual_seed(cfg.seed)
    prior = _initial_prior(cfg, base).to(dev).train()
    out = output_folder(out_dir)
    identity = run_identity(prior.config, cfg, images)
    last = resumable_checkpoint(out, cfg.name, identity, overwrite)
    state = TrainingState(
        prior,
        EMA(prior.net, cfg.ema_decay),
        torch.optim.AdamW(prior.net.parameters(), lr=cfg.lr, weight_decay=0.0),
        TrainingPool(images, cfg, np.random.default_rng(cfg.seed), dev),
        torch.Generator().manual_seed(cfg.seed),
    )
    step, wall = (0, 0.0) if last is None else load_checkpoint(last, state)
    weights = weights_path(out, cfg.name)
    if step >= cfg.steps and weights.is_file():  # finished: leave its weights and card as they are
        return weights
    _start_log(out / "loss.csv", step)
    run = _Run(cfg, state, precision, dev, out, identity, progress)
    step, wall = run.train(step, wall)
    final = type(prior)(prior.config)
    final.net.load_state_dict(state.ema.shadow.state_dict())
    n_images = None if images is None else len(images)
    info = training_info(cfg, final, n_images, init, step, dev, precision, wall, command)
    return save_prior(final, weights, info=info, card=model_card(cfg.name, info))


class _Run:
    """The steps of one training run from a given step on: each updates ``state``; the loss
    is logged every ``log_every`` steps and a checkpoint written every ``checkpoint_every``
    (and at the end, or when ``progress`` returns False)."""

    def __init__(
        self,
        cfg: TrainConfig,
        state: TrainingState,
        precision: str,
        device: torch.device,
        out: Path,
        identity: dict,
        progress: Progress | None,
    ) -> None:
        self.cfg, self.state, self.precision, self.device = cfg, state, precision, device
        self.log_path, self.ckpt = out / "loss.csv", out / "checkpoint"
        self.identity, self.progress = identity, progress
        self.alpha_bar = state.prior.schedule.alpha_bar.to(device)
        # √(1 − ᾱ) from float64: a denoiser prior's lowest level 0.001 has 1 − ᾱ = 1e-6.
        self.noise_std = state.prior.schedule.noise_std.to(device)

    def train(self, step: int, wall: float) -> tuple[int, float]:
        """Train from ``step`` (``wall`` seconds spent before) to ``cfg.steps`` or a stop;
        returns the step reached and the wall seconds spent in all."""
        cfg = self.cfg
        start, running, count = time.time(), 0.0, 0
        stopped = False
        while step < cfg.steps:
            loss = self.step(step)
            step += 1
            # Summed on the device: reading the loss back every step would make a GPU wait.
            running, count = running + loss.detach().double(), count + 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                mean = float(running) / count
                self._log(step, mean, wall + time.time() - start)
                running, count = 0.0, 0
                if self.progress is not None and self.progress(step, cfg.steps, mean) is False:
                    stopped = True
            if step % cfg.checkpoint_every == 0 or step == cfg.steps or stopped:
                elapsed = wall + time.time() - start
                save_checkpoint(self.ckpt, self.state, step, elapsed, self.identity)
            if stopped:
                break
        return step, wall + time.time() - start

    def step(self, step: int) -> torch.Tensor:
        """One optimiser step (0-based ``step``, for the learning rate); returns the loss."""
        cfg, state, dev = self.cfg, self.state, self.device
        prior = state.prior
        state.pool.refresh()
        x = training_batch(state.pool, cfg, state.generator)  # cut on the pool's device
        gen = state.generator
        t_host = training_timesteps(x.shape[0], prior.schedule.n_steps, cfg.timestep_power, gen)
        t = to_device(t_host, dev)
        noise = to_device(torch.randn(x[:, :1].shape, generator=gen), dev)
        ab = self.alpha_bar[t][:, None, None, None]
        std = self.noise_std[t][:, None, None, None]
        x0 = x[:, :1] * prior.schedule.data_scale  # the network's units
        noisy = torch.cat([ab.sqrt() * x0 + std * noise, x[:, 1:]], dim=1)
        target = prior.target(x0, noise, ab)
        prediction = self._prediction(noisy, t, t_host)
        loss = torch.nn.functional.mse_loss(prediction, target)
        state.optimizer.zero_grad(set_to_none=True)
        with tf32_switches(self.precision, dev):
            loss.backward()
        torch.nn.utils.clip_grad_norm_(prior.net.parameters(), 1.0)
        for group in state.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, step)
        state.optimizer.step()
        state.ema.update(prior.net)
        return loss

    def _prediction(
        self, noisy: torch.Tensor, t: torch.Tensor, t_host: torch.Tensor
    ) -> torch.Tensor:
        """The network's training output (float32) for ``noisy (B, C, P, P)`` at timesteps
        ``t (B,)`` (``t_host``: the same on the CPU). Each row runs in its pass precision, as
        in a reconstruction (:func:`~napari_ddip.precision.pass_precision`): under ``bf16``
        the rows whose noise level is below ``BF16_MIN_LEVEL`` go through a second, float32
        pass, so that bfloat16's rounding, as large as their noise, is not learnt as part of
        it (the loss weights a denoiser prior's error by ``1/s_t²``)."""
        levels = self.state.prior.schedule.levels[t_host].tolist()
        kinds = [pass_precision(self.precision, level) for level in levels]
        prediction = torch.empty((noisy.shape[0], 1, *noisy.shape[2:]), device=self.device)
        for kind in sorted(set(kinds)):
            rows = torch.tensor([k == kind for k in kinds], device=self.device)
            with network_precision(kind, self.device):
                prediction[rows] = self.state.prior.training_output(noisy[rows], t[rows]).float()
        return prediction

    def _log(self, step: int, loss: float, seconds: float) -> None:
        """Append a row to the loss log."""
        with self.log_path.open("a") as f:
            f.write(f"{step},{loss:.6f},{seconds:.1f}\n")


def _start_log(path: Path, step: int) -> None:
    """A fresh loss log at step 0; else drop its rows past ``step``: a run killed between two
    checkpoints logged steps that the resumed run repeats."""
    if step == 0 or not path.is_file():
        path.write_text(LOG_HEADER)
        return
    header, *rows = path.read_text().splitlines()
    kept = [row for row in rows if int(row.split(",", 1)[0]) <= step]
    path.write_text("\n".join([header, *kept]) + "\n")


def _initial_prior(cfg: TrainConfig, base: Prior | None) -> Prior:
    """A copy of ``base``, or (None) a random network as ``cfg`` describes."""
    if base is not None:
        prior = type(base)(base.config)
        prior.net.load_state_dict(base.net.state_dict())
        return prior
    patch = None if cfg.whole_image else max(cfg.patch_sizes)
    return DiffusionPrior(
        PriorConfig(
            unet=unet_config(cfg),
            patch_size=patch,
            image_size=cfg.image_size,
            prediction=cfg.prediction,
            data_scale=cfg.data_scale,
        )
    )


def _continued(cfg: TrainConfig, base: Prior) -> TrainConfig:
    """``cfg`` for continuing the prior ``base``: the network decides the mode, so a
    whole-image prior keeps training on whole images of its own size, and a denoiser prior
    (a plain CNN, whatever the image size) on patches; a learning rate left to the base
    prior (``None``) becomes its kind's (:func:`finetune_learning_rate`)."""
    lr = finetune_learning_rate(isinstance(base, DenoiserPrior)) if cfg.lr is None else cfg.lr
    if isinstance(base, DenoiserPrior):
        return replace(cfg, whole_image=False, prediction="eps", data_scale=1.0, lr=lr)
    config = base.config
    return replace(
        cfg,
        whole_image=config.patch_size is None,
        prediction=config.prediction,
        data_scale=config.data_scale,
        image_size=config.image_size,
        lr=lr,
    )
