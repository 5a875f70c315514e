"""Where torch work runs: ``"auto"`` picks the first CUDA device when there is one."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → ``cuda`` if available else ``cpu``; anything else → ``torch.device(device)``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def to_device(
    tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``tensor``, made on the CPU (random draws come from CPU generators, so that every device
    draws the same), on ``device`` in ``dtype`` (None: its own) without stalling a GPU.

    A blocking copy from ordinary host memory to a CUDA device synchronises the stream, so the
    GPU would wait for the host at every draw; a copy from pinned memory is queued behind the
    work already submitted instead.
    """
    if device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device=device, dtype=dtype)
