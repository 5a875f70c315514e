"""The diffusion engine on tiny volumes with a tiny random-init prior: every method on CT and
MRI, determinism, cancellation, O(1) adaptation memory, adaptation lowering the loss, and the
sampler's pieces against their mathematics."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.masks import uniform1d_mask
from napari_ddip.physics.mri import MRIOperator
from napari_ddip.prior.model import DiffusionPrior
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.recon import (
    DIFFUSION_METHODS,
    Adapted,
    Finished,
    Preview,
    Progress,
    ReconConfig,
    Started,
    reconstruct,
    run_to_end,
)
from napari_ddip.recon.lora import LoRA, interpolate_states
from napari_ddip.recon.problem import Problem
from napari_ddip.recon.sampler import dds_update, initial_state, sample_unconditional, slerp
from tiny import tiny_prior

pytestmark = pytest.mark.usefixtures("one_thread")
_prior = tiny_prior


def _ct(n_slices: int = 4, size: int = 32) -> tuple[torch.Tensor, ParallelBeamCT, np.ndarray]:
    volume = ellipsoid_volume((n_slices, size, size), seed=1)
    op = ParallelBeamCT(size, n_views=16)
    return op.forward(torch.from_numpy(volume)), op, volume


def _mri(n_slices: int = 4, size: int = 32) -> tuple[torch.Tensor, MRIOperator, np.ndarray]:
    volume = ellipsoid_volume((n_slices, size, size), seed=1)
    op = MRIOperator(uniform1d_mask((size, size), accel=2, seed=0))
    return op.forward(torch.from_numpy(volume).to(torch.complex64)), op, volume


FAST = {"nfe": 3, "adapt_steps": 2, "k_slices": 2, "t_min": 0, "preview_every": 2}


@pytest.mark.parametrize("method", list(DIFFUSION_METHODS))
@pytest.mark.parametrize("modality", ["ct", "mri"])
def test_every_method_runs_with_the_event_contract(method, modality) -> None:
    y, op, volume = (_ct if modality == "ct" else _mri)()
    events = list(reconstruct(y, op, ReconConfig(method=method, **FAST), prior=_prior()))
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].step == progress[-1].total == events[0].total
    assert [p.step for p in progress] == list(range(1, events[0].total + 1))
    assert any(isinstance(e, Preview) for e in events)
    assert any(isinstance(e, Adapted) for e in events) == DIFFUSION_METHODS[method].adapts
    result = events[-1]
    assert result.volume.shape == volume.shape and result.volume.dtype == np.float32
    assert np.isfinite(result.volume).all() and not result.partial
    assert (result.complex_volume is not None) == (modality == "mri")
    assert result.metadata["method"] == method and result.metadata["settings"]["nfe"] == 3


def test_same_seed_same_volume_other_seed_other_volume() -> None:
    y, op, _ = _ct()

    def run(seed: int) -> np.ndarray:
        cfg = ReconConfig(method="d3ip", seed=seed, **FAST)
        return run_to_end(reconstruct(y, op, cfg, prior=_prior())).volume

    first = run(0)
    np.testing.assert_array_equal(first, run(0))
    assert np.abs(first - run(1)).max() > 1e-4


def test_keeping_the_optimiser_state_changes_the_adaptation_and_stays_deterministic() -> None:
    y, op, _ = _ct()

    def run(keep: bool) -> np.ndarray:
        cfg = ReconConfig(method="d3ip", keep_optimizer=keep, **FAST)
        return run_to_end(reconstruct(y, op, cfg, prior=_prior())).volume

    carried = run(True)
    np.testing.assert_array_equal(carried, run(True))
    assert np.isfinite(carried).all() and not np.array_equal(carried, run(False))


def test_an_all_zero_measurement_is_refused() -> None:
    y, op, _ = _ct()
    with pytest.raises(ValueError, match="all zero"):
        next(iter(reconstruct(torch.zeros_like(y), op, ReconConfig(**FAST), prior=_prior())))


def test_slice_subset_reconstructs_only_those_slices() -> None:
    y, op, _ = _ct(n_slices=5)
    cfg = ReconConfig(method="dds", **FAST)
    result = run_to_end(reconstruct(y, op, cfg, prior=_prior(), slices=[1, 3]))
    assert result.volume.shape == (2, 32, 32) and result.metadata["n_slices"] == 2


def test_cancel_stops_before_the_next_network_call_and_keeps_a_partial_result() -> None:
    y, op, volume = _ct()
    cancel = threading.Event()
    cfg = ReconConfig(method="d3ip", **FAST)
    after_cancel = []
    for event in reconstruct(y, op, cfg, prior=_prior(), cancel=cancel):
        if cancel.is_set():
            after_cancel.append(event)
        elif isinstance(event, Progress) and event.step == 3:
            cancel.set()
    assert [type(e) for e in after_cancel] == [Finished]
    assert after_cancel[0].partial and after_cancel[0].volume.shape == volume.shape


def _saved_bytes(n_slices: int, method: str) -> tuple[int, int]:
    """Bytes autograd saves over a whole run, and the LoRA's trainable size."""
    y, op, _ = _ct(n_slices=n_slices)
    total = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    cfg = ReconConfig(method=method, **FAST)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        result = run_to_end(reconstruct(y, op, cfg, prior=_prior()))
    return total, result.metadata["lora_parameters"]


def test_d3ip_adaptation_memory_does_not_grow_with_the_slice_count() -> None:
    small, lora_small = _saved_bytes(3, "d3ip")
    large, lora_large = _saved_bytes(12, "d3ip")
    assert small > 0 and small == large and lora_small == lora_large > 0
    # DDIP adapts every slice, so its autograd work grows with the volume (the paper's point).
    ddip_small, _ = _saved_bytes(3, "ddip")
    ddip_large, _ = _saved_bytes(12, "ddip")
    assert ddip_large > 3 * ddip_small


def test_adaptation_lowers_the_measurement_loss() -> None:
    y, op, _ = _ct(n_slices=4)
    cfg = ReconConfig(
        method="d3ip", nfe=2, adapt_steps=15, k_slices=4, lr=1e-2, t_min=0, preview_every=0
    )
    losses = [
        e.losses for e in reconstruct(y, op, cfg, prior=_prior(None)) if isinstance(e, Adapted)
    ]
    assert len(losses) == 2 and losses[0][-1] < 0.5 * losses[0][0]
    assert all(run[-1] < run[0] for run in losses)


def test_lora_starts_as_identity_and_round_trips_its_state() -> None:
    prior = _prior(None)
    x = torch.randn(2, 3, 16, 16)
    t = torch.tensor([500, 500])
    before = prior.net(x, t)
    lora = LoRA(prior.net, rank=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(prior.net(x, t), before)
    adapter = {id(p) for p in lora.parameters()}
    assert all(not p.requires_grad for p in prior.net.parameters() if id(p) not in adapter)
    state = lora.state()
    with torch.no_grad():
        for p in lora.parameters():
            p.add_(0.1)
    changed = prior.net(x, t)
    assert (changed - before).abs().max() > 1e-3
    lora.load(state)
    torch.testing.assert_close(prior.net(x, t), before)
    half = interpolate_states(state, {k: v + 2 for k, v in state.items()}, 0.25)
    assert all(torch.allclose(half[k], state[k] + 0.5) for k in state)


def test_slerp_keeps_the_end_points_and_the_norm() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4096, generator=g), torch.randn(4096, generator=g)
    path = slerp(a, b, torch.linspace(0, 1, 5))
    torch.testing.assert_close(path[0], a)
    torch.testing.assert_close(path[-1], b, rtol=1e-4, atol=1e-4)
    norms = path.norm(dim=1)
    assert ((norms - a.norm()).abs() < 0.05 * a.norm()).all()


@pytest.mark.parametrize("power", [1.0, 5.0])
def test_prior_samples_follow_their_timestep_spacing_and_seed(power: float) -> None:
    prior = tiny_prior()
    seen: list[int] = []
    hook = prior.net.register_forward_pre_hook(lambda _, args: seen.append(int(args[1][0])))
    samples = sample_unconditional(prior, 2, (24, 20), nfe=6, seed=3, timestep_power=power)
    hook.remove()
    assert samples.shape == (2, 24, 20) and 0 <= samples.min() and samples.max() <= 1
    assert sorted(set(seen), reverse=True) == prior.schedule.sampling_timesteps(6, power)
    again = sample_unconditional(prior, 2, (24, 20), nfe=6, seed=3, timestep_power=power)
    torch.testing.assert_close(samples, again)


@pytest.mark.parametrize("data_scale", [1.0, 3.0])
def test_sampler_states_carry_the_noise_their_timestep_says(data_scale: float) -> None:
    """With a denoiser that knows the image x₀, every state the sampler hands the network after
    its start (pure noise ``σ_T·n``) is ``√ᾱ_t·x₀ + σ_t·n`` with standard normal ``n``
    (σ_t = √(1−ᾱ_t)/s in image units)."""
    prior = DiffusionPrior(replace(tiny_prior().config, data_scale=data_scale))
    x0 = torch.rand(4, 64, 64)
    schedule, states = prior.schedule, {}

    def oracle_eps(x: torch.Tensor, t: int, generator=None) -> torch.Tensor:
        states[t] = x
        return schedule.implied_eps(x, x0, t)

    prior.eps = oracle_eps
    samples = sample_unconditional(prior, 4, (64, 64), nfe=8, eta=0.85, seed=1)
    torch.testing.assert_close(samples, x0)
    assert len(states) == 8
    top = max(states)
    torch.testing.assert_close(states[top].std(), schedule.sigma(top), rtol=0.03, atol=0)
    for t, x in states.items():
        if t == top:
            continue
        n = (x - schedule.ab(t).sqrt() * x0) / schedule.sigma(t)
        assert abs(float(n.std()) - 1) < 0.03 and abs(float(n.mean())) < 0.03


def test_sampler_with_the_exact_denoiser_draws_a_gaussian_prior() -> None:
    """Known answer: for pixels ``x₀ ~ N(0.5, v)`` the exact denoiser is linear, and a sampler
    of the prior must return samples of mean 0.5 and variance ``v·r``, where ``r =
    ᾱ₀v / (ᾱ₀v + σ₀²)`` because the last step hands back the posterior mean at t = 0.
    Deterministic updates (η 0, DDIM) converge to it as the steps get finer; at 50 steps the
    engine's spacing (power 5) keeps far more of it than even spacing, and the fresh noise of
    the DDS update (η 0.85) gives some up (BENCHMARKS, "Settings that change the result")."""
    prior = tiny_prior()
    schedule = prior.schedule
    mean, var = 0.5, 0.01

    def exact_eps(x: torch.Tensor, t: int, generator=None) -> torch.Tensor:
        ab, sigma = schedule.ab(t), schedule.sigma(t)
        x0 = mean + ab.sqrt() * var / (ab * var + sigma**2) * (x - ab.sqrt() * mean)
        return schedule.implied_eps(x, x0, t)

    prior.eps = exact_eps
    ab0, sigma0 = schedule.ab(0), schedule.sigma(0)
    expected = float(ab0 * var / (ab0 * var + sigma0**2))

    def kept_variance(nfe: int, eta: float, power: float) -> float:
        samples = sample_unconditional(
            prior, 8, (64, 64), nfe=nfe, eta=eta, seed=0, timestep_power=power
        )
        assert abs(float(samples.mean()) - mean) < 0.003
        return float(samples.var()) / var

    assert abs(kept_variance(200, 0.0, 5.0) - expected) < 0.03
    fine, even, noisy = (kept_variance(50, eta, p) for eta, p in ((0, 5), (0, 1), (0.85, 5)))
    assert fine > 0.9 and even < fine - 0.2 and noisy < fine - 0.15


def test_initial_noise_is_correlated_across_neighbouring_slices_only_with_slerp() -> None:
    prior = _prior()
    pinv = torch.zeros(32, 16, 16)
    g = torch.Generator().manual_seed(0)
    for use_slerp, low, high in ((True, 0.95, 1.0), (False, -0.2, 0.2)):
        x = initial_state(prior.schedule, 980, pinv, 1, g, use_pinv=True, use_slerp=use_slerp)
        corr = np.corrcoef(x[10].flatten(), x[11].flatten())[0, 1]
        assert low < corr < high
        assert abs(float(x.std()) - float((1 - prior.schedule.ab(980)).sqrt())) < 0.05


def test_problem_representation_and_data_consistency() -> None:
    y, op, _ = _mri(n_slices=3)
    cfg = ReconConfig(method="ddnm", cg_iters=5, ddnm_cg_iters=30).resolved("mri", "cpu")
    p = Problem(op, y, cfg)
    x = torch.randn(3, 32, 32, dtype=torch.complex64)
    torch.testing.assert_close(p.from_prior(p.to_prior(x)), x)
    assert p.to_prior(x).shape == (6, 32, 32)
    torch.testing.assert_close(p.to_prior(x)[p.rows(torch.tensor([1]))], p.to_prior(x)[2:4])
    x0 = torch.zeros(3, 32, 32, dtype=torch.complex64)
    before = float(p.relative_loss(x0, slice(None)))
    after_cg = float(p.relative_loss(p.consistency(x0, slice(None), "cg", 1), slice(None)))
    projected = p.consistency(x0, slice(None), "project", 1)
    assert before == pytest.approx(1.0) and after_cg < 0.2 * before
    assert float(p.relative_loss(projected, slice(None))) < 1e-6
    # mbir: hard data consistency without the anchor; a huge mbir_anchor pins x̃₀ to x̂₀.
    hard = Problem(op, y, replace(cfg, mbir_anchor=0.0))
    hard_x = hard.consistency(x0, slice(None), "mbir", 3)
    after_mbir = float(hard.relative_loss(hard_x, slice(None)))
    assert after_mbir < 0.2 * before
    pinned = Problem(op, y, replace(cfg, mbir_anchor=1e6)).consistency(x, slice(None), "mbir", 3)
    torch.testing.assert_close(pinned, x, atol=1e-4, rtol=1e-4)


def test_posterior_std_is_larger_where_the_measurement_says_less() -> None:
    volume = ellipsoid_volume((4, 32, 32), seed=1)
    stds = {}
    for views in (6, 30):
        op = ParallelBeamCT(32, n_views=views)
        y = op.forward(torch.from_numpy(volume))
        cfg = ReconConfig(method="dds", nfe=4, samples=3, preview_every=0)
        result = run_to_end(reconstruct(y, op, cfg, prior=_prior()))
        assert result.std is not None and result.std.shape == volume.shape
        assert result.metadata["samples"] == 3
        stds[views] = float(result.std[1:3].mean())
    assert stds[6] > 1.5 * stds[30] > 0


def test_d3ip_samples_share_one_adaptation_and_warm_start_reuses_it(tmp_path) -> None:
    from napari_ddip.recon.adaptation import load_adaptation, save_adaptation

    y, op, _ = _ct()
    one = run_to_end(reconstruct(y, op, ReconConfig(method="d3ip", **FAST), prior=_prior()))
    events = list(reconstruct(y, op, ReconConfig(method="d3ip", samples=2, **FAST), prior=_prior()))
    adapted = [e for e in events if isinstance(e, Adapted)]
    assert len(adapted) == len(one.adaptation) == 3  # adapted in the first sample only
    two = events[-1]
    np.testing.assert_array_equal(  # the first sample is the single run; the mean differs
        one.volume,
        run_to_end(reconstruct(y, op, ReconConfig(method="d3ip", **FAST), prior=_prior())).volume,
    )
    assert two.std is not None and np.abs(two.volume - one.volume).max() > 0
    path = save_adaptation(tmp_path / "a.safetensors", one.adaptation, {"method": "d3ip"})
    states, info = load_adaptation(path)
    assert info["method"] == "d3ip" and sorted(states) == sorted(one.adaptation)
    for t, state in one.adaptation.items():
        assert all(torch.equal(state[k], states[t][k]) for k in state)
    # Warm start without further steps replays the saved states exactly.
    replay = ReconConfig(method="d3ip", **(FAST | {"adapt_steps": 0}))
    warm = run_to_end(reconstruct(y, op, replay, prior=_prior(), warm_start=states))
    np.testing.assert_array_equal(warm.volume, one.volume)
    with pytest.raises(ValueError, match="rank"):
        bad = ReconConfig(method="d3ip", lora_rank=2, **FAST)
        next(iter(reconstruct(y, op, bad, prior=_prior(), warm_start=states)))
    with pytest.raises(ValueError, match=r"not a safetensors|not a napari-ddip"):
        (tmp_path / "junk.safetensors").write_bytes(b"junk")
        load_adaptation(tmp_path / "junk.safetensors")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"method": "sds"}, "unknown diffusion method"),
        ({"nfe": 0}, "nfe must be at least 1"),
        ({"eta": 1.5}, "eta must be in"),
        ({"timestep_power": 0.5}, "timestep_power must be at least 1"),
        ({"t_min": 500, "t_max": 100}, "t_min <= t_max"),
        ({"gamma": 0.0}, "gamma must be positive"),
        ({"mbir_anchor": -1.0}, "mbir_anchor must not be negative"),
        ({"adapt_steps": -1}, "adapt_steps must not be negative"),
    ],
)
def test_config_refuses_bad_settings(setting: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReconConfig(**setting)


def test_the_sampler_update_puts_back_the_share_renoise_of_its_noise() -> None:
    schedule = tiny_prior().schedule
    x0, eps = torch.rand(2, 6, 6), torch.randn(2, 6, 6)
    ab, sigma = schedule.ab(40), schedule.sigma(40)

    def update(eta: float, renoise: float) -> torch.Tensor:
        return dds_update(schedule, x0, eps, 40, eta, torch.Generator().manual_seed(0), renoise)

    torch.testing.assert_close(update(0.0, 1.0), ab.sqrt() * x0 + sigma * eps)  # DDIM
    torch.testing.assert_close(update(0.85, 0.0), ab.sqrt() * x0)  # annealed plug-and-play
    half = update(0.85, 0.5) - ab.sqrt() * x0
    torch.testing.assert_close(half, 0.5 * (update(0.85, 1.0) - ab.sqrt() * x0))


def test_config_resolves_the_modality_defaults() -> None:
    ct = ReconConfig(method="d3ip-mbir").resolved("ct", "cpu")
    mri = ReconConfig(method="d3ip-mbir").resolved("mri", "cpu")
    assert (ct.adapt_steps, ct.lr, ct.gamma, ct.prior_error) == (10, 1e-4, None, 2.0)
    assert (mri.adapt_steps, mri.lr, mri.gamma, mri.prior_error) == (5, 1e-4, None, 0.0)
    # mbir: hard data consistency with data-scaled λ/ρ for CT, nearly hard for MRI.
    assert (ct.mbir_anchor, ct.admm_lam, ct.admm_rho) == (0.0, None, None)
    assert (mri.mbir_anchor, mri.admm_lam, mri.admm_rho) == (0.02, 5e-5, 1e-2)
    assert (ct.holdout, mri.holdout) == (0.0, 0.25)
    # a denoiser prior takes smaller LoRA steps unless the user gives a rate
    assert ReconConfig(method="d3ip").resolved("ct", "cpu", denoiser=True).lr == 1e-5
    assert ReconConfig(method="d3ip", lr=3e-4).resolved("ct", "cpu", denoiser=True).lr == 3e-4
    # the denoiser prior's geometric levels are walked evenly, and on MRI without re-noising
    den_ct = ReconConfig(method="dds").resolved("ct", "cpu", denoiser=True)
    den_mri = ReconConfig(method="dds").resolved("mri", "cpu", denoiser=True)
    assert (ct.timestep_power, mri.timestep_power, den_ct.timestep_power) == (5.0, 5.0, 1.0)
    assert (ct.renoise, mri.renoise, den_ct.renoise, den_mri.renoise) == (1.0, 1.0, 1.0, 0.0)
    assert ReconConfig(renoise=0.5).resolved("mri", "cpu", denoiser=True).renoise == 0.5
    # and without adaptation from the zero-filled image's aliasing level, which needs the
    # pseudo-inverse start
    starts = [
        ReconConfig(method=m, init_pinv=pinv, start_level=given).starts_at_aliasing(kind, den)
        for m, kind, den, pinv, given in [
            ("dds", "mri", True, True, None),
            ("dds-tv", "mri", True, True, None),
            ("d3ip", "mri", True, True, None),
            ("dds", "ct", True, True, None),
            ("dds", "mri", False, True, None),
            ("dds", "mri", True, False, None),
            ("dds", "mri", True, True, 0.2),
        ]
    ]
    assert starts == [True, True, False, False, False, False, False]
    with pytest.raises(ValueError, match="start_level needs init_pinv"):
        ReconConfig(start_level=0.1, init_pinv=False)
    # a denoiser prior adapts (and uses its LoRA) at high noise levels only
    assert (ct.t_min, den_ct.t_min, ReconConfig(t_min=5).resolved("ct", "cpu", True).t_min) == (
        20,
        600,
        5,
    )
    given = ReconConfig(method="d3ip-mbir", mbir_anchor=0.0, admm_rho=1e-3).resolved("mri", "cpu")
    assert (given.mbir_anchor, given.admm_lam, given.admm_rho) == (0.0, 5e-5, 1e-3)


def _middle(make) -> tuple[torch.Tensor, ParallelBeamCT | MRIOperator]:
    """The two middle slices of a 4-slice ``_ct`` / ``_mri`` problem (those holding signal)."""
    y, op, _ = make()
    return y[1:3], op


def test_measurement_of_any_numeric_dtype_or_layout_gives_the_same_volume() -> None:
    """NumPy float64 (NumPy's default), negative strides and complex128 k-space are computed
    in float32 / complex64, as a float32 tensor would be."""
    cfg = ReconConfig(method="dds", **FAST)
    y, op = _middle(_ct)
    reference = run_to_end(reconstruct(y, op, cfg, prior=_prior())).volume
    flipped = y.numpy().astype(np.float64)[::-1]
    for given in (y.numpy().astype(np.float64), y.double(), flipped):
        slices = [1, 0] if given is flipped else None
        volume = run_to_end(reconstruct(given, op, cfg, prior=_prior(), slices=slices)).volume
        np.testing.assert_array_equal(volume, reference)
    k, mop = _middle(_mri)
    reference = run_to_end(reconstruct(k, mop, cfg, prior=_prior())).volume
    volume = run_to_end(reconstruct(k.numpy().astype(np.complex128), mop, cfg, prior=_prior()))
    np.testing.assert_array_equal(volume.volume, reference)


def _with_nan(y: torch.Tensor) -> torch.Tensor:
    y = y.clone()
    y[0, 0, 0] = float("nan")
    return y


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("ct views", r"shape \(2, 12, 46\) but ParallelBeamCT takes \(Z, 16, 46\)"),
        ("ct bins", r"shape \(2, 16, 40\) but ParallelBeamCT takes \(Z, 16, 46\)"),
        ("ct one slice", r"shape \(16, 46\) but ParallelBeamCT takes \(Z, 16, 46\)"),
        ("ct complex", "ParallelBeamCT takes real measurements, got torch.complex64"),
        ("ct nan", "contains 1 NaN/Inf value"),
        ("mri size", r"shape \(2, 32, 30\) but MRIOperator takes \(Z, 32, 32\)"),
        ("mri coils", r"shape \(2, 3, 32, 32\) but MRIOperator takes \(Z, 32, 32\)"),
        ("mri real", "MRIOperator takes complex measurements, got torch.float32"),
        ("mri mask slices", "3 slices but MRIOperator holds per-slice data for 2"),
        ("mri nan", "contains 1 NaN/Inf value"),
    ],
)
def test_a_measurement_that_does_not_fit_is_refused_before_any_work(case, message) -> None:
    """Named in the message, before the prior loads (this one does not exist)."""
    y, op = _middle(_ct)
    k, mop = _middle(_mri)
    per_slice = MRIOperator(mop.mask.expand(2, -1, -1))
    given = {
        "ct views": (y[:, :12], op),
        "ct bins": (y[..., :40], op),
        "ct one slice": (y[0], op),
        "ct complex": (y.to(torch.complex64), op),
        "ct nan": (_with_nan(y), op),
        "mri size": (k[..., :30], mop),
        "mri coils": (k[:, None].expand(-1, 3, -1, -1), mop),
        "mri real": (k.real, mop),
        "mri mask slices": (torch.cat([k, k[:1]]), per_slice),
        "mri nan": (_with_nan(k), mop),
    }[case]
    with pytest.raises(ValueError, match=message):
        next(iter(reconstruct(*given, ReconConfig(**FAST), prior="no-such-prior")))


@pytest.mark.parametrize("method", ["d3ip", "dps"])
def test_a_run_iterated_under_no_grad_or_inference_mode_still_adapts(method) -> None:
    """The engine turns autograd on for its own steps, whatever the caller's mode."""
    y, op = _middle(_ct)
    cfg = ReconConfig(method=method, **FAST)
    reference = run_to_end(reconstruct(y, op, cfg, prior=_prior())).volume
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            volume = run_to_end(reconstruct(y, op, cfg, prior=_prior())).volume
        np.testing.assert_array_equal(volume, reference)


def test_the_callers_code_between_events_keeps_its_own_autograd_state() -> None:
    """Neither the engine's ``no_grad`` nor its parametrisation cache reaches the loop body,
    nor lingers when the loop stops early with the run still referenced."""
    from torch.nn.utils import parametrize

    y, op = _middle(_ct)
    events = reconstruct(y, op, ReconConfig(method="dds", **FAST), prior=_prior())
    for event in events:
        assert torch.is_grad_enabled() and not parametrize._cache_enabled
        if isinstance(event, Progress):
            break
    assert torch.is_grad_enabled() and not parametrize._cache_enabled
    with torch.no_grad():
        assert isinstance(next(events), Progress) and not torch.is_grad_enabled()
    events.close()


def test_a_prior_given_as_a_path_is_named_in_the_metadata(tmp_path) -> None:
    from napari_ddip.prior.weights import save_prior

    path = save_prior(_prior(), tmp_path / "tiny")
    y, op = _middle(_ct)
    cfg = ReconConfig(method="dds", nfe=1, preview_every=0)
    result = run_to_end(reconstruct(y, op, cfg, prior=path))
    assert result.metadata["prior"] == str(path)


def test_a_device_that_is_not_there_is_refused_before_any_work() -> None:
    y, op = _middle(_ct)
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        next(iter(reconstruct(y, op, prior="no-such-prior", device="gpu")))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device is available"):
            next(iter(reconstruct(y, op, prior="no-such-prior", device="cuda")))


def test_a_cancel_that_is_neither_an_event_nor_a_callable_is_refused() -> None:
    y, op = _middle(_ct)
    with pytest.raises(TypeError, match=r"cancel must be a threading\.Event or a callable"):
        next(iter(reconstruct(y, op, prior="no-such-prior", cancel=True)))


def test_a_per_slice_mask_and_coil_maps_must_agree_on_the_slices() -> None:
    mask = np.ones((3, 16, 16), np.float32)
    with pytest.raises(ValueError, match="per-slice mask has 3 slices but the coil maps 2"):
        MRIOperator(mask, np.ones((2, 2, 16, 16), np.complex64))
