"""Parallel-beam CT operator: exact adjoint, line-integral scale, FBP known answer, noise."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from skimage.data import shepp_logan_phantom
from skimage.transform import resize

from napari_ddip.physics import ParallelBeamCT, add_gaussian_noise, add_poisson_noise


def _relative_dot_error(op: ParallelBeamCT, z: int = 3, seed: int = 0) -> float:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(z, *op.image_shape, generator=g).to(op.device)
    y = torch.randn(z, *op.measurement_shape, generator=g).to(op.device)
    lhs = (op.forward(x).double() * y.double()).sum()
    rhs = (x.double() * op.adjoint(y).double()).sum()
    return float(abs(lhs - rhs) / abs(lhs))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"image_size": 48, "n_views": 30},
        {"image_size": 33, "n_views": 17, "det_spacing": 0.7, "n_det": 71},
        {"image_size": 40, "angles_deg": [0.0, 10.0, 45.0, 90.0, 91.5, 135.0, 179.0, 250.0]},
        {"image_size": 32, "n_views": 20, "angular_range": 120.0},
    ],
)
def test_adjoint_is_exact(kwargs: dict) -> None:
    assert _relative_dot_error(ParallelBeamCT(**kwargs)) < 1e-5


def test_autograd_uses_the_exact_adjoint_to_second_order() -> None:
    op = ParallelBeamCT(24, 12)
    x = torch.randn(2, 24, 24, requires_grad=True)
    y = torch.randn(2, *op.measurement_shape)
    (g,) = torch.autograd.grad((op.forward(x) * y).sum(), x, create_graph=True)
    torch.testing.assert_close(g, op.adjoint(y))
    # d/dx of <Aᵀ A x, v> is Aᵀ A v: back-propagation through the backward pass.
    v = torch.randn(2, 24, 24)
    (h,) = torch.autograd.grad((op.adjoint(op.forward(x)) * v).sum(), x)
    torch.testing.assert_close(h, op.normal(v), rtol=1e-4, atol=1e-4)


def test_forward_gives_line_integrals_in_pixel_units() -> None:
    n, radius = 96, 30.0
    c = (n - 1) / 2
    yy, xx = np.mgrid[:n, :n]
    disc = ((yy - c) ** 2 + (xx - c) ** 2 <= radius**2).astype(np.float32)
    op = ParallelBeamCT(n, angles_deg=[0.0, 30.0, 45.0, 90.0, 133.0])
    sino = op.forward(torch.from_numpy(disc)[None])[0].numpy()
    t = np.arange(op.n_det) - (op.n_det - 1) / 2
    chord = 2 * np.sqrt(np.clip(radius**2 - t**2, 0, None))
    # Pixelated disc vs exact chord: central rays agree to ~1 pixel of path length.
    central = np.abs(t) < 0.8 * radius
    assert np.abs(sino[:, central] - chord[central]).max() < 1.5
    # Total mass per view is exactly the image sum (each pixel spreads weight 1/det_spacing).
    np.testing.assert_allclose(sino.sum(axis=1), disc.sum(), rtol=1e-3)


@pytest.mark.parametrize(("fbp_filter", "tolerance"), [("ramp", 0.02), ("hann", 0.035)])
def test_fbp_reproduces_phantom_intensities(fbp_filter: str, tolerance: float) -> None:
    n = 128
    phantom = resize(shepp_logan_phantom(), (n, n), anti_aliasing=True).astype(np.float32)
    op = ParallelBeamCT(n, 180, fbp_filter=fbp_filter)
    recon = op.pinv(op.forward(torch.from_numpy(phantom)[None]))[0].numpy()
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    interior = yy**2 + xx**2 < (0.4 * n) ** 2
    assert np.abs(recon - phantom)[interior].mean() < tolerance
    assert abs(recon.mean() / phantom.mean() - 1) < 0.02
    # The large uniform region keeps its value (no global scale error).
    region = (np.abs(yy + 0.1 * n) < 4) & (np.abs(xx) < 4)
    assert abs(recon[region].mean() - phantom[region].mean()) < 0.02


def test_fbp_scale_does_not_depend_on_detector_spacing() -> None:
    n = 64
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    disc = torch.from_numpy((yy**2 + xx**2 <= 20**2).astype(np.float32))[None]
    for spacing in (0.5, 1.0, 1.5):
        op = ParallelBeamCT(n, 120, det_spacing=spacing, n_det=math.ceil(1.5 * n / spacing))
        recon = op.pinv(op.forward(disc))[0]
        assert abs(float(recon[n // 2 - 8 : n // 2 + 8, n // 2 - 8 : n // 2 + 8].mean()) - 1) < 0.03


def test_geometry_round_trip_and_defaults() -> None:
    op = ParallelBeamCT(64, 10, fbp_filter="hann", det_spacing=1.25)
    geometry = json.loads(json.dumps(op.geometry()))
    assert geometry["kind"] == "ct"
    assert geometry["n_det"] == math.ceil(math.sqrt(2) * 64) == 91
    np.testing.assert_allclose(geometry["angles_deg"], np.arange(10) * 18.0)
    clone = ParallelBeamCT.from_geometry(geometry)
    assert clone.geometry() == op.geometry()
    x = torch.rand(1, 64, 64)
    torch.testing.assert_close(clone.forward(x), op.forward(x))
    limited = ParallelBeamCT(64, 30, angular_range=90.0)
    assert max(limited.angles_deg) < 90.0 and len(limited.angles_deg) == 30
    with pytest.raises(ValueError, match="missing"):
        ParallelBeamCT.from_geometry({"kind": "ct", "image_size": 64})
    with pytest.raises(ValueError, match="fbp_filter"):
        ParallelBeamCT(64, 10, fbp_filter="shepp")


def test_gaussian_noise_level_and_seed() -> None:
    y = torch.rand(4, 50, 60) + 1.0
    noisy = add_gaussian_noise(y, 0.01, seed=3)
    sigma = 0.01 * float(y.abs().mean())
    assert abs(float((noisy - y).std()) / sigma - 1) < 0.05
    torch.testing.assert_close(noisy, add_gaussian_noise(y, 0.01, seed=3))
    assert not torch.equal(noisy, add_gaussian_noise(y, 0.01, seed=4))


def test_poisson_noise_is_unbiased_at_high_dose_and_finite_at_zero_counts() -> None:
    sino = torch.full((2, 40, 50), 30.0)
    high = add_poisson_noise(sino, photons=1e6, seed=0)
    assert abs(float(high.mean()) - 30.0) < 0.05
    low = add_poisson_noise(sino, photons=1e3, seed=0)
    assert float((low - sino).std()) > 5 * float((high - sino).std())
    torch.testing.assert_close(low, add_poisson_noise(sino, photons=1e3, seed=0))
    opaque = add_poisson_noise(torch.full((1, 4, 4), 1e4), photons=10.0, seed=0)
    assert torch.isfinite(opaque).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    op = ParallelBeamCT(48, 30)
    gpu = op.to("cuda")
    x = torch.rand(2, 48, 48)
    torch.testing.assert_close(gpu.forward(x.cuda()).cpu(), op.forward(x), rtol=1e-4, atol=1e-4)
    y = op.forward(x)
    torch.testing.assert_close(gpu.pinv(y.cuda()).cpu(), op.pinv(y), rtol=1e-4, atol=1e-4)
    assert _relative_dot_error(gpu) < 1e-5
