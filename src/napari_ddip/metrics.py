"""Image-quality metrics of a reconstructed volume against a reference.

Both metrics are computed per ``z`` slice on ``(Z, Y, X)`` volumes and averaged over slices.
The data range of each slice is that of the reference slice (max − min), as is usual for CT
and MRI phantoms with a zero background; slices where the reference is constant have no data
range and are left out of the average.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


@dataclass(frozen=True)
class Scores:
    """Volume scores.

    Attributes:
        psnr: mean per-slice PSNR in dB.
        ssim: mean per-slice SSIM in [-1, 1].
        n_slices: number of slices averaged (non-constant reference slices).
    """

    psnr: float
    ssim: float
    n_slices: int

    def as_dict(self) -> dict[str, float | int]:
        """The scores as a JSON-ready dict."""
        return asdict(self)


def _slices(
    recon: np.ndarray, reference: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
    """Yield ``(recon_slice, reference_slice, data_range)`` for non-constant reference slices."""
    if recon.shape != reference.shape:
        raise ValueError(f"shapes differ: recon {recon.shape} vs reference {reference.shape}")
    if reference.ndim != 3:
        raise ValueError(f"expected (Z, Y, X) volumes, got shape {reference.shape}")
    for rec, ref in zip(recon.astype(np.float64), reference.astype(np.float64), strict=True):
        data_range = float(ref.max() - ref.min())
        if data_range > 0:
            yield rec, ref, data_range


def score(recon: np.ndarray, reference: np.ndarray) -> Scores:
    """PSNR and SSIM of ``recon`` vs ``reference`` (real ``(Z, Y, X)``, same shape).

    Slices need at least 7×7 pixels (the SSIM window). Raises ValueError for mismatched
    shapes or when every reference slice is constant.
    """
    psnrs, ssims = [], []
    for rec, ref, data_range in _slices(recon, reference):
        with np.errstate(divide="ignore"):  # a perfect slice has PSNR = inf
            psnrs.append(peak_signal_noise_ratio(ref, rec, data_range=data_range))
        ssims.append(structural_similarity(ref, rec, data_range=data_range))
    if not psnrs:
        raise ValueError("the reference is constant in every slice: PSNR/SSIM are undefined")
    return Scores(psnr=float(np.mean(psnrs)), ssim=float(np.mean(ssims)), n_slices=len(psnrs))
