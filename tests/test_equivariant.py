"""Equivariant self-supervision (``ReconConfig.equivariant``): the rotation against exact
answers, the simulated measurement's noise against its definition, the fine-tuning against
its own loss, and a whole run's progress, provenance, cancellation and refusals."""

from __future__ import annotations

import copy
import itertools
import threading

import numpy as np
import pytest
import torch

from napari_ddip.methods import reconstruct_measurement
from napari_ddip.operators import operator_from_measurement
from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.masks import poisson_disc_mask
from napari_ddip.physics.mri import MRIOperator
from napari_ddip.physics.noise import estimate_noise_std
from napari_ddip.prior.denoiser import DenoiserPrior
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.prior.weights import load_prior
from napari_ddip.recon import Finished, Progress, ReconConfig, Started, reconstruct
from napari_ddip.recon.diffusion_methods import DIFFUSION_METHODS
from napari_ddip.recon.equivariant import (
    fine_tune,
    matched_noise,
    rotate_slices,
    rotation_angles,
    simulated_measurement,
    view_gap,
)
from napari_ddip.run_time import estimate_text
from napari_ddip.simulate import simulate_ct, simulate_mri
from napari_ddip.slab import central_block

pytestmark = pytest.mark.usefixtures("one_thread")
#: A short run: 3 sampling steps, 2 rotations, 4 fine-tuning steps.
SHORT = {"nfe": 3, "equivariant": 2, "equivariant_steps": 4}


@pytest.fixture(scope="module")
def ffdnet() -> DenoiserPrior:
    prior = load_prior("ffdnet-color")
    assert isinstance(prior, DenoiserPrior)
    return prior


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return ellipsoid_volume((4, 32, 32), seed=3)[1:3]


def test_rotations_lie_half_way_between_multiples_of_the_step() -> None:
    assert rotation_angles(4) == [45.0, 135.0, 225.0, 315.0]
    assert rotation_angles(8)[0] == 22.5


@pytest.mark.parametrize(
    ("n", "most", "block"),
    [
        (8, 8, (0, 8)),
        (20, 8, (6, 14)),
        (9, 8, (0, 8)),
        (3, 8, (0, 3)),
        (5, 0, (0, 5)),
        (6, 1, (2, 3)),
    ],
)
def test_the_copies_block_is_centred_and_at_most_the_cap(n, most, block) -> None:
    chosen = central_block(n, most)
    assert (chosen.start, chosen.stop) == block


def test_a_rotation_by_the_view_spacing_only_permutes_the_views() -> None:
    # the reason for moving the rotations off the scan's symmetries: rotated by 5 views
    # (15°), a slice's sinogram is its own, shifted by 5 views (to bicubic's error), so such a
    # copy is measured in the directions already measured
    r = torch.arange(48.0) - 23.5
    rows, cols = torch.meshgrid(r, r, indexing="ij")
    x = torch.exp(-((rows - 6) ** 2 + (cols + 4) ** 2) / 30)[None]
    x = x + 0.5 * torch.exp(-((rows + 9) ** 2 + (cols - 2) ** 2) / 12)[None]
    op = ParallelBeamCT(48, n_views=60)
    sino = op.forward(x)[0]
    rotated = op.forward(rotate_slices(x, 15.0))[0]
    # view v of the rotated slice is view v + 15° of the slice, away from the wrap at 180°
    # (where the views come back mirrored)
    assert (rotated[:55] - sino[5:]).norm() / sino.norm() < 0.01
    assert (rotated[:55] - sino[:55]).norm() / sino.norm() > 0.1  # and not merely unchanged


def test_for_a_ct_scan_each_rotation_moves_half_way_between_two_views() -> None:
    regular = np.linspace(0.0, 180.0, 60, endpoint=False)  # every 3°
    assert view_gap(45.0, regular) == pytest.approx(0.0, abs=1e-9)  # a symmetry of the scan
    for n in (4, 8, 16):
        angles = rotation_angles(n, regular)
        for g, nominal in zip(angles, rotation_angles(n), strict=True):
            assert view_gap(g, regular) == pytest.approx(1.5)  # the most a 3° scan allows
            assert abs(g - nominal) <= 1.5
    assert rotation_angles(8, regular) == rotation_angles(8)  # 22.5° + k·45°: half-way already
    # limited angle (120°, every 3°): half-way between views too
    limited = np.linspace(0.0, 120.0, 40, endpoint=False)
    assert all(view_gap(g, limited) == pytest.approx(1.5) for g in rotation_angles(4, limited))
    assert rotation_angles(4, [10.0]) == rotation_angles(4)  # one view: nothing to avoid


def test_quarter_and_half_turns_are_exact_and_a_turn_and_back_keeps_a_smooth_slice() -> None:
    x = torch.rand(2, 6, 6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(rotate_slices(x, 90), torch.rot90(x, 1, (1, 2)))
    torch.testing.assert_close(rotate_slices(x, -90), torch.rot90(x, -1, (1, 2)))
    wide = torch.rand(1, 5, 8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(rotate_slices(wide, 180), wide.flip(-1, -2))
    # a centred Gaussian (σ 5 px) is its own rotation, to bicubic's error (1 % of the peak);
    # an off-centre one moves where R(g) sends it
    r = torch.arange(64.0) - 31.5
    rows, cols = torch.meshgrid(r, r, indexing="ij")
    centred = torch.exp(-(rows**2 + cols**2) / 50)[None]
    assert (rotate_slices(centred, 30) - centred).abs().max() < 1e-2
    blob = torch.exp(-((rows + 10) ** 2 + cols**2) / 50)[None]  # 10 px above the centre
    moved = torch.exp(-(rows**2 + (cols + 10) ** 2) / 50)[None]  # 90° on: 10 px to the left
    assert (rotate_slices(blob, 90) - moved).abs().max() < 1e-5
    back = rotate_slices(rotate_slices(blob, 22.5), -22.5)
    assert (back - blob).abs().max() < 1e-2


def test_the_simulated_noise_has_the_requested_level_on_sinograms_and_on_measured_k_space() -> None:
    image = torch.from_numpy(ellipsoid_volume((4, 32, 32), seed=0))
    ct = ParallelBeamCT(32, n_views=30)
    clean = ct.forward(image)
    noisy = simulated_measurement(ct, image, 0.5, torch.Generator().manual_seed(0))
    assert float((noisy - clean).std()) == pytest.approx(0.5, rel=0.05)
    mask = torch.from_numpy(poisson_disc_mask((32, 32), 4.0, calib=(8, 8), seed=0))
    mri = MRIOperator(mask)
    k = simulated_measurement(mri, image, 0.1, torch.Generator().manual_seed(0))
    noise = k - mri.forward(image.to(torch.complex64))
    measured = mask.bool().expand_as(k)
    assert torch.all(k[~measured] == 0)
    assert float(noise[measured].abs().pow(2).mean().sqrt()) == pytest.approx(0.1, rel=0.05)
    assert torch.equal(simulated_measurement(ct, image, 0.0, torch.Generator()), clean)


@pytest.mark.parametrize("relative", [0.01, 0.03])
def test_the_matched_noise_is_the_true_noise_where_the_estimate_overstates_it(relative) -> None:
    image = torch.from_numpy(ellipsoid_volume((6, 64, 64), seed=2)[1:5])
    ct = ParallelBeamCT(64, n_views=30)
    clean = ct.forward(image)
    sigma = relative * float(clean.abs().mean())
    y = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    assert estimate_noise_std(y) > 1.2 * sigma  # the phantom's edges read as noise
    matched = matched_noise(ct, image, y, torch.Generator().manual_seed(2))
    assert matched == pytest.approx(sigma, rel=0.05)


@pytest.mark.parametrize("name", ["ffdnet", "diffusion"])
def test_fine_tuning_lowers_its_loss_and_leaves_the_weights_frozen(name, ffdnet) -> None:
    base = ffdnet if name == "ffdnet" else load_prior("default")  # the ellipse diffusion prior
    prior = copy.deepcopy(base)
    targets = torch.from_numpy(ellipsoid_volume((6, 32, 32), seed=4))
    blurred = torch.nn.functional.avg_pool2d(targets[:, None], 3, 1, 1)[:, 0]

    def error(p) -> float:  # on every slice, the tiling of a patch prior drawn alike
        with torch.no_grad():
            out = p.denoise(blurred, 0.02, torch.Generator().manual_seed(1))
        return float((out - targets).pow(2).mean())

    list(fine_tune(prior, blurred, targets, 0.02, 20, torch.Generator().manual_seed(0)))
    assert error(prior) < 0.9 * error(base)
    assert not any(p.requires_grad for p in prior.parameters())
    pairs = zip(prior.parameters(), base.parameters(), strict=True)
    assert all(not torch.equal(a, b) for a, b in pairs)


def _run(measurement, settings, **kwargs):
    events: list = []
    result = reconstruct_measurement(measurement, "dds", settings, on_event=events.append, **kwargs)
    return result, events


def test_a_run_counts_all_its_work_and_records_the_self_supervision(volume) -> None:
    m = simulate_ct(volume, n_views=20, noise=0.01, seed=0)
    result, events = _run(m, SHORT)
    started = next(e for e in events if isinstance(e, Started))
    assert estimate_text(started, DIFFUSION_METHODS["dds"]).endswith("2 equivariant rotations")
    progress = [e for e in events if isinstance(e, Progress)]
    assert started.total == progress[-1].total
    steps = [e.step for e in progress]
    assert steps == list(range(1, len(steps) + 1))
    assert {e.total for e in progress} == {steps[-1]}
    phases = list(dict.fromkeys(e.phase for e in progress))
    assert phases == [
        "sampling",
        "rotation 1/2",
        "rotation 2/2",
        "unrotated copy",  # the sinogram is noisy
        "equivariant fine-tuning",
    ]
    assert progress[-1].describe() == "equivariant fine-tuning step 4/4"
    record = result.provenance["equivariant"]
    assert record["rotations"] == 2 and record["steps"] == 4 and record["done"]
    assert record["angles"] == rotation_angles(2, np.linspace(0, 180, 20, endpoint=False))
    assert record["angles"] != rotation_angles(2)  # 90° and 270° are symmetries of 20 views
    assert record["level"] > 0 and record["noise_std"] > 0  # estimated from the sinogram
    assert record["unrotated"]
    assert result.provenance["settings"]["equivariant"] == 2
    base = reconstruct_measurement(m, "dds", {"nfe": 3})
    assert not np.allclose(result.volume, base.volume)
    assert result.volume.shape == base.volume.shape and np.isfinite(result.volume).all()


def test_copies_of_a_central_block_refine_every_slice() -> None:
    volume = ellipsoid_volume((6, 32, 32), seed=5)
    m = simulate_ct(volume, n_views=20, noise=0.01, seed=0)
    progress: list[Progress] = []

    def on_event(event) -> None:
        if isinstance(event, Progress):
            progress.append(event)

    block = reconstruct_measurement(m, "dds", SHORT | {"equivariant_slices": 2}, on_event=on_event)
    whole = reconstruct_measurement(m, "dds", SHORT | {"equivariant_slices": 0})
    base = reconstruct_measurement(m, "dds", {"nfe": 3})
    assert block.provenance["equivariant"]["slices"] == [2, 4]
    assert whole.provenance["equivariant"]["slices"] == [0, 6]
    # the count holds with the smaller copies: one total, steps that never go back
    assert {e.total for e in progress} == {progress[-1].step}
    assert all(a.step <= b.step for a, b in itertools.pairwise(progress))
    changed = np.abs(block.volume - base.volume).reshape(6, -1).max(axis=1)
    assert (changed > 0).all()  # every slice refined, not only the block's
    # fine-tuned on other copies: another refinement of the same first run
    assert not np.allclose(block.volume, whole.volume)


def test_with_two_samples_the_mean_is_refined_and_the_spread_kept(volume) -> None:
    m = simulate_ct(volume, n_views=20, noise=0.01, seed=0)
    plain = reconstruct_measurement(m, "dds", {"nfe": 3, "samples": 2})
    refined = reconstruct_measurement(m, "dds", SHORT | {"samples": 2})
    assert refined.provenance["equivariant"]["done"] and refined.provenance["samples"] == 2
    np.testing.assert_array_equal(refined.std, plain.std)
    assert not np.allclose(refined.volume, plain.volume)


def test_cancelled_during_fine_tuning_returns_the_unrefined_reconstruction(volume) -> None:
    m = simulate_ct(volume, n_views=20, noise=0.01, seed=0)
    stop = threading.Event()

    def on_event(event) -> None:
        if isinstance(event, Progress) and event.phase == "equivariant fine-tuning":
            stop.set()

    result = reconstruct_measurement(m, "dds", SHORT, cancel=stop, on_event=on_event)
    base = reconstruct_measurement(m, "dds", {"nfe": 3})
    assert result.partial and not result.provenance["equivariant"]["done"]
    np.testing.assert_array_equal(result.volume, base.volume)


@pytest.mark.parametrize("noise_std", [None, 0.01])
def test_k_space_keeps_the_first_phase_and_has_an_unrotated_copy_only_with_noise(
    volume, noise_std
) -> None:
    m = simulate_mri(volume, accel=4.0, mask="poisson", noise=0.0, seed=0)
    op = operator_from_measurement(m, "cpu")
    cfg = ReconConfig(method="dds", noise_std=noise_std, **SHORT)
    events = list(reconstruct(m.data, op, cfg, device="cpu"))
    done = events[-1]
    assert isinstance(done, Finished)
    record = done.metadata["equivariant"]
    assert record["noise_std"] == (noise_std or 0)  # k-space without noise_std: none
    assert record["unrotated"] == (noise_std is not None)
    assert record["angles"] == rotation_angles(2)  # k-space: no views to avoid
    progress = [e for e in events if isinstance(e, Progress)]
    phases = {e.phase for e in progress}
    assert "rotation 2/2" in phases and ("unrotated copy" in phases) == record["unrotated"]
    assert progress[-1].step == progress[-1].total  # the count holds either way
    np.testing.assert_allclose(np.abs(done.complex_volume), done.volume, rtol=1e-5, atol=1e-6)


def test_a_diffusion_prior_is_fine_tuned_as_a_denoiser_and_reproducibly(volume) -> None:
    """The ellipse diffusion prior (a patch prior, which draws its tiling) refines the run:
    the result differs from the method's, and a second run with the seed gives it again."""
    m = simulate_ct(volume, n_views=20, noise=0.01, seed=0)
    settings = SHORT | {"prior": "default"}
    first = reconstruct_measurement(m, "dds", settings)
    again = reconstruct_measurement(m, "dds", settings)
    base = reconstruct_measurement(m, "dds", settings | {"equivariant": 0})
    assert first.provenance["equivariant"]["done"]
    np.testing.assert_array_equal(first.volume, again.volume)
    assert np.abs(first.volume - base.volume).max() > 1e-3
