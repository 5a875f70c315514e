"""Simulated measurements of a known volume: sparse-view / low-dose CT and undersampled MRI.

Used by ``napari-ddip simulate``, the demo and the tests. Inputs are real volumes
``(Z, Y, X)`` float32 (MRI treats them as real-valued complex images); outputs are validated
:class:`~napari_ddip.io.Measurement` objects that carry their geometry and provenance.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from napari_ddip.io import InputError, Measurement
from napari_ddip.io.tiff import VoxelSize
from napari_ddip.physics.coils import simulated_coil_maps
from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.ct_geometry import FULL_SCAN_DEG
from napari_ddip.physics.masks import poisson_disc_mask, uniform1d_mask
from napari_ddip.physics.mri import MRIOperator
from napari_ddip.physics.noise import (
    add_complex_gaussian_noise,
    add_gaussian_noise,
    add_poisson_noise,
)

MASKS = ("poisson", "uniform1d")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)


def _require_noise(noise: float) -> None:
    """The relative Gaussian noise level: a finite number ≥ 0."""
    _require(
        math.isfinite(noise) and noise >= 0, f"--noise must be a finite number ≥ 0, got {noise}"
    )


def simulate_ct(
    volume: np.ndarray,
    n_views: int = 60,
    noise: float = 0.0,
    photons: float | None = None,
    angular_range: float = FULL_SCAN_DEG,
    seed: int = 0,
    voxel_size: VoxelSize = (1.0, 1.0, 1.0),
) -> Measurement:
    """Parallel-beam sinogram of ``volume`` ``(Z, N, N)``.

    Args:
        volume: real ``(Z, N, N)`` (square slices).
        n_views: views spread evenly over ``[0, angular_range)`` degrees.
        noise: Gaussian noise, relative to mean |sinogram| (0.01 = 1 %).
        photons: incident photons per detector bin for Poisson (low-dose) noise, or None.
        angular_range: degrees covered (180 = full scan, less = limited angle).
        seed: noise seed (Poisson uses ``seed``, Gaussian ``seed + 1``).
        voxel_size: ``(z, y, x)`` mm, carried to the reconstruction.

    Returns:
        CT measurement with data ``(Z, n_views, ceil(√2·N))`` float32.
    """
    _require(volume.ndim == 3, f"volume must be (Z, Y, X), got shape {volume.shape}")
    _require(
        volume.shape[1] == volume.shape[2],
        f"CT needs square slices, got {volume.shape[1]}×{volume.shape[2]}",
    )
    _require(n_views >= 1, f"--views must be at least 1, got {n_views}")
    _require_noise(noise)
    _require(
        photons is None or (math.isfinite(photons) and photons > 0),
        f"--photons must be a finite number > 0, got {photons}",
    )
    _require(
        0 < angular_range <= FULL_SCAN_DEG,
        f"--limited-angle must be in (0, {FULL_SCAN_DEG:g}], got {angular_range}",
    )
    op = ParallelBeamCT(volume.shape[1], n_views=n_views, angular_range=angular_range)
    sinogram = op.forward(torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32)))
    if photons is not None:
        sinogram = add_poisson_noise(sinogram, photons, seed=seed)
    if noise > 0:
        sinogram = add_gaussian_noise(sinogram, noise, seed=seed + 1)
    settings = {"views": n_views, "noise": noise, "photons": photons}
    settings |= {"angular_range": angular_range, "seed": seed}
    return Measurement(
        kind="ct",
        data=sinogram.numpy(),
        geometry=op.geometry(),
        voxel_size=voxel_size,
        provenance={"simulated": "ct", "settings": settings},
    )


def simulate_mri(
    volume: np.ndarray,
    accel: float = 4.0,
    mask: str = "poisson",
    coils: int = 1,
    noise: float = 0.0,
    seed: int = 0,
    keep_maps: bool = True,
    voxel_size: VoxelSize = (1.0, 1.0, 1.0),
) -> Measurement:
    """Undersampled Cartesian k-space of ``volume`` ``(Z, Y, X)`` (as a real complex image).

    Args:
        volume: real ``(Z, Y, X)``.
        accel: acceleration (fully sampled samples / measured samples).
        mask: ``"poisson"`` (variable-density Poisson disc with a central calibration square
            of ``max(12, min(24, N/8))`` samples, enough for ESPIRiT) or ``"uniform1d"``
            (random ky lines, 8 % ACS); one mask ``(ky, kx)`` for all slices.
        coils: number of simulated birdcage coils; 1 = single-coil.
        noise: complex Gaussian noise on the sampled entries, relative to their mean |k|.
        seed: mask and noise seed.
        keep_maps: store the coil maps in the measurement (else ESPIRiT estimates them).
        voxel_size: ``(z, y, x)`` mm.

    Returns:
        MRI measurement with data ``(Z, [coils,] Y, X)`` complex64 and its mask.
    """
    _require(volume.ndim == 3, f"volume must be (Z, Y, X), got shape {volume.shape}")
    _require(
        math.isfinite(accel) and accel >= 1, f"--accel must be a finite number ≥ 1, got {accel}"
    )
    _require(mask in MASKS, f"--mask must be one of {MASKS}, got {mask!r}")
    _require(coils >= 1, f"--coils must be at least 1, got {coils}")
    _require_noise(noise)
    nz, ny, nx = volume.shape
    try:
        if mask == "poisson":
            calib = max(12, min(24, min(ny, nx) // 8))
            if calib**2 > ny * nx / accel:  # a small matrix: half the samples in the centre
                calib = math.isqrt(int(ny * nx / accel / 2))
            sampling = poisson_disc_mask((ny, nx), accel, calib=(calib, calib), seed=seed)
        else:
            sampling = uniform1d_mask((ny, nx), accel, seed=seed)
    except ValueError as exc:  # e.g. sigpy cannot reach the acceleration on a small matrix
        raise InputError(f"--mask {mask} --accel {accel} on {ny}×{nx}: {exc}") from None
    maps = simulated_coil_maps(coils, (nz, ny, nx)) if coils > 1 else None
    op = MRIOperator(sampling, maps)
    image = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32)).to(torch.complex64)
    kspace = op.forward(image)
    if noise > 0:
        kspace = add_complex_gaussian_noise(kspace, noise, seed=seed + 1)
    settings = {"accel": accel, "mask": mask, "coils": coils, "noise": noise, "seed": seed}
    return Measurement(
        kind="mri",
        data=kspace.numpy(),
        geometry=op.geometry(),
        mask=sampling,
        maps=maps if keep_maps else None,
        voxel_size=voxel_size,
        provenance={"simulated": "mri", "settings": settings},
    )
