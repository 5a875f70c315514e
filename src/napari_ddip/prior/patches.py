"""Patch tiling for the patch prior (Hu et al. 2024; docs/architecture.md §4, "Patch prior").

At each network call the image is zero-padded onto a canvas whose patch grid is shifted by a
random offset, all ``P×P`` patches go through the network in one batch with their coordinate
channels, and the outputs are stitched back without overlap. Coordinates: pixel ``(i, j)`` of an
``H×W`` image sits at ``y = (2i + 1)/H − 1``, ``x = (2j + 1)/W − 1`` (the image spans
``[−1, 1]``; padding pixels extend past it), the same convention training uses.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from napari_ddip.device import to_device


def coordinates(rows: torch.Tensor, cols: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Coordinate channels ``(2, len(rows), len(cols))`` for integer pixel rows/cols.

    ``rows``/``cols`` may be negative or past the image (padding).
    """
    y = (2 * rows.float() + 1) / height - 1
    x = (2 * cols.float() + 1) / width - 1
    return torch.stack(torch.broadcast_tensors(y[:, None], x[None, :]))


def with_coordinates(images: torch.Tensor) -> torch.Tensor:
    """Whole-image network input ``(B, 3, H, W)`` from images ``(B, H, W)``."""
    b, h, w = images.shape
    dev = images.device
    coords = coordinates(torch.arange(h, device=dev), torch.arange(w, device=dev), h, w)
    return torch.cat([images[:, None], coords.to(images.dtype).expand(b, 2, h, w)], dim=1)


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    patch_size: int,
    offset: tuple[int, int],
    pad_std: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply a patch network to whole images by shifted, non-overlapping tiling.

    Args:
        fn: maps patches with coordinates ``(N, 3, P, P)`` to outputs ``(N, 1, P, P)``.
        images: ``(B, H, W)``.
        patch_size: ``P``.
        offset: grid shift ``(oy, ox)``, each in ``[0, P)``: the image starts at this position
            of the padded canvas.
        pad_std: the padding is Gaussian noise of this standard deviation (drawn from
            ``generator``): at diffusion time ``t`` it is ``√(1 − ᾱ_t)``, what training saw
            outside the image (a zero image plus noise); 0 pads with zeros.

    Returns:
        ``(B, H, W)``: the stitched outputs.
    """
    b, h, w = images.shape
    p = patch_size
    oy, ox = offset
    # Enough patches for any offset, so that the cost does not depend on the draw.
    ny, nx = -(-(h + p - 1) // p), -(-(w + p - 1) // p)
    canvas_h, canvas_w = ny * p, nx * p
    if pad_std > 0:
        noise = torch.randn((b, canvas_h, canvas_w), generator=generator)
        canvas = to_device(pad_std * noise, images.device, images.dtype)
    else:
        canvas = images.new_zeros(b, canvas_h, canvas_w)
    canvas[:, oy : oy + h, ox : ox + w] = images
    dev = images.device
    coords = coordinates(
        torch.arange(canvas_h, device=dev) - oy, torch.arange(canvas_w, device=dev) - ox, h, w
    ).to(images.dtype)
    stacked = torch.cat([canvas[:, None], coords.expand(b, 2, canvas_h, canvas_w)], dim=1)
    # (B, 3, ny·P, nx·P) -> (B·ny·nx, 3, P, P)
    patches = stacked.reshape(b, 3, ny, p, nx, p).permute(0, 2, 4, 1, 3, 5).reshape(-1, 3, p, p)
    out = fn(patches)
    out = out.reshape(b, ny, nx, p, p).permute(0, 1, 3, 2, 4).reshape(b, canvas_h, canvas_w)
    return out[:, oy : oy + h, ox : ox + w]


def random_patches(
    images: torch.Tensor, patch_size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Training crops: one random ``P×P`` patch per image from the zero-padded image.

    The top-left corner is uniform in ``[−P/2, H − P/2]`` so patches straddle the border as
    they do at inference. Returns ``(B, 3, P, P)`` (patch + coordinate channels).
    """
    b, h, w = images.shape
    p = patch_size
    half = p // 2
    dev = images.device
    padded = torch.nn.functional.pad(images, (p, p, p, p))
    # Drawn on the CPU (``generator`` is a CPU generator), so a run draws the same on any device.
    tops = to_device(torch.randint(-half, h - half + 1, (b,), generator=generator), dev)
    lefts = to_device(torch.randint(-half, w - half + 1, (b,), generator=generator), dev)
    steps = torch.arange(p, device=dev)
    rows = tops[:, None] + steps[None, :]  # (B, P), image coordinates
    cols = lefts[:, None] + steps[None, :]
    crops = padded[
        torch.arange(b, device=dev)[:, None, None], rows[:, :, None] + p, cols[:, None, :] + p
    ]
    y = (2 * rows.float() + 1) / h - 1
    x = (2 * cols.float() + 1) / w - 1
    coords = torch.stack([y[:, :, None].expand(b, p, p), x[:, None, :].expand(b, p, p)], dim=1).to(
        images.dtype
    )
    return torch.cat([crops[:, None], coords], dim=1)
