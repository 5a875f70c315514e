"""The forward operator of a loaded measurement (shared by the methods, the CLI and napari).

This joins the two layers below it: a :class:`~napari_ddip.io.Measurement` read by the file
layer, and the operators of :mod:`napari_ddip.physics`, which know nothing of files.
"""

from __future__ import annotations

import numpy as np
import torch

from napari_ddip.io import InputError, Measurement
from napari_ddip.physics.coils import espirit_maps
from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.mri import MRIOperator
from napari_ddip.physics.operator import LinearOperator

#: Largest ESPIRiT calibration block used (k-space samples per side).
MAX_CALIB_WIDTH = 24
#: Smallest usable calibration block (with the 6-sample ESPIRiT kernel, 8×8 gave empty maps).
MIN_CALIB_WIDTH = 12


def operator_from_measurement(m: Measurement, device: torch.device | str = "cpu") -> LinearOperator:
    """Build ``A`` for ``m`` on ``device``.

    CT: :class:`ParallelBeamCT` from the stored geometry. MRI: :class:`MRIOperator` with the
    stored mask and coil maps; multi-coil k-space without maps gets ESPIRiT maps calibrated on
    the fully sampled centre of k-space (up to 24×24 samples), which takes a few seconds per
    slice.
    """
    if m.kind == "ct":
        try:
            return ParallelBeamCT.from_geometry(m.geometry, device=device)
        except (ValueError, TypeError) as exc:
            raise InputError(f"CT geometry: {exc}") from None

    maps = m.maps
    if maps is None and m.data.ndim == 4:
        maps = espirit_maps(m.data, calib_width=_calibration_width(m.mask))
        if not maps.any():
            raise InputError(
                "ESPIRiT found no coil sensitivities in the calibration region: "
                "store coil maps in the file"
            )
    mask = torch.from_numpy(m.mask).to(device)
    return MRIOperator(mask, None if maps is None else torch.from_numpy(maps).to(device))


def _calibration_width(mask: np.ndarray) -> int:
    """Side of the largest fully sampled central square of ``mask`` (all slices), capped."""
    sampled = np.all(mask > 0, axis=0) if mask.ndim == 3 else mask > 0
    ny, nx = sampled.shape
    width = 0
    for w in range(2, min(ny, nx, MAX_CALIB_WIDTH) + 1, 2):
        y0, x0 = ny // 2 - w // 2, nx // 2 - w // 2
        if not sampled[y0 : y0 + w, x0 : x0 + w].all():
            break
        width = w
    if width < MIN_CALIB_WIDTH:
        raise InputError(
            f"multi-coil k-space has no coil maps and its fully sampled centre is {width}×{width} "
            f"samples; ESPIRiT needs at least {MIN_CALIB_WIDTH}×{MIN_CALIB_WIDTH}: "
            "store coil maps in the file or sample a larger calibration region"
        )
    return width
