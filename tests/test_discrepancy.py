"""The adaptation's discrepancy stop (``discrepancy``, Morozov's principle): the noise's share of
the measurement is what the loss of the true image comes to, and a LoRA stops adapting at the
first step whose loss is down to it, with its work taken out of the progress count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ddip.cli import main
from napari_ddip.io import Measurement, save_measurement
from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.masks import uniform1d_mask
from napari_ddip.physics.mri import MRIOperator
from napari_ddip.physics.noise import add_complex_gaussian_noise, add_gaussian_noise
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.prior.weights import save_prior
from napari_ddip.recon import Adapted, Progress, ReconConfig, Started, reconstruct
from napari_ddip.recon.problem import Problem
from tiny import tiny_prior

pytestmark = pytest.mark.usefixtures("one_thread")


def _measured(modality: str, noise: float) -> tuple[torch.Tensor, object, torch.Tensor, float]:
    """A 4-slice ellipsoid phantom measured with relative noise ``noise``: ``(y, op, truth,
    σ)``, σ the noise's standard deviation in the measurement's units."""
    truth = torch.from_numpy(ellipsoid_volume((4, 48, 48), seed=2))
    if modality == "ct":
        op = ParallelBeamCT(48, n_views=30)
        clean = op.forward(truth)
        y = add_gaussian_noise(clean, noise, seed=3)
        return y, op, truth, noise * float(clean.abs().mean())
    op = MRIOperator(uniform1d_mask((48, 48), accel=2, seed=0))
    clean = op.forward(truth.to(torch.complex64))
    y = add_complex_gaussian_noise(clean, noise, seed=3)
    return y, op, truth.to(torch.complex64), noise * float(clean.abs()[clean != 0].mean())


@pytest.mark.parametrize("modality", ["ct", "mri"])
def test_the_noise_share_is_the_loss_of_the_true_image(modality) -> None:
    y, op, truth, sigma = _measured(modality, 0.05)
    cfg = ReconConfig(method="d3ip", noise_std=sigma, holdout=0.0).resolved(modality, "cpu")
    p = Problem(op, y, cfg)
    loss = float(p.relative_loss(truth / p.scale, slice(None)))
    share = p.noise_share(slice(None))
    # ‖n‖² over m entries is σ²·χ²_m/m in expectation m·σ²: within a few % for m in the
    # thousands.
    assert share == pytest.approx(loss, rel=0.08)
    part = float(p.relative_loss(truth[:2] / p.scale, slice(0, 2)))  # and over a part
    assert p.noise_share(slice(0, 2)) == pytest.approx(part, rel=0.1)


def test_the_noise_share_needs_a_known_noise() -> None:
    # k-space without noise_std: its estimate cannot tell noise from fine detail
    y, op, _, _ = _measured("mri", 0.05)
    kspace = Problem(op, y, ReconConfig(method="d3ip").resolved("mri", "cpu"))
    assert kspace.noise_share(slice(None)) is None
    y, op, _, sigma = _measured("ct", 0.05)
    estimated = Problem(op, y, ReconConfig(method="d3ip").resolved("ct", "cpu"))
    given = Problem(op, y, ReconConfig(method="d3ip", noise_std=sigma).resolved("ct", "cpu"))
    # the sinogram's estimate reads some signal as noise, never less than the noise
    assert 1.0 <= estimated.noise_share(slice(None)) / given.noise_share(slice(None)) < 4.0


FAST = {"nfe": 4, "adapt_steps": 3, "k_slices": 2, "t_min": 0, "preview_every": 0}


def _run(modality: str, **settings) -> tuple[list[Adapted], list[Progress], int]:
    y, op, _, sigma = _measured(modality, 0.05)
    cfg = ReconConfig(method="d3ip", noise_std=sigma, **(FAST | settings))
    events = list(reconstruct(y, op, cfg, prior=tiny_prior()))
    started = next(e for e in events if isinstance(e, Started))
    adapted = [e for e in events if isinstance(e, Adapted)]
    return adapted, [e for e in events if isinstance(e, Progress)], started.total


@pytest.mark.parametrize("modality", ["ct", "mri"])
def test_a_loss_down_to_the_noise_ends_the_adaptation(modality) -> None:
    # τ 0: every step of the horizon adapts L times, as the paper.
    adapted, progress, total = _run(modality, discrepancy=0.0)
    assert [len(e.losses) for e in adapted] == [3] * 4 and progress[-1].step == total
    assert not any(e.ended for e in adapted)
    # τ so large that an early loss is below it (the tiny random prior's first x̂₀ is far
    # off): no adaptation after it, and the progress count loses that work (it still ends at
    # its total).
    adapted, progress, total = _run(modality, discrepancy=1e12)
    assert len(adapted) == 1 and adapted[0].ended
    assert progress[-1].step == progress[-1].total < total
    assert [p.step for p in progress] == list(range(1, progress[-1].total + 1))


def test_the_stop_leaves_the_adaptation_before_it_unchanged() -> None:
    # K = all four slices, so every step's loss compares with the same share. A τ that the
    # losses reach part-way: the steps before the stop are those of τ 0.
    full, _, _ = _run("ct", discrepancy=0.0, k_slices=4)
    losses = np.array([v for e in full for v in e.losses])
    y, op, _, sigma = _measured("ct", 0.05)
    problem = Problem(op, y, ReconConfig(method="d3ip", noise_std=sigma).resolved("ct", "cpu"))
    tau = float(np.sort(losses)[len(losses) // 2]) / problem.noise_share(slice(None))
    cut, _, _ = _run("ct", discrepancy=tau, k_slices=4)
    values = [v for e in cut for v in e.losses]
    first_below = int(np.argmax(losses <= np.sort(losses)[len(losses) // 2]))
    assert len(values) == first_below + 1 < len(losses)
    np.testing.assert_allclose(values, losses[: first_below + 1], rtol=1e-5)


def test_the_estimate_is_an_upper_bound_where_the_adaptation_may_stop() -> None:
    def started(modality: str, method: str, **settings) -> Started:
        y, op, _, _ = _measured(modality, 0.05)
        cfg = ReconConfig(method=method, nfe=2, preview_every=0, **settings)
        return next(reconstruct(y, op, cfg, prior=tiny_prior()))

    assert started("ct", "d3ip").upper_bound  # the sinogram's noise is estimated
    y, op, _, _ = _measured("ct", 0.0)  # noise-free: the estimate is 0, nothing to stop at
    cfg = ReconConfig(method="d3ip", nfe=2, preview_every=0)
    assert not next(reconstruct(y, op, cfg, prior=tiny_prior())).upper_bound
    assert not started("ct", "d3ip", discrepancy=0.0).upper_bound
    assert not started("ct", "dds").upper_bound  # nothing adapts
    assert not started("mri", "d3ip").upper_bound  # k-space: the noise is not known
    assert started("mri", "d3ip", noise_std=0.1).upper_bound


def test_the_command_line_says_where_the_adaptation_ended(tmp_path, capsys) -> None:
    y, op, _, _ = _measured("ct", 0.05)
    save_measurement(tmp_path / "ct.npz", Measurement("ct", y.numpy(), op.geometry()))
    prior = save_prior(tiny_prior(), tmp_path / "tiny")
    argv = ["reconstruct", str(tmp_path / "ct.npz"), str(tmp_path / "r.tif"), "--method", "d3ip"]
    given = ["--set", f"prior={prior}", "--set", "nfe=3", "--set", "t_min=0"]
    assert main([*argv, *given, "--set", "discrepancy=1e12"]) == 0
    err = capsys.readouterr().err
    assert "d3ip: adaptation ended at t = " in err and "reached the measurement's noise" in err
    assert main([*argv, *given, "--set", "discrepancy=0", "--overwrite"]) == 0
    assert "adaptation ended" not in capsys.readouterr().err
