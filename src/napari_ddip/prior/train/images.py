"""Fine-tuning images: slices of the user's volumes, scaled to the prior's ``[0, 1]``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


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
