"""napari-ddip: 3D CT/MRI reconstruction with an ellipse-trained patch diffusion prior and D3IP.

The package top level stays light (no torch import) so that napari can discover the plugin
quickly; the engine is imported on first use of an attribute below.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "reconstruct": "napari_ddip.recon",
    "ReconConfig": "napari_ddip.recon",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_ddip' has no attribute {name!r}")


__all__ = ["__version__", *_LAZY]
