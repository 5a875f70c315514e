"""Cartesian k-space sampling masks (centred, like the k-space they sample).

Both generators take ``shape = (ky, kx)`` for one mask or ``(Z, ky, kx)`` for an independent
draw per slice, and return float32 numpy arrays of 0 and 1 of that shape, deterministic per seed.
sigpy (slow to import) is imported on first use.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np


def _per_slice(shape: Sequence[int], draw: Callable[[int], np.ndarray]) -> np.ndarray:
    """Stack ``draw(slice_index)`` over Z when ``shape`` is 3D; a single draw when 2D."""
    if len(shape) == 2:
        return draw(0)
    if len(shape) == 3:
        return np.stack([draw(z) for z in range(shape[0])])
    raise ValueError(f"mask shape must be (ky, kx) or (Z, ky, kx), got {tuple(shape)}")


#: Seeds a Poisson-disc draw tries, in order: ``seed``, then ``seed + k · RESEED_STRIDE``.
RESEED_STRIDE = 1_000_003
#: How many seeds a Poisson-disc draw tries before it gives up.
RESEED_TRIES = 8
#: Most bisection steps on the density slope per seed (sigpy's own succeed within ~20).
SLOPE_STEPS = 40


def poisson_disc_mask(
    shape: Sequence[int],
    accel: float,
    calib: tuple[float, float] = (24, 24),
    seed: int = 0,
    tol: float = 0.1,
) -> np.ndarray:
    """Variable-density Poisson-disc mask (the sampler of ``sigpy.mri.poisson``, corners
    cropped), within ``tol`` of the target acceleration.

    The mask is sigpy's, bit for bit, wherever ``sigpy.mri.poisson`` succeeds; where it
    would fail or loop forever (small matrices, or a draw whose first point lands in the
    calibration region and dies there), the next seed of a fixed sequence is drawn, so the
    result is still deterministic per seed.

    Args:
        shape: ``(ky, kx)`` or ``(Z, ky, kx)``.
        accel: target acceleration ``ky·kx / samples``, ≥ 1 (1: every point sampled).
        calib: fully sampled central calibration region ``(cy, cx)``; values below 1 are
            fractions of the matrix size (e.g. ``(0.08, 0.08)``).
        seed: slice ``z`` uses ``seed + z``.
        tol: largest accepted ``|acceleration − accel|``.

    Raises:
        ValueError: ``accel`` below 1, a calibration region holding more samples than the
            acceleration allows, or no seed of the sequence reaching the acceleration.
    """
    if not accel >= 1:
        raise ValueError(f"acceleration must be at least 1, got {accel}")
    ky, kx = shape[-2:]
    cal = tuple(round(c * n) if c < 1 else int(c) for c, n in zip(calib, (ky, kx), strict=True))
    budget = ky * kx / accel
    if cal[0] * cal[1] > budget:
        raise ValueError(
            f"the {cal[0]}×{cal[1]} calibration region alone holds {cal[0] * cal[1]} samples, "
            f"more than the {budget:.0f} that acceleration {accel:g} allows on {ky}×{kx}"
        )
    if accel == 1:
        return _per_slice(shape, lambda _: np.ones((ky, kx), dtype=np.float32))
    radius = _density_radius((ky, kx), cal)
    least = ky * kx / np.count_nonzero(radius < 1)  # every point of the cropped disc sampled
    if accel < least - tol:
        raise ValueError(
            f"cannot reach acceleration {accel:g} on {ky}×{kx}: with the corners cropped the "
            f"least is {least:.2f}"
        )

    def draw(z: int) -> np.ndarray:
        nearest = math.inf
        for k in range(RESEED_TRIES):
            mask, reached = _search_slope(radius, accel, cal, (seed + z + k * RESEED_STRIDE), tol)
            if abs(reached - accel) < tol:
                return mask
            nearest = min(nearest, reached, key=lambda a: abs(a - accel))
        raise ValueError(
            f"cannot reach acceleration {accel:g} on {ky}×{kx} with a {cal[0]}×{cal[1]} "
            f"calibration region (nearest: {nearest:.2f})"
        )

    return _per_slice(shape, draw)


def _density_radius(shape: tuple[int, int], calib: tuple[int, int]) -> np.ndarray:
    """sigpy's normalised k-space radius ``r`` ``(ky, kx)``: 0 in the calibration region,
    1 at the edge midpoints; the Poisson-disc radius grows as ``1 + slope · r``."""
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    x = np.maximum(abs(x - nx / 2) - calib[1] / 2, 0)
    y = np.maximum(abs(y - ny / 2) - calib[0] / 2, 0)
    x /= x.max() or 1  # a calibration region as wide as the matrix leaves x = 0
    y /= y.max() or 1
    return np.sqrt(x**2 + y**2)


def _search_slope(
    r: np.ndarray, accel: float, calib: tuple[int, int], seed: int, tol: float
) -> tuple[np.ndarray, float]:
    """sigpy's bisection on the density slope, stopped after :data:`SLOPE_STEPS` steps.

    Returns the first mask within ``tol`` of ``accel`` (float32 0/1, ``r``'s shape), else the
    last one drawn, with its acceleration.
    """
    from sigpy.mri.samp import _poisson  # the Bridson kernel behind sigpy.mri.poisson

    ny, nx = r.shape
    scale = np.array([ny, nx]) / max(nx, ny)
    low, high = 0.0, float(max(nx, ny))
    for _ in range(SLOPE_STEPS):
        slope = (low + high) / 2
        radius_y, radius_x = (np.clip((1 + r * slope) * s, 1, None) for s in scale)
        mask = _poisson(nx, ny, 30, radius_x, radius_y, calib, seed % 2**32) * (r < 1)
        reached = ny * nx / max(mask.sum(), 1)
        if abs(reached - accel) < tol:
            break
        if reached < accel:
            low = slope
        else:
            high = slope
    return mask.astype(np.float32), reached


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
