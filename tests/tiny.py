"""A tiny random-init prior for engine mechanics tests (seeded, so every call is identical)."""

from __future__ import annotations

import torch

from napari_ddip.prior.model import DiffusionPrior, PriorConfig
from napari_ddip.prior.unet import UNetConfig

TINY_UNET = UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=())


def tiny_prior(patch: int | None = 16) -> DiffusionPrior:
    """Base-8, two-level UNet without attention; ``patch`` None for a whole-image prior."""
    torch.manual_seed(0)
    return DiffusionPrior(PriorConfig(unet=TINY_UNET, patch_size=patch)).eval()
