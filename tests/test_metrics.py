"""PSNR/SSIM per slice with the reference's data range, averaged over slices."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ddip.metrics import BAND_EDGES, band_errors, score


def _reference() -> np.ndarray:
    """Three 16×16 slices with data range exactly 1 and one constant slice."""
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 1, (4, 16, 16)).astype(np.float32)
    ref[:, 0, 0], ref[:, 0, 1] = 0.0, 1.0
    ref[3] = 0.5
    return ref


def test_psnr_uses_reference_range_per_slice() -> None:
    ref = _reference()
    scores = score(ref + 0.1, ref)  # MSE 0.01, data range 1 -> 20 dB
    assert scores.psnr == pytest.approx(20.0, abs=1e-4)
    assert scores.n_slices == 3  # the constant slice has no data range


def test_psnr_scales_with_reference_range() -> None:
    ref = _reference()[:3] * 4.0  # range 4, error 0.4 -> still 20 dB
    assert score(ref + 0.4, ref).psnr == pytest.approx(20.0, abs=1e-4)


def test_ssim_is_one_for_identical_and_lower_for_noisy() -> None:
    ref = _reference()
    noisy = ref + np.random.default_rng(1).normal(0, 0.2, ref.shape).astype(np.float32)
    assert score(ref.copy(), ref).ssim == pytest.approx(1.0)
    assert 0.0 < score(noisy, ref).ssim < 0.9


def test_score_rejects_bad_shapes_and_constant_reference() -> None:
    ref = _reference()
    with pytest.raises(ValueError, match="shapes differ"):
        score(ref[:2], ref)
    with pytest.raises(ValueError, match="constant"):
        score(ref[3:], ref[3:])


def test_scores_as_dict_is_json_ready() -> None:
    ref = _reference()
    assert set(score(ref + 0.1, ref).as_dict()) == {"psnr", "ssim", "n_slices"}


def test_band_errors_sum_to_the_mean_squared_error() -> None:
    """Parseval: the rings split the MSE without loss, and the reference's power likewise."""
    rng = np.random.default_rng(2)
    ref = rng.uniform(0, 1, (3, 24, 20))
    recon = ref + rng.normal(0, 0.1, ref.shape)
    bands = band_errors(recon, ref)
    assert bands.edges == BAND_EDGES
    assert sum(bands.error) == pytest.approx(np.mean((recon - ref) ** 2), rel=1e-10)
    assert sum(bands.reference) == pytest.approx(np.mean(ref**2), rel=1e-10)


def test_band_errors_put_a_cosine_in_its_ring() -> None:
    """An error a·cos(2π·0.25·x) has power a²/2, all at |f| = 0.25 (the ring from 0.2)."""
    ref = np.random.default_rng(3).uniform(0, 1, (2, 32, 32))
    x = np.arange(32)
    recon = ref + 0.3 * np.cos(2 * np.pi * 0.25 * x)[None, None, :]
    error = band_errors(recon, ref).error
    assert error[2] == pytest.approx(0.3**2 / 2, rel=1e-10)
    assert sum(error) - error[2] == pytest.approx(0.0, abs=1e-20)


def test_band_gain_is_the_share_of_the_reference_kept() -> None:
    ref = np.random.default_rng(4).uniform(0, 1, (2, 16, 16))
    assert band_errors(0.5 * ref, ref).gain == pytest.approx((0.5,) * len(BAND_EDGES))
    noise = np.random.default_rng(5).normal(0, 0.05, ref.shape)
    kept = band_errors(ref + noise, ref)
    assert kept.gain == pytest.approx((1.0,) * len(BAND_EDGES), abs=0.05)  # noise adds no gain
    assert sum(kept.error) == pytest.approx(0.05**2, rel=0.2)


def test_band_errors_refuse_bad_edges_and_shapes() -> None:
    ref = np.zeros((1, 8, 8))
    with pytest.raises(ValueError, match="start at 0"):
        band_errors(ref, ref, edges=(0.1, 0.2))
    with pytest.raises(ValueError, match="increase"):
        band_errors(ref, ref, edges=(0.0, 0.3, 0.2))
    with pytest.raises(ValueError, match="shapes differ"):
        band_errors(ref[:, :4], ref)
