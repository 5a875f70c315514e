"""The diffusion prior: a UNet, its noise schedule and how it sees an image (patches or whole).

``DiffusionPrior.eps(x, t)`` is the single entry point the samplers use: it predicts the noise
of a batch of slices ``(B, H, W)`` at one timestep, tiling into random-shift patches when the
prior is a patch prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from napari_ddip.prior.patches import tiled_apply, with_coordinates
from napari_ddip.prior.schedule import VPSchedule
from napari_ddip.prior.unet import UNet, UNetConfig


@dataclass(frozen=True)
class PriorConfig:
    """Everything needed to rebuild a prior from its weights."""

    unet: UNetConfig = field(default_factory=UNetConfig)
    patch_size: int | None = 64  # None: whole-image prior
    n_steps: int = 1000
    beta_min: float = 1e-4
    beta_max: float = 0.02
    image_size: int = 256  # training image side

    def to_dict(self) -> dict:
        return {
            "unet": self.unet.to_dict(),
            "patch_size": self.patch_size,
            "n_steps": self.n_steps,
            "beta_min": self.beta_min,
            "beta_max": self.beta_max,
            "image_size": self.image_size,
        }

    @classmethod
    def from_dict(cls, d: dict) -> PriorConfig:
        d = dict(d)
        d["unet"] = UNetConfig.from_dict(d.get("unet", {}))
        return cls(**d)


class DiffusionPrior(nn.Module):
    """A trained ε-prediction network plus its schedule and tiling mode."""

    def __init__(self, config: PriorConfig = PriorConfig()) -> None:
        super().__init__()
        self.config = config
        self.net = UNet(config.unet)
        self.schedule = VPSchedule(config.n_steps, config.beta_min, config.beta_max)

    @property
    def patch_size(self) -> int | None:
        return self.config.patch_size

    def eps(
        self,
        x: torch.Tensor,
        t: int,
        generator: torch.Generator | None = None,
        patch_batch: int | None = None,
    ) -> torch.Tensor:
        """Predicted noise for slices ``x (B, H, W)`` at integer timestep ``t``.

        Patch priors draw the grid offset and the noise of the padding (what training saw
        outside the image at this noise level) from ``generator`` (CPU); ``patch_batch``
        bounds how many patches go through the network at once (all at once when None).
        """

        def run(inputs: torch.Tensor) -> torch.Tensor:
            chunks = [inputs] if patch_batch is None else inputs.split(patch_batch)
            outs = []
            for chunk in chunks:
                tt = torch.full((chunk.shape[0],), t, device=chunk.device, dtype=torch.long)
                outs.append(self.net(chunk, tt))
            return torch.cat(outs)

        if self.patch_size is None:
            return run(with_coordinates(x))[:, 0]
        p = self.patch_size
        offset = torch.randint(0, p, (2,), generator=generator).tolist()
        pad_std = float((1 - self.schedule.ab(t)).sqrt())
        return tiled_apply(run, x, p, (offset[0], offset[1]), pad_std, generator)

    def tweedie(
        self, x: torch.Tensor, t: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x̂_0, ε̂)``: the one-step posterior-mean estimate and the predicted noise."""
        eps = self.eps(x, t, generator)
        return self.schedule.tweedie(x, eps, t), eps
