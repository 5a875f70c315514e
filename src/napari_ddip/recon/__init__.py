"""The diffusion reconstruction engine (no Qt, no napari): :func:`reconstruct` yields events.

Example::

    from napari_ddip.recon import ReconConfig, reconstruct, run_to_end

    result = run_to_end(reconstruct(sinogram, ct_operator, ReconConfig(method="d3ip")))
    volume = result.volume  # (Z, Y, X) float32
"""

from napari_ddip.device import resolve_device
from napari_ddip.recon.config import ReconConfig
from napari_ddip.recon.diffusion_methods import DIFFUSION_METHODS, DiffusionMethod
from napari_ddip.recon.engine import Cancelled, reconstruct, run_to_end
from napari_ddip.recon.events import Adapted, Event, Finished, Preview, Progress, Started

__all__ = [
    "DIFFUSION_METHODS",
    "Adapted",
    "Cancelled",
    "DiffusionMethod",
    "Event",
    "Finished",
    "Preview",
    "Progress",
    "ReconConfig",
    "Started",
    "reconstruct",
    "resolve_device",
    "run_to_end",
]
