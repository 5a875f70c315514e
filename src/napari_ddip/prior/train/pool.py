"""The images a training run learns from, and the batches it cuts from them.

Training draws ellipse phantoms on the fly into a pool that is partly refreshed every step
(phantom drawing costs ~13 ms per 256² image on one core, so the pool keeps training from
being data-bound); fine-tuning keeps a fixed set of user images and flips and rotates them.
Every batch is cut into random patches of a size drawn from the patch-size mixture of the
patch-based prior (docs/architecture.md §4).
"""

from __future__ import annotations

import numpy as np
import torch

from napari_ddip.device import to_device
from napari_ddip.prior.patches import random_patches, with_coordinates
from napari_ddip.prior.phantoms import EllipseDistribution, ellipse_phantoms
from napari_ddip.prior.train.config import TrainConfig


class TrainingPool:
    """A pool of training images ``(n, S, S)`` on the training device (so that batches are cut
    there), partly replaced by fresh phantoms at every step; ``images`` None draws
    ``cfg.pool_size`` phantoms, else those images stay fixed."""

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
        """Replace the next ``cfg.pool_refresh`` phantoms, cyclically (fixed images stay)."""
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
        """``n`` images ``(n, S, S)`` drawn with replacement; ``augment``: one random 90°
        rotation and, half of the time, a flip, for the whole draw."""
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


def training_batch(pool: TrainingPool, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Network inputs ``(B, 3, P, P)`` (patch + coordinates) for one step: whole images, or
    patches of a size ``P`` drawn by ``cfg.patch_probs``, as many as keep the pixels of a step
    about ``batch_size`` largest patches (at most ``4 · batch_size``)."""
    if cfg.whole_image:
        return with_coordinates(pool.draw(cfg.batch_size, cfg.augment))
    p = int(pool.rng.choice(cfg.patch_sizes, p=np.asarray(cfg.patch_probs) / sum(cfg.patch_probs)))
    largest = max(cfg.patch_sizes)
    n = min(cfg.batch_size * (largest // p) ** 2, 4 * cfg.batch_size)
    return random_patches(pool.draw(n, cfg.augment), p, gen)
