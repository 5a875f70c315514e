"""Random ellipse phantoms: the only training data of the prior (SCD's distribution,
Barbano et al. 2023; docs/architecture.md §4, "Training data").

A 2D phantom is a sum of random ellipses with additive intensities on a zero background; the
foreground is shifted to start at zero and divided by its maximum, so images lie in ``[0, 1]``.
The 3D variant sums random ellipsoids and is used for tests, samples and the demo.

Reference distribution per image: ``n = min(Poisson(140), 140)`` ellipses, intensity
``U(-0.4, 1.0)``, semi-axes ``0.2·0.4745·Exp(1)``, centre at radius
``Triangular(0, 0.4745, 0.4745)`` with a uniform angle, rotation ``U(0, 2π)``; coordinates are
in ``[-1, 1]`` over the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from napari_ddip.device import to_device

RADIUS = 0.4745


@dataclass(frozen=True)
class EllipseDistribution:
    """Parameters of the random-ellipse distribution (defaults: the reference)."""

    mean_count: float = 140.0
    max_count: int = 140
    intensity_low: float = -0.4
    intensity_high: float = 1.0
    axis_scale: float = 0.2 * RADIUS
    centre_radius: float = RADIUS


def _normalise_foreground(images: torch.Tensor, foreground: torch.Tensor) -> torch.Tensor:
    """Shift each image's foreground to start at 0 and divide by its max; background stays 0.

    ``images``, ``foreground``: ``(B, ...)``; returns float32 ``(B, ...)`` in ``[0, 1]``.
    """
    flat = images.flatten(1)
    fg = foreground.flatten(1)
    big = torch.finfo(images.dtype).max
    low = torch.where(fg, flat, big).amin(dim=1, keepdim=True)
    shifted = torch.where(fg, flat - low, torch.zeros_like(flat))
    high = shifted.amax(dim=1, keepdim=True).clamp_min(1e-8)
    return (shifted / high).reshape(images.shape)


@dataclass(frozen=True)
class _Ellipses:
    """The ellipses of one phantom: ``(m,)`` arrays (semi-axes ``(m, 2)``), image units."""

    intensity: np.ndarray
    axes: np.ndarray
    cy: np.ndarray
    cx: np.ndarray
    rotation: np.ndarray


def _draw_ellipses(rng: np.random.Generator, d: EllipseDistribution) -> _Ellipses:
    """The random ellipses of one phantom (the reference distribution, module docstring)."""
    m = min(int(rng.poisson(d.mean_count)), d.max_count)
    intensity = rng.uniform(d.intensity_low, d.intensity_high, m)
    axes = d.axis_scale * rng.exponential(1.0, (m, 2))
    radius = d.centre_radius * np.sqrt(rng.uniform(size=m))  # Triangular(0, R, R)
    angle = rng.uniform(0, 2 * np.pi, m)
    rotation = rng.uniform(0, 2 * np.pi, m)
    return _Ellipses(intensity, axes, radius * np.sin(angle), radius * np.cos(angle), rotation)


def _rasterize_in_boxes(e: _Ellipses, ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """``(image, foreground)`` ``(Y, X)``, each ellipse evaluated in its bounding box only:
    the fast way on a CPU (about 13 ms per 256² phantom on one core of the project's
    AVX2-only machine)."""
    ys, xs = np.linspace(-1, 1, ny), np.linspace(-1, 1, nx)
    step_y, step_x = 2 / max(ny - 1, 1), 2 / max(nx - 1, 1)
    image = np.zeros((ny, nx))
    foreground = np.zeros((ny, nx), dtype=bool)
    for k in range(len(e.intensity)):
        reach = e.axes[k].max()
        y0 = max(int(np.floor((e.cy[k] - reach + 1) / step_y)), 0)
        y1 = min(int(np.ceil((e.cy[k] + reach + 1) / step_y)) + 1, ny)
        x0 = max(int(np.floor((e.cx[k] - reach + 1) / step_x)), 0)
        x1 = min(int(np.ceil((e.cx[k] + reach + 1) / step_x)) + 1, nx)
        if y0 >= y1 or x0 >= x1:
            continue
        dy = ys[y0:y1, None] - e.cy[k]
        dx = xs[None, x0:x1] - e.cx[k]
        c, s = np.cos(e.rotation[k]), np.sin(e.rotation[k])
        u = (dx * c + dy * s) / e.axes[k, 0]
        v = (-dx * s + dy * c) / e.axes[k, 1]
        inside = u * u + v * v <= 1.0
        image[y0:y1, x0:x1] += inside * e.intensity[k]
        foreground[y0:y1, x0:x1] |= inside
    return image, foreground


def _rasterize_dense(
    e: _Ellipses, ny: int, nx: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image, foreground)`` ``(Y, X)`` on ``device``, all ellipses evaluated on the whole
    grid at once: the fast way on a GPU, which the box loop would leave idle (the arithmetic
    of :func:`_rasterize_in_boxes` in float64; the sum over ellipses runs in another order)."""

    def column(values: np.ndarray) -> torch.Tensor:
        return to_device(torch.from_numpy(np.ascontiguousarray(values)), device)[:, None, None]

    ys = to_device(torch.from_numpy(np.linspace(-1, 1, ny)), device)[None, :, None]
    xs = to_device(torch.from_numpy(np.linspace(-1, 1, nx)), device)[None, None, :]
    dy, dx = ys - column(e.cy), xs - column(e.cx)
    c, s = column(np.cos(e.rotation)), column(np.sin(e.rotation))
    u = (dx * c + dy * s) / column(e.axes[:, 0])
    v = (-dx * s + dy * c) / column(e.axes[:, 1])
    inside = u * u + v * v <= 1.0  # (m, Y, X)
    image = (inside * column(e.intensity)).sum(0)
    return image, inside.any(0)


def ellipse_phantoms(
    n: int,
    size: int | tuple[int, int] = 256,
    rng: np.random.Generator | int | None = None,
    distribution: EllipseDistribution = EllipseDistribution(),
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw ``n`` random 2D ellipse phantoms.

    Args:
        n: number of images.
        size: image side ``N`` or ``(Y, X)``; the image spans ``[-1, 1]`` on both axes.
        rng: numpy generator or seed, for reproducibility (the same ellipses on any device).
        distribution: ellipse parameters.
        device: where the phantoms are drawn and returned: ellipse by ellipse in its bounding
            box on the CPU, all ellipses of a phantom at once on the whole grid elsewhere.

    Returns:
        float32 tensor ``(n, Y, X)`` in ``[0, 1]`` with a zero background.
    """
    ny, nx = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(rng)
    device = torch.device(device)
    images, foreground = [], []
    for _ in range(n):
        ellipses = _draw_ellipses(rng, distribution)
        if device.type == "cpu":
            image, fg = map(torch.from_numpy, _rasterize_in_boxes(ellipses, ny, nx))
        else:
            image, fg = _rasterize_dense(ellipses, ny, nx, device)
        images.append(image)
        foreground.append(fg)
    return _normalise_foreground(torch.stack(images), torch.stack(foreground)).float()


def ellipsoid_volume(
    shape: tuple[int, int, int] = (32, 128, 128),
    seed: int = 0,
    n_ellipsoids: int = 24,
) -> np.ndarray:
    """A random 3D ellipsoid phantom (for tests, sample data and the demo).

    A large body ellipsoid holds smaller random ellipsoids of varying intensity, so slices
    look like the 2D training phantoms and vary smoothly along ``z``.

    Args:
        shape: ``(Z, Y, X)`` voxels; the volume spans ``[-1, 1]`` on every axis.
        seed: random seed.
        n_ellipsoids: number of inner ellipsoids.

    Returns:
        float32 ``(Z, Y, X)`` in ``[0, 1]`` with a zero background.
    """
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij")
    points = np.stack([z, y, x], axis=-1)
    volume = np.zeros(shape, dtype=np.float64)
    body = ((z / 0.95) ** 2 + (y / 0.85) ** 2 + (x / 0.7) ** 2) <= 1
    volume[body] = 0.5
    for _ in range(n_ellipsoids):
        centre = rng.uniform(-0.5, 0.5, 3) * np.array([1.2, 1.0, 0.8])
        semi_axes = rng.uniform(0.05, 0.3, 3) * np.array([2.5, 1.0, 1.0])
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        local = (points - centre) @ q
        inside = ((local / semi_axes) ** 2).sum(-1) <= 1
        volume[inside & body] += rng.uniform(-0.3, 0.5)
    return (
        _normalise_foreground(torch.from_numpy(volume)[None], torch.from_numpy(body)[None])[0]
        .numpy()
        .astype(np.float32)
    )
