"""Image-quality metrics of a reconstructed volume against a reference.

Both metrics are computed per ``z`` slice on ``(Z, Y, X)`` volumes and averaged over slices.
The data range of each slice is that of the reference slice (max − min), as is usual for CT
and MRI phantoms with a zero background; slices where the reference is constant have no data
range and are left out of the average.

:func:`band_errors` splits the mean squared error over rings of in-plane spatial frequency
(Parseval), to tell which scales a reconstruction gets wrong.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

SSIM_WINDOW = 7  # scikit-image's default window side
#: Ring edges of :func:`band_errors` in cycles per pixel (the last ring reaches the corner of
#: the spectrum, √2/2).
BAND_EDGES = (0.0, 0.1, 0.2, 0.3, 0.4)


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


@dataclass(frozen=True)
class SliceScores:
    """Scores of every ``z`` slice.

    Attributes:
        psnr: float64 ``(Z,)`` PSNR in dB; NaN where the reference slice is constant.
        ssim: float64 ``(Z,)`` SSIM in [-1, 1]; NaN where the reference slice is constant.
    """

    psnr: np.ndarray
    ssim: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """bool ``(Z,)``: slices with a non-constant reference (the ones that are scored)."""
        return ~np.isnan(self.ssim)

    def mean(self) -> Scores:
        """The volume scores: means over the valid slices. Raises ValueError if there is none."""
        valid = self.valid
        if not valid.any():
            raise ValueError("the reference is constant in every slice: PSNR/SSIM are undefined")
        return Scores(
            psnr=float(np.mean(self.psnr[valid])),
            ssim=float(np.mean(self.ssim[valid])),
            n_slices=int(valid.sum()),
        )


def _check_volumes(recon: np.ndarray, reference: np.ndarray) -> None:
    """Raise ValueError unless ``recon`` and ``reference`` are ``(Z, Y, X)`` of one shape."""
    if recon.shape != reference.shape:
        raise ValueError(f"shapes differ: recon {recon.shape} vs reference {reference.shape}")
    if reference.ndim != 3:
        raise ValueError(f"expected (Z, Y, X) volumes, got shape {reference.shape}")


def slice_scores(recon: np.ndarray, reference: np.ndarray) -> SliceScores:
    """PSNR and SSIM of every slice of ``recon`` vs ``reference`` (real ``(Z, Y, X)``).

    Each slice's data range is that of its reference slice. Slices need at least 7×7 pixels
    (the SSIM window). Raises ValueError for mismatched shapes or a volume that is not 3D.
    """
    _check_volumes(recon, reference)
    if min(reference.shape[1:]) < SSIM_WINDOW:
        raise ValueError(
            f"slices of {reference.shape[1]}×{reference.shape[2]} pixels: SSIM needs at least "
            f"{SSIM_WINDOW}×{SSIM_WINDOW}"
        )
    psnr = np.full(reference.shape[0], np.nan)
    ssim = np.full(reference.shape[0], np.nan)
    for z, (rec, ref) in enumerate(
        zip(recon.astype(np.float64), reference.astype(np.float64), strict=True)
    ):
        data_range = float(ref.max() - ref.min())
        if data_range > 0:
            with np.errstate(divide="ignore"):  # a perfect slice has PSNR = inf
                psnr[z] = peak_signal_noise_ratio(ref, rec, data_range=data_range)
            ssim[z] = structural_similarity(ref, rec, win_size=SSIM_WINDOW, data_range=data_range)
    return SliceScores(psnr=psnr, ssim=ssim)


def score(recon: np.ndarray, reference: np.ndarray) -> Scores:
    """PSNR and SSIM of ``recon`` vs ``reference`` (real ``(Z, Y, X)``, same shape), averaged
    over the slices :func:`slice_scores` scores.

    Raises ValueError for mismatched shapes or when every reference slice is constant.
    """
    return slice_scores(recon, reference).mean()


@dataclass(frozen=True)
class BandErrors:
    """The error of a volume split over rings of in-plane spatial frequency.

    Ring ``k`` holds the frequencies ``edges[k] ≤ |f| < edges[k + 1]`` (cycles per pixel, the
    last ring open above). Powers are per voxel, in the squared unit of the volume, so that
    ``error`` sums over the rings to the mean squared error (Parseval).

    Attributes:
        edges: ``(B,)`` lower ring edges in cycles per pixel.
        reference: ``(B,)`` the reference's power in each ring.
        error: ``(B,)`` the error's power ``|X − R|²`` in each ring.
        gain: ``(B,)`` the share of the reference the reconstruction carries,
            ``Re⟨X, R⟩ / ⟨R, R⟩`` (1: the ring is reproduced in full, 0: not at all).
    """

    edges: tuple[float, ...]
    reference: tuple[float, ...]
    error: tuple[float, ...]
    gain: tuple[float, ...]

    def as_dict(self) -> dict[str, tuple[float, ...]]:
        """The rings as a JSON-ready dict."""
        return asdict(self)


def band_errors(
    recon: np.ndarray, reference: np.ndarray, edges: tuple[float, ...] = BAND_EDGES
) -> BandErrors:
    """The error of ``recon`` against ``reference`` (real ``(Z, Y, X)``, same shape) in rings
    of the slices' 2D spatial frequency ``|f| = √(f_y² + f_x²)`` with lower edges ``edges``
    (increasing, the first 0). Raises ValueError for mismatched shapes, a volume that is not
    3D or edges that do not start at 0 and increase.
    """
    _check_volumes(recon, reference)
    if edges[0] != 0 or any(b <= a for a, b in pairwise(edges)):
        raise ValueError(f"ring edges must start at 0 and increase, got {edges}")
    spectrum_x = np.fft.fft2(recon.astype(np.float64))
    spectrum_r = np.fft.fft2(reference.astype(np.float64))
    fy = np.fft.fftfreq(reference.shape[1])[:, None]
    fx = np.fft.fftfreq(reference.shape[2])[None, :]
    ring = np.searchsorted(np.asarray(edges), np.hypot(fy, fx), side="right") - 1
    scale = reference.size * reference.shape[1] * reference.shape[2]  # Parseval, per voxel
    power_r, power_e, gain = [], [], []
    for k in range(len(edges)):
        in_ring = ring == k
        r, x = spectrum_r[:, in_ring], spectrum_x[:, in_ring]
        energy = float(np.sum(np.abs(r) ** 2))
        power_r.append(energy / scale)
        power_e.append(float(np.sum(np.abs(x - r) ** 2)) / scale)
        gain.append(float(np.real(np.vdot(r, x))) / energy if energy > 0 else float("nan"))
    return BandErrors(tuple(edges), tuple(power_r), tuple(power_e), tuple(gain))
