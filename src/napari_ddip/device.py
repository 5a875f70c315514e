"""Where torch work runs: ``"auto"`` picks the first CUDA device when there is one."""

from __future__ import annotations

import torch


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → ``cuda`` if available else ``cpu``; anything else → ``torch.device(device)``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
