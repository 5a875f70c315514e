"""Classical reconstructions: FBP / zero-filled, CG least squares, ADMM-TV (CT and MRI)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from napari_ddip.physics import (
    MRIOperator,
    ParallelBeamCT,
    add_complex_gaussian_noise,
    add_gaussian_noise,
    simulated_coil_maps,
    uniform1d_mask,
)
from napari_ddip.solvers import admm_tv, cg_least_squares

# Modified 3D Shepp-Logan: intensity, semi-axes (x, y, z), centre (x, y, z), rotation (deg).
_ELLIPSOIDS = [
    (1.0, 0.69, 0.92, 0.81, 0.0, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.78, 0.0, -0.0184, 0.0, 0.0),
    (-0.2, 0.11, 0.31, 0.22, 0.22, 0.0, 0.0, -18.0),
    (-0.2, 0.16, 0.41, 0.28, -0.22, 0.0, 0.0, 18.0),
    (0.1, 0.21, 0.25, 0.41, 0.0, 0.35, -0.15, 0.0),
    (0.1, 0.046, 0.046, 0.05, 0.0, 0.1, 0.25, 0.0),
    (0.1, 0.046, 0.046, 0.05, 0.0, -0.1, 0.25, 0.0),
    (0.1, 0.046, 0.023, 0.05, -0.08, -0.605, 0.0, 0.0),
    (0.1, 0.023, 0.023, 0.02, 0.0, -0.606, 0.0, 0.0),
    (0.1, 0.023, 0.046, 0.02, 0.06, -0.605, 0.0, 0.0),
]


def shepp_logan_3d(shape: tuple[int, int, int], z_extent: float = 0.5) -> np.ndarray:
    """``(Z, Y, X)`` float32 in [0, 1]: the central slab ``|z| ≤ z_extent`` of the phantom."""
    nz, ny, nx = shape
    z, y, x = np.meshgrid(
        np.linspace(-z_extent, z_extent, nz),
        np.linspace(1, -1, ny),
        np.linspace(-1, 1, nx),
        indexing="ij",
    )
    volume = np.zeros(shape)
    for value, ax, by, cz, x0, y0, z0, phi in _ELLIPSOIDS:
        c, s = np.cos(np.deg2rad(phi)), np.sin(np.deg2rad(phi))
        u = (x - x0) * c + (y - y0) * s
        v = -(x - x0) * s + (y - y0) * c
        volume += value * ((u / ax) ** 2 + (v / by) ** 2 + ((z - z0) / cz) ** 2 <= 1)
    return volume.astype(np.float32)


def psnr(x: np.ndarray, reference: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB over the whole volume, peak = max |reference|."""
    mse = np.mean(np.abs(x - reference) ** 2)
    return float(10 * np.log10(np.abs(reference).max() ** 2 / mse))


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Iterative solvers run thousands of small ops: on the shared 2-core runners (with a
    training job beside the tests) two OpenMP threads stall at every barrier, up to 100×
    slower. One thread keeps these tests fast; the previous setting is restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_each_modality_names_its_pseudo_inverse() -> None:
    ct = ParallelBeamCT(32, 20)
    y = ct.forward(torch.rand(2, 32, 32))
    torch.testing.assert_close(ct.pinv(y), ct.fbp(y))
    assert not hasattr(ct, "zero_filled")
    mri = MRIOperator(np.ones((16, 16), np.float32), simulated_coil_maps(2, (16, 16)))
    k = mri.forward(torch.rand(2, 16, 16, dtype=torch.complex64))
    torch.testing.assert_close(mri.pinv(k), mri.zero_filled(k))
    assert not hasattr(mri, "fbp")


def test_operator_norm_matches_largest_eigenvalue() -> None:
    mask = np.zeros((16, 16), dtype=np.float32)
    mask[::2] = 1
    op = MRIOperator(mask * 0.5)  # AᴴA = F⁻¹ M² F: largest eigenvalue 0.25
    assert abs(op.norm(torch.zeros(2, 16, 16, dtype=torch.complex64)) - 0.25) < 1e-4


def test_cg_least_squares_inverts_well_posed_problems() -> None:
    volume = torch.from_numpy(shepp_logan_3d((2, 48, 48)))
    op = ParallelBeamCT(48, 90)
    x = cg_least_squares(op, op.forward(volume), n_iter=60)
    assert psnr(x.numpy(), volume.numpy()) > 35
    assert psnr(x.numpy(), volume.numpy()) > psnr(
        op.fbp(op.forward(volume)).numpy(), volume.numpy()
    )
    damped = cg_least_squares(op, op.forward(volume), n_iter=60, damping=1e9)
    assert float(damped.abs().max()) < 0.01


def test_admm_tv_beats_fbp_on_sparse_view_ct_without_tuning() -> None:
    volume = shepp_logan_3d((8, 96, 96))
    op = ParallelBeamCT(96, 60)
    y = add_gaussian_noise(op.forward(torch.from_numpy(volume)), 0.01, seed=0)
    calls: list[int] = []
    x = admm_tv(op, y, callback=lambda i, n, x: calls.append(i))
    assert calls == list(range(1, 31))
    gain = psnr(x.numpy(), volume) - psnr(op.fbp(y).numpy(), volume)
    assert gain > 5.0, gain


def test_admm_tv_beats_zero_filled_on_undersampled_mri() -> None:
    magnitude = torch.from_numpy(shepp_logan_3d((4, 64, 64)))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    truth = magnitude * torch.exp(1j * (0.4 * xx + 0.3 * yy))
    op = MRIOperator(uniform1d_mask((64, 64), 3.0, seed=0))
    y = add_complex_gaussian_noise(op.forward(truth), 0.01, seed=0)
    x = admm_tv(op, y)
    assert x.is_complex()
    gain = psnr(x.numpy(), truth.numpy()) - psnr(op.zero_filled(y).numpy(), truth.numpy())
    assert gain > 3.0, gain


@pytest.mark.parametrize("axes", [(0,), (1, 2)])
def test_admm_tv_callback_stops_and_axes(axes: tuple[int, ...]) -> None:
    op = ParallelBeamCT(32, 20)
    y = op.forward(torch.from_numpy(shepp_logan_3d((3, 32, 32))))
    seen: list[tuple[int, int]] = []

    def stop_after_two(iteration: int, n_iter: int, x: torch.Tensor) -> bool:
        seen.append((iteration, n_iter))
        return iteration < 2

    x = admm_tv(op, y, n_iter=10, axes=axes, callback=stop_after_two)
    assert seen == [(1, 10), (2, 10)] and x.shape == (3, 32, 32)


def test_admm_anchor_solves_the_proximal_problem() -> None:
    """Without TV (``lam = 0``) ADMM solves ``(P + μ) x = Aᴴy + μ x0`` with ``P = AᴴA`` the
    projector onto the sampled frequencies (0/1 mask, ‖A‖² = 1): the sampled frequencies of
    ``x`` are ``(y + μ A x0) / (1 + μ)`` and the others are those of ``x0``."""
    generator = torch.Generator().manual_seed(0)
    shape = (2, 24, 24)
    truth, x0 = (torch.randn(shape, dtype=torch.complex64, generator=generator) for _ in "ab")
    op = MRIOperator(uniform1d_mask((24, 24), 3.0, seed=0))
    y, anchor = op.forward(truth), 0.5
    x = admm_tv(op, y, lam=0.0, n_iter=10, n_cg=10, x0=x0, norm=1.0, anchor=anchor)
    sampled = (y + anchor * op.forward(x0)) / (1 + anchor)
    torch.testing.assert_close(op.forward(x), sampled, atol=1e-4, rtol=1e-4)
    unsampled = x - op.adjoint(op.forward(x))
    torch.testing.assert_close(unsampled, x0 - op.adjoint(op.forward(x0)), atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="anchor"):
        admm_tv(op, y, anchor=0.5)
