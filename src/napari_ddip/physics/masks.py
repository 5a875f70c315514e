"""Cartesian k-space sampling masks (centred, like the k-space they sample).

Both generators take ``shape = (ky, kx)`` for one mask or ``(Z, ky, kx)`` for an independent
draw per slice, and return float32 numpy arrays of 0 and 1 of that shape, deterministic per seed.
sigpy (slow to import) is imported on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def _per_slice(shape: Sequence[int], draw: Callable[[int], np.ndarray]) -> np.ndarray:
    """Stack ``draw(slice_index)`` over Z when ``shape`` is 3D; a single draw when 2D."""
    if len(shape) == 2:
        return draw(0)
    if len(shape) == 3:
        return np.stack([draw(z) for z in range(shape[0])])
    raise ValueError(f"mask shape must be (ky, kx) or (Z, ky, kx), got {tuple(shape)}")


def poisson_disc_mask(
    shape: Sequence[int],
    accel: float,
    calib: tuple[float, float] = (24, 24),
    seed: int = 0,
) -> np.ndarray:
    """Variable-density Poisson-disc mask (``sigpy.mri.poisson``, corners cropped).

    Args:
        shape: ``(ky, kx)`` or ``(Z, ky, kx)``.
        accel: target acceleration ``ky·kx / samples`` (sigpy matches it within 0.1).
        calib: fully sampled central calibration region ``(cy, cx)``; values below 1 are
            fractions of the matrix size (e.g. ``(0.08, 0.08)``).
        seed: slice ``z`` uses ``seed + z``.
    """
    import sigpy.mri

    ky, kx = shape[-2:]
    cal = tuple(round(c * n) if c < 1 else int(c) for c, n in zip(calib, (ky, kx), strict=True))

    def draw(z: int) -> np.ndarray:
        mask = sigpy.mri.poisson((ky, kx), accel, calib=cal, dtype=np.float32, seed=seed + z)
        return np.asarray(mask.real, dtype=np.float32)

    return _per_slice(shape, draw)


def uniform1d_mask(
    shape: Sequence[int],
    accel: float,
    acs_fraction: float = 0.08,
    seed: int = 0,
    pattern: str = "random",
) -> np.ndarray:
    """Phase-encode (ky) line mask: full along kx, central ACS block, the rest spread over ky.

    ``round(ky / accel)`` lines in total, of which ``round(acs_fraction · ky)`` form the
    fully sampled centre; the others are drawn uniformly at random (``pattern="random"``) or
    equispaced with a random offset (``"equispaced"``) among the remaining lines, so the
    acceleration is exact up to rounding one line.
    """
    if pattern not in ("random", "equispaced"):
        raise ValueError(f"pattern must be 'random' or 'equispaced', got {pattern!r}")
    ky, kx = shape[-2:]
    n_lines = max(1, round(ky / accel))
    n_acs = min(n_lines, round(acs_fraction * ky))
    start = ky // 2 - n_acs // 2
    acs = np.arange(start, start + n_acs)
    outer = np.setdiff1d(np.arange(ky), acs)
    n_extra = n_lines - n_acs
    rng = np.random.default_rng(seed)

    def draw(_: int) -> np.ndarray:
        if pattern == "random":
            extra = rng.choice(outer, size=n_extra, replace=False)
        else:
            step = len(outer) / max(n_extra, 1)
            extra = outer[(np.arange(n_extra) * step + rng.uniform(0, step)).astype(int)]
        mask = np.zeros((ky, kx), dtype=np.float32)
        mask[np.concatenate([acs, extra])] = 1.0
        return mask

    return _per_slice(shape, draw)


def acceleration(mask: np.ndarray) -> float:
    """Measured acceleration ``1 / mean(mask)``."""
    return float(1.0 / np.mean(mask))
