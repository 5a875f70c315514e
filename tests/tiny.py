"""A tiny random-init prior for engine mechanics tests (seeded, so every call is identical) and
a tiny training configuration for the training tests."""

from __future__ import annotations

import torch

from napari_ddip.prior.model import DiffusionPrior, PriorConfig
from napari_ddip.prior.train import TrainConfig
from napari_ddip.prior.unet import UNetConfig

TINY_UNET = UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=())


def tiny_prior(patch: int | None = 16) -> DiffusionPrior:
    """Base-8, two-level UNet without attention; ``patch`` None for a whole-image prior."""
    torch.manual_seed(0)
    return DiffusionPrior(PriorConfig(unet=TINY_UNET, patch_size=patch)).eval()


def tiny_train_config(steps: int, **changes) -> TrainConfig:
    """Training of a base-8 two-level UNet on 64² phantoms, logged and checkpointed every 10
    steps; ``changes`` override any field."""
    settings = dict(
        steps=steps,
        batch_size=8,
        base_channels=8,
        channel_mults=(1, 2),
        pool_size=16,
        image_size=64,
        patch_sizes=(16, 32),
        patch_probs=(0.5, 0.5),
        log_every=10,
        checkpoint_every=10,
        lr=2e-3,
        name="tiny",
    )
    return TrainConfig(**(settings | changes))
