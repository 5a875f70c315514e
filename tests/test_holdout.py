"""The adaptation's measurement split (``holdout``): ``MaskedOperator`` is ``M ⊙ A`` with its
exact adjoint, the data consistency fits only the kept entries, and the loss scores only the
held-out ones."""

from __future__ import annotations

import pytest
import torch

from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.masks import uniform1d_mask
from napari_ddip.physics.mri import MRIOperator
from napari_ddip.physics.operator import MaskedOperator, batch_dot
from napari_ddip.recon import ReconConfig
from napari_ddip.recon.problem import Problem


def _ops():
    g = torch.Generator().manual_seed(0)
    ct = ParallelBeamCT(24, 12)
    mri = MRIOperator(uniform1d_mask((24, 24), 2.0, seed=0))
    for op in (ct, mri):
        keep = torch.rand(op.measurement_shape, generator=g) < 0.7
        yield op, MaskedOperator(op, keep), keep


@pytest.mark.parametrize("index", [0, 1])
def test_the_masked_operator_is_the_mask_times_the_operator_with_its_adjoint(index) -> None:
    op, masked, keep = list(_ops())[index]
    g = torch.Generator().manual_seed(1)
    dtype = torch.complex64 if op.is_complex else torch.float32
    x = torch.randn(2, 24, 24, generator=g, dtype=dtype)
    y = torch.randn(2, *op.measurement_shape, generator=g, dtype=dtype)
    torch.testing.assert_close(masked.forward(x), op.forward(x) * keep)
    lhs = batch_dot(masked.forward(x), y).sum().double()
    rhs = batch_dot(x, masked.adjoint(y)).sum().double()
    assert abs(float(lhs - rhs)) <= 1e-5 * abs(float(lhs))
    assert masked.subset(slice(0, 1)).forward(x[:1]).shape == (1, *op.measurement_shape)


def test_the_split_fits_the_kept_entries_and_scores_the_held_out_ones() -> None:
    op = ParallelBeamCT(24, 12)
    g = torch.Generator().manual_seed(2)
    truth = torch.rand(2, 24, 24, generator=g)
    y = op.forward(truth)
    cfg = ReconConfig(method="d3ip", holdout=0.3).resolved("ct", "cpu")
    p = Problem(op, y, cfg)
    held = p.scored.keep
    assert p.fitted.keep.logical_xor(held).all()  # every entry on exactly one side
    assert 0.2 < float(held.float().mean()) < 0.4
    # the data consistency does not see the held-out entries ...
    spoiled = Problem(op, y + 5.0 * held, cfg)
    x0 = torch.zeros_like(truth)
    a = p.consistency(x0, slice(None), "cg", 1, fitted=True)
    b = spoiled.consistency(x0, slice(None), "cg", 1, fitted=True)
    torch.testing.assert_close(a * p.scale, b * spoiled.scale, rtol=1e-3, atol=1e-4)
    # ... and the loss sees nothing else: the truth scores 0, a change of the kept entries
    # does not count, one of the held-out entries does.
    t = truth / p.scale
    assert float(p.relative_loss(t, slice(None), scored=True)) < 1e-10
    off_kept = Problem(op, y + 5.0 * ~held, cfg)
    assert float(off_kept.relative_loss(truth / off_kept.scale, slice(None), scored=True)) < 1e-10
    assert float(spoiled.relative_loss(truth / spoiled.scale, slice(None), scored=True)) > 0.1
    with pytest.raises(ValueError, match="holdout"):
        ReconConfig(method="d3ip", holdout=0.7).resolved("ct", "cpu")


def test_on_mri_the_hard_consistency_leaves_the_papers_loss_nothing_to_score() -> None:
    # AᴴA is a projection: CG's x̃₀ fits the sampled k-space exactly whatever x̂₀ is, so
    # ‖A x̃₀ − y‖² is zero and carries no gradient; the held-out entries still score x̂₀.
    op = MRIOperator(uniform1d_mask((32, 32), accel=2, seed=0))
    g = torch.Generator().manual_seed(3)
    truth = torch.randn(2, 32, 32, generator=g, dtype=torch.complex64)
    x0 = torch.randn(2, 32, 32, generator=g, dtype=torch.complex64)
    cfg = ReconConfig(method="d3ip").resolved("mri", "cpu")
    assert cfg.gamma is None and cfg.holdout == 0.25
    p = Problem(op, op.forward(truth), cfg)
    whole = p.consistency(x0, slice(None), "cg", 1)
    assert float(p.relative_loss(whole, slice(None))) < 1e-10
    part = p.consistency(x0, slice(None), "cg", 1, fitted=True)
    assert float(p.relative_loss(part, slice(None), scored=True)) > 0.1
