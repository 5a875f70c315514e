"""Batched conjugate gradients and the TV finite differences / shrinkage."""

from __future__ import annotations

import pytest
import torch

from napari_ddip.physics.masks import uniform1d_mask
from napari_ddip.physics.mri import MRIOperator
from napari_ddip.solvers import conjugate_gradient, grad, grad_adjoint, shrink


def _spd_batch(z: int, n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    """``(Z, n, n)`` Hermitian positive definite, slices with very different spectra."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(z, n, n, generator=g, dtype=torch.float64).to(dtype)
    if dtype.is_complex:
        m = m + 1j * torch.randn(z, n, n, generator=g, dtype=torch.float64)
    scale = torch.logspace(-1, 2, z, dtype=torch.float64).reshape(z, 1, 1)
    return (m @ m.mH / n + 0.5 * torch.eye(n, dtype=dtype)) * scale


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_cg_matches_direct_solve_per_slice(dtype: torch.dtype) -> None:
    z, n = 4, 12
    h = _spd_batch(z, n, dtype)
    rhs = torch.randn(z, n, dtype=dtype, generator=torch.Generator().manual_seed(1))
    # Images (Z, 3, 4) flattened to vectors of 12: inner products reduce over both axes.
    rhs_img = rhs.reshape(z, 3, 4)

    def apply(x: torch.Tensor) -> torch.Tensor:
        return (h @ x.reshape(z, n, 1)).reshape(z, 3, 4)

    expected = torch.linalg.solve(h, rhs).reshape(z, 3, 4)
    x = conjugate_gradient(apply, rhs_img, n_iter=3 * n)
    torch.testing.assert_close(x, expected, rtol=1e-8, atol=1e-8)
    # Warm start from the answer stays there; few iterations already reduce the residual.
    x_warm = conjugate_gradient(apply, rhs_img, x0=expected, n_iter=2)
    torch.testing.assert_close(x_warm, expected, rtol=1e-8, atol=1e-8)
    few = conjugate_gradient(apply, rhs_img, n_iter=4)
    per_slice = (apply(few) - rhs_img).abs().flatten(1).norm(dim=1) / rhs_img.flatten(1).norm(dim=1)
    assert (per_slice < 0.5).all()


def test_cg_tolerance_stops_early_and_zero_slices_stay_finite() -> None:
    z, n = 3, 10
    h = _spd_batch(z, n, torch.float64)
    rhs = torch.randn(z, n, dtype=torch.float64)
    rhs[1] = 0
    calls = []

    def apply(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return (h @ x.unsqueeze(-1)).squeeze(-1)

    x = conjugate_gradient(apply, rhs, n_iter=200, tol=1e-6)
    assert len(calls) < 60
    assert torch.isfinite(x).all() and torch.equal(x[1], torch.zeros(n, dtype=torch.float64))
    torch.testing.assert_close(x, torch.linalg.solve(h, rhs), rtol=1e-5, atol=1e-5)


def test_cg_from_a_start_that_already_solves_a_projection_stays_there() -> None:
    # AᴴA of single-coil Cartesian MRI is a projection: from a consistent start the residual
    # is rounding noise of Aᴴy, and a step along it must not blow up (the last, hard data
    # consistency of a noise-free MRI run).
    op = MRIOperator(uniform1d_mask((32, 32), accel=4, seed=0))
    g = torch.Generator().manual_seed(0)
    x_true = torch.randn(8, 32, 32, generator=g, dtype=torch.complex64)
    rhs = op.adjoint(op.forward(x_true))
    x0 = x_true + op.normal(x_true) - op.normal(op.normal(x_true))  # consistent, rounded
    x = conjugate_gradient(op.normal, rhs, x0=x0, n_iter=5)
    torch.testing.assert_close(x, x0, rtol=1e-4, atol=1e-4)


def test_cg_is_differentiable() -> None:
    z, n = 2, 5
    h = _spd_batch(z, n, torch.float64)

    def solve(rhs: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        def apply(x: torch.Tensor) -> torch.Tensor:
            return (h @ x.unsqueeze(-1)).squeeze(-1) + weight * x

        return conjugate_gradient(apply, rhs, n_iter=3)

    rhs = torch.randn(z, n, dtype=torch.float64, requires_grad=True)
    weight = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(solve, (rhs, weight))
    # Converged CG differentiates like the inverse: d<v, H⁻¹b>/db = H⁻¹v (H symmetric).
    v = torch.randn(z, n, dtype=torch.float64)
    x = conjugate_gradient(lambda x: (h @ x.unsqueeze(-1)).squeeze(-1), rhs, n_iter=4 * n)
    (g,) = torch.autograd.grad((x * v).sum(), rhs)
    torch.testing.assert_close(g, torch.linalg.solve(h, v), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("axes", [(0, 1, 2), (0,), (1, 2), (2,)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_grad_adjoint_is_exact(axes: tuple[int, ...], dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, 6, generator=g, dtype=dtype)
    v = torch.randn(len(axes), 5, 7, 6, generator=g, dtype=dtype)
    lhs = torch.vdot(grad(x, axes).flatten().cdouble(), v.flatten().cdouble())
    rhs = torch.vdot(x.flatten().cdouble(), grad_adjoint(v, axes).flatten().cdouble())
    assert float(abs(lhs - rhs) / abs(lhs)) < 1e-6


def test_grad_values_and_single_slice() -> None:
    z, y, x = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), torch.arange(5.0), indexing="ij")
    volume = 2 * z + 3 * y - x
    d = grad(volume)
    assert d.shape == (3, 3, 4, 5)
    for axis, (component, value) in enumerate(zip(d, (2.0, 3.0, -1.0), strict=True)):
        n = volume.shape[axis]
        assert torch.all(component.narrow(axis, 0, n - 1) == value)
        assert torch.all(component.narrow(axis, n - 1, 1) == 0)
    assert torch.equal(grad(torch.ones(4, 4, 4)), torch.zeros(3, 4, 4, 4))
    one_slice = torch.randn(1, 4, 4)
    assert torch.equal(grad(one_slice, (0,)), torch.zeros(1, 1, 4, 4))
    assert torch.equal(grad_adjoint(grad(one_slice, (0,)), (0,)), torch.zeros(1, 4, 4))


def test_shrink_is_isotropic_soft_thresholding() -> None:
    v = torch.tensor([[3.0, 0.0, 0.1], [4.0, 0.0, 0.0]])  # voxel norms 5, 0, 0.1
    out = shrink(v, 1.0)
    torch.testing.assert_close(out, torch.tensor([[2.4, 0.0, 0.0], [3.2, 0.0, 0.0]]))
    c = torch.tensor([[3.0 + 4.0j]])
    torch.testing.assert_close(shrink(c, 2.0), c * 0.6)
    leaf = torch.zeros(2, 3, requires_grad=True)
    shrink(leaf, 0.5).sum().backward()
    assert torch.isfinite(leaf.grad).all()
