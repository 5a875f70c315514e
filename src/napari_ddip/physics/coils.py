"""Coil sensitivity maps: ESPIRiT calibration from measured k-space, and simulated birdcage maps.

Both return numpy complex64 arrays in the layout :class:`~napari_ddip.physics.mri.MRIOperator`
takes, ``(Z, C, Y, X)``. sigpy (slow to import) is imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def espirit_maps(
    kspace: np.ndarray | torch.Tensor,
    calib_width: int = 24,
    thresh: float = 0.02,
    kernel_width: int = 6,
    crop: float = 0.95,
    max_iter: int = 100,
) -> np.ndarray:
    """ESPIRiT maps (``sigpy.mri.app.EspiritCalib``, one set) slice by slice.

    Args:
        kspace: centred k-space ``(Z, C, ky, kx)``; only its central ``calib_width²`` block
            (which must be fully sampled) is used.
        calib_width: side of the calibration (ACS) block in k-space samples.
        thresh: singular-value threshold of the calibration matrix, relative to the largest.
        kernel_width: k-space kernel size.
        crop: maps are zeroed where the eigenvalue is below this (outside the object).
        max_iter: power iterations per slice.

    Returns:
        ``(Z, C, Y, X)`` complex64, phase relative to coil 0, ``Σ_c |S_c|² = 1`` inside the
        object and 0 outside (all 0 on a slice without signal, e.g. an empty end slice).
    """
    import sigpy.mri.app

    ksp = kspace.detach().cpu().numpy() if isinstance(kspace, torch.Tensor) else kspace
    ksp = np.asarray(ksp, dtype=np.complex64)
    if ksp.ndim != 4:
        raise ValueError(f"kspace must be (Z, C, ky, kx), got {ksp.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):  # a slice without signal: 0/0
        maps = [
            sigpy.mri.app.EspiritCalib(
                ksp_slice,
                calib_width=calib_width,
                thresh=thresh,
                kernel_width=kernel_width,
                crop=crop,
                max_iter=max_iter,
                show_pbar=False,
            ).run()
            for ksp_slice in ksp
        ]
    return np.nan_to_num(np.stack(maps).astype(np.complex64), nan=0.0)


def simulated_coil_maps(n_coils: int, shape: Sequence[int]) -> np.ndarray:
    """Birdcage coil maps (``sigpy.mri.birdcage_maps``) normalised to ``Σ_c |S_c|² = 1``.

    Args:
        n_coils: number of coils ``C``.
        shape: ``(Y, X)`` for one slice or ``(Z, Y, X)`` for a volume (3D birdcage).

    Returns:
        ``(Z, C, Y, X)`` complex64 (``Z = 1`` for a 2D ``shape``).
    """
    if len(shape) not in (2, 3):
        raise ValueError(f"shape must be (Y, X) or (Z, Y, X), got {tuple(shape)}")
    import sigpy.mri

    maps = sigpy.mri.birdcage_maps((n_coils, *shape), dtype=np.complex64)
    maps = maps[:, None] if len(shape) == 2 else maps
    return np.ascontiguousarray(maps.transpose(1, 0, 2, 3))
