"""Where torch work runs: ``"auto"`` picks the first CUDA device when there is one."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → ``cuda`` if available else ``cpu``; anything else → ``torch.device(device)``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def available_device(device: str | torch.device) -> torch.device:
    """The device ``device`` names (``auto``, ``cpu``, ``cuda`` or ``cuda:N``), which must exist
    on this machine; anything else raises ValueError, before any work (where torch would fail
    mid-run with RuntimeError or AssertionError)."""
    try:
        dev = resolve_device(device)
    except RuntimeError:  # torch.device("gpu")
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu, cuda or cuda:N, got {str(device)!r}")
    if dev.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(f"--device {device}: no CUDA device is available on this machine")
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"--device {device}: this machine has {count} CUDA device(s), cuda:0 to "
                f"cuda:{count - 1}"
            )
    return dev


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
