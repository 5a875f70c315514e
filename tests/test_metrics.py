"""PSNR/SSIM per slice with the reference's data range, averaged over slices."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ddip.metrics import score


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
