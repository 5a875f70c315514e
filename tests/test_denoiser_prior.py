"""The FFDNet denoiser prior, the noise estimate and the noise-aware data consistency, checked
against known answers: Gaussian noise of a given σ, a MAP problem's optimality condition,
Tweedie's formula."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.masks import poisson_disc_mask, uniform1d_mask
from napari_ddip.physics.mri import MRIOperator
from napari_ddip.physics.noise import estimate_noise_std
from napari_ddip.prior.denoiser import DenoiserPrior
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.prior.schedule import VPSchedule
from napari_ddip.prior.weights import load_prior
from napari_ddip.recon import Adapted, ReconConfig, reconstruct, run_to_end
from napari_ddip.recon.events import Started
from napari_ddip.recon.lora import LoRA
from napari_ddip.recon.problem import Problem
from napari_ddip.samples import mni_brain_volume
from napari_ddip.solvers.classical import admm_tv, default_tv_weight, image_scale

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ffdnet() -> DenoiserPrior:
    prior = load_prior("ffdnet-color")
    assert isinstance(prior, DenoiserPrior)
    return prior


def _phantom(n_slices: int, size: int, seed: int = 1) -> np.ndarray:
    """``(n_slices, size, size)`` ellipsoid phantom slices that all hold signal (the
    phantom's first and last slices are empty)."""
    volume = ellipsoid_volume((n_slices + 2, size, size), seed=seed)[1:-1]
    assert (volume.reshape(n_slices, -1).max(1) > 0.3).all()
    return np.ascontiguousarray(volume)


def _noisy(volume: np.ndarray, sigma: float, seed: int = 0) -> torch.Tensor:
    noise = torch.randn(volume.shape, generator=torch.Generator().manual_seed(seed))
    return torch.from_numpy(volume) + sigma * noise


def _psnr(x: torch.Tensor, ref: np.ndarray) -> float:
    return float(10 * torch.log10(1 / (x - torch.from_numpy(ref)).pow(2).mean()))


def test_the_shipped_denoiser_removes_noise_at_and_above_its_training_range(ffdnet) -> None:
    volume = _phantom(2, 48, seed=3)
    for sigma in (0.05, 0.2, 0.6):  # 0.6·√3 is far above the training range 75/255
        y = _noisy(volume, sigma)
        with torch.no_grad():
            denoised = ffdnet.denoise(y, sigma)
        assert _psnr(denoised, volume) > _psnr(y, volume) + 6, sigma


def test_the_phantom_tuned_denoiser_denoises_unseen_phantoms_better_than_its_base(ffdnet) -> None:
    tuned = load_prior("ffdnet-ellipse")
    assert isinstance(tuned, DenoiserPrior) and tuned.config == ffdnet.config
    volume = _phantom(2, 64, seed=3)  # an ellipsoid phantom: not the 2D phantoms it saw
    for sigma in (0.01, 0.05):  # measured +1.1 / +1.0 dB (45.17 → 46.26, 34.03 → 35.00)
        y = _noisy(volume, sigma)
        with torch.no_grad():
            gain = _psnr(tuned.denoise(y, sigma), volume) - _psnr(ffdnet.denoise(y, sigma), volume)
        assert gain > 0.5, (sigma, gain)


def test_grey_slices_denoise_best_with_the_sqrt3_noise_level(ffdnet) -> None:
    volume = _phantom(2, 48, seed=3)
    y = _noisy(volume, 0.1)
    images = y.unsqueeze(1).expand(-1, 3, -1, -1)
    with torch.no_grad():
        scores = {
            k: _psnr(ffdnet.net(images, torch.full((2,), 0.1 * k)).mean(1), volume)
            for k in (1.0, 3**0.5)
        }
        adjusted = _psnr(ffdnet.denoise(y, 0.1), volume)
    assert scores[3**0.5] > scores[1.0] + 1
    assert adjusted == pytest.approx(scores[3**0.5], abs=0.2)  # noisy peaks above 1 rescaled


def test_a_slice_brighter_than_the_training_range_denoises_as_well(ffdnet) -> None:
    volume = _phantom(2, 48, seed=3)
    noise = 0.02 * torch.randn(volume.shape, generator=torch.Generator().manual_seed(0))
    bright_input = torch.from_numpy(2 * volume) + 2 * noise  # peak 2: outside [0, 1]
    with torch.no_grad():
        plain = ffdnet.denoise(torch.from_numpy(volume) + noise, 0.02)
        bright = ffdnet.denoise(bright_input, 0.04) / 2
        unscaled = ffdnet.net(
            bright_input.unsqueeze(1).expand(-1, 3, -1, -1), torch.full((2,), 0.04 * 3**0.5)
        ).mean(1)
    assert _psnr(bright, volume) == pytest.approx(_psnr(plain, volume), abs=0.5)
    assert _psnr(bright, volume) > _psnr(unscaled / 2, volume) + 2


def _with_level_factor(prior: DenoiserPrior, factor: float) -> DenoiserPrior:
    """``prior``'s network with ``estimated_level_factor`` set to ``factor``."""
    other = DenoiserPrior(replace(prior.config, estimated_level_factor=factor))
    other.load_state_dict(prior.state_dict())
    return other


def test_eps_of_the_denoiser_prior_is_tweedie_of_its_denoised_image(ffdnet) -> None:
    volume = torch.from_numpy(_phantom(2, 32, seed=2)[:, :33, :31].copy())  # odd sides
    t = 150
    prior = _with_level_factor(ffdnet, 0.0)  # the schedule's level alone
    schedule = prior.schedule
    ab, sigma = schedule.ab(t), schedule.sigma(t)
    xt = ab.sqrt() * volume + sigma * torch.randn(volume.shape)
    with torch.no_grad():
        eps = prior.eps(xt, t)
        x0 = prior.denoise(xt / ab.sqrt(), float(sigma / ab.sqrt()))
    assert eps.shape == volume.shape
    torch.testing.assert_close(schedule.tweedie(xt, eps, t), x0, atol=1e-4, rtol=1e-4)


def test_a_slice_noisier_than_the_schedule_says_is_denoised_at_its_estimated_level(
    ffdnet,
) -> None:
    """The sampler's image may carry more than the schedule's noise (the last data
    consistency's error): the shipped prior denoises each slice at the larger of the
    schedule's level and the level estimated from the slice. With 4× the schedule's noise
    that is close to the best level; with the schedule's own noise it changes little."""
    volume = mni_brain_volume(128, 2)
    t = 300
    schedule = ffdnet.schedule
    ab, sigma = schedule.ab(t), schedule.sigma(t)
    level = float(sigma / ab.sqrt())
    blind = _with_level_factor(ffdnet, 0.0)
    scores = {}
    for extra in (1.0, 4.0):
        xt = ab.sqrt() * _noisy(volume, extra * level)
        with torch.no_grad():
            x0 = [schedule.tweedie(xt, p.eps(xt, t), t) for p in (ffdnet, blind)]
            best = ffdnet.denoise(xt / ab.sqrt(), extra * level)
        scores[extra] = [_psnr(x, volume) for x in (*x0, best)]
    assert scores[4.0][0] > scores[4.0][1] + 1.5  # the estimate sees the extra noise
    assert scores[4.0][0] > scores[4.0][2] - 0.7
    assert scores[1.0][0] > scores[1.0][1] - 1.0


def test_lora_adapts_the_inner_convolutions_of_a_plain_cnn(ffdnet) -> None:
    net = DenoiserPrior().net
    lora = LoRA(net, rank=2)
    adapted = set(net.lora_layers())
    assert len(adapted) == 10 and "model.0" not in adapted and "model.22" not in adapted
    lora.train(True)
    trainable = {id(p) for p in lora.parameters()}
    assert len(trainable) == 10 * 3  # two factors and the bias of each adapted convolution
    assert all(p.requires_grad == (id(p) in trainable) for p in net.parameters())


def test_the_lora_bypass_gives_the_base_network_and_restores_the_adapter(ffdnet) -> None:
    prior = DenoiserPrior(ffdnet.config)
    prior.net.load_state_dict(ffdnet.net.state_dict())
    x = torch.rand(1, 32, 32)
    with torch.no_grad():
        base = prior.denoise(x, 0.05)
        lora = LoRA(prior.net, rank=2, generator=torch.Generator().manual_seed(0))
        for p in lora.parameters():  # a trained-looking adapter: every factor and bias moved
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        adapted = prior.denoise(x, 0.05)
        state = lora.state()
        with lora.bypassed():
            bypassed = prior.denoise(x, 0.05)
        after = prior.denoise(x, 0.05)
    assert not torch.allclose(adapted, base, atol=1e-3)
    torch.testing.assert_close(bypassed, base)
    torch.testing.assert_close(after, adapted)
    for name, value in lora.state().items():
        torch.testing.assert_close(value, state[name])


@pytest.mark.parametrize("relative", [0.02, 0.1])
def test_the_noise_estimate_of_a_sinogram_finds_white_noise(relative) -> None:
    volume = _phantom(2, 128)
    op = ParallelBeamCT(128, n_views=30)
    clean = op.forward(torch.from_numpy(volume))
    sigma = relative * float(clean.abs().mean())
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    assert estimate_noise_std(noisy) == pytest.approx(sigma, rel=0.2)
    assert estimate_noise_std(clean) < 0.002 * float(clean.abs().mean())


def test_the_noise_estimate_of_k_space_reads_the_outer_measured_entries() -> None:
    mask = uniform1d_mask((64, 64), accel=2, seed=0)
    op = MRIOperator(mask)
    k = op.forward(torch.zeros(2, 64, 64, dtype=torch.complex64))
    gen = torch.Generator().manual_seed(0)
    noise = torch.complex(torch.randn(k.shape, generator=gen), torch.randn(k.shape, generator=gen))
    k = (k + 0.1 / 2**0.5 * noise) * op.mask
    assert estimate_noise_std(k) == pytest.approx(0.1, rel=0.1)


def _ct_problem(method: str = "dds", **settings) -> tuple[Problem, ParallelBeamCT]:
    volume = _phantom(2, 32)
    op = ParallelBeamCT(32, n_views=12)
    y = op.forward(torch.from_numpy(volume))
    y = y + 0.3 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))
    cfg = ReconConfig(method=method, **settings).resolved("ct", "cpu")
    return Problem(op, y, cfg), op


def test_the_noise_aware_weight_is_the_map_weight_and_its_solution_the_map_estimate() -> None:
    p, op = _ct_problem(prior_error=0.5, noise_std=0.3, cg_iters=300)
    assert p.noise == pytest.approx(0.3 / p.scale)
    level = 0.1
    gamma = p.proximal_weight(level, None)
    assert gamma == pytest.approx(p.norm * (0.5 * level / p.noise) ** 2)
    x0 = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(1))
    x = p.consistency(x0, slice(None), "cg", 1, level)
    # ∇[‖x − x̂₀‖²/(2ζ²s²) + ‖Ax − y‖²/(2σ²)] = 0 at the MAP estimate.
    gradient = (x - x0) / (0.5 * level) ** 2 + op.adjoint(op.forward(x) - p.y) / p.noise**2
    assert float(gradient.norm()) < 1e-3 * float(((x - x0) / (0.5 * level) ** 2).norm())
    # Low noise level: the estimate stays at x̂₀; without ζ, the plain normal equations.
    assert float((p.consistency(x0, slice(None), "cg", 1, 1e-4) - x0).abs().max()) < 1e-3
    assert _ct_problem(noise_std=0.3, prior_error=0.0)[0].proximal_weight(level, None) is None
    assert p.proximal_weight(10.0, 1.0) == 1.0


def test_the_3d_tv_consistency_smooths_within_slices_where_mbir_does_not() -> None:
    p, _ = _ct_problem(
        method="dds-tv", mbir_anchor=0.0, admm_lam=0.05, admm_rho=0.05, prior_error=0.0
    )
    rough = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(2))
    z_only = p.consistency(rough, slice(None), "mbir", 20)
    both = p.consistency(rough, slice(None), "tv", 20)

    def in_plane_tv(x: torch.Tensor) -> float:
        return float(x.diff(dim=1).abs().sum() + x.diff(dim=2).abs().sum())

    assert in_plane_tv(both) < 0.9 * in_plane_tv(z_only)


def test_the_tv_consistency_weighs_tv_by_its_share_of_admm_tvs_own_weight() -> None:
    """On CT with λ automatic, the TV consistency is ADMM-TV with ``tv_share`` times ADMM-TV's
    own noise-aware λ (share 1: exactly ADMM-TV's), and the noise-aware ζ is the
    consistency's: 8 with 3D TV, 2 with mbir's TV along z (whose share is 1), and with CG 8
    under a denoiser prior, 2 under a diffusion prior."""
    rough = torch.rand(2, 32, 32, generator=torch.Generator().manual_seed(2))
    for share in (1.0, 0.5):
        p, op = _ct_problem(method="dds-tv", tv_share=share, prior_error=0.0)
        assert p.cfg.admm_lam is None
        got = p.consistency(rough, slice(None), "tv", 3)
        lam = share * default_tv_weight(op, p.y, rough, p.norm, p.known_noise)
        expected = admm_tv(op, p.y, lam=lam, n_iter=3, n_cg=p.cfg.admm_cg, x0=rough, norm=p.norm)
        torch.testing.assert_close(got, expected)
        if share == 1.0:
            own = admm_tv(
                op,
                p.y,
                n_iter=3,
                n_cg=p.cfg.admm_cg,
                x0=rough,
                norm=p.norm,
                noise_std=p.known_noise,
            )
            torch.testing.assert_close(got, own)
    auto = {m: _ct_problem(method=m)[0].cfg for m in ("dds", "dds-tv", "d3ip-mbir")}
    assert {m: c.prior_error for m, c in auto.items()} == {"dds": 2, "dds-tv": 8, "d3ip-mbir": 2}
    # CG trusts a denoiser prior less: it denoises at the level it estimates from each slice
    denoiser = {
        m: ReconConfig(method=m).resolved("ct", "cpu", denoiser=True).prior_error
        for m in ("dds", "d3ip", "dds-tv", "d3ip-mbir")
    }
    assert denoiser == {"dds": 8, "d3ip": 8, "dds-tv": 8, "d3ip-mbir": 2}
    assert ReconConfig(method="dds").resolved("mri", "cpu", denoiser=True).prior_error == 0
    assert (auto["dds-tv"].tv_share, auto["d3ip-mbir"].tv_share) == (0.5, 1.0)


def test_a_reconstruction_with_the_denoiser_prior_beats_its_pseudo_inverse(ffdnet) -> None:
    volume = _phantom(2, 48)
    op = ParallelBeamCT(48, n_views=24)
    y = op.forward(torch.from_numpy(volume))
    y = y + 0.01 * y.abs().mean() * torch.randn(y.shape, generator=torch.Generator())
    cfg = ReconConfig(method="dds", nfe=6, prior_error=1.0, preview_every=0)
    finished = run_to_end(reconstruct(y, op, cfg, prior=ffdnet))
    fbp = op.pinv(y)
    assert finished.volume.shape == volume.shape
    assert _psnr(torch.from_numpy(finished.volume), volume) > _psnr(fbp, volume) + 3
    assert image_scale(torch.from_numpy(finished.volume)) > 0.5


def test_on_noiseless_mri_the_level_schedule_beats_the_diffusion_priors_linear_beta(
    ffdnet,
) -> None:
    """The same network walked by its geometric levels (down to 0.001) and by the diffusion
    priors' linear β (down to 0.01, at their timestep power 5): on a brain the last steps
    below 0.01 restore detail that the sampled k-space does not hold (+1.7 dB here)."""
    volume = mni_brain_volume(128, 2, first_slice=44)
    op = MRIOperator(poisson_disc_mask((128, 128), 4, seed=0))
    y = op.forward(torch.from_numpy(volume).to(torch.complex64))
    cfg = ReconConfig(method="dds", nfe=12, preview_every=0)
    level = run_to_end(reconstruct(y, op, cfg, prior=ffdnet)).volume
    linear = DenoiserPrior(ffdnet.config)
    linear.net.load_state_dict(ffdnet.net.state_dict())
    linear.schedule = VPSchedule(n_steps=1000)
    assert float(linear.schedule.sigma(0)) == pytest.approx(0.01, rel=1e-3)
    power5 = replace(cfg, timestep_power=5.0, start_level=10.0)
    beta = run_to_end(reconstruct(y, op, power5, prior=linear.eval())).volume
    assert _psnr(torch.from_numpy(level), volume) > _psnr(torch.from_numpy(beta), volume) + 1


def test_on_noiseless_mri_starting_at_the_aliasing_level_beats_the_whole_schedule(
    ffdnet,
) -> None:
    """DDS with FFDNet on ×4 MRI, the same 12 steps from the automatic start level (7× the
    zero-filled image's noise estimate, the image noised to it) and from the top of the
    schedule (0.5): the steps spent below the aliasing set more of the detail."""
    volume = mni_brain_volume(128, 2, first_slice=44)
    op = MRIOperator(poisson_disc_mask((128, 128), 4, seed=0))
    y = op.forward(torch.from_numpy(volume).to(torch.complex64))
    cfg = ReconConfig(method="dds", nfe=12, preview_every=0)
    events: list = []
    low = run_to_end(reconstruct(y, op, cfg, prior=ffdnet), events.append).volume
    start = next(e for e in events if isinstance(e, Started)).settings["start_level"]
    pinv = op.pinv(y)
    aliasing = estimate_noise_std(pinv.real) / image_scale(pinv)
    assert start == pytest.approx(7 * aliasing, rel=1e-4) and 0.005 < start < 0.2
    top = run_to_end(reconstruct(y, op, replace(cfg, start_level=10.0), prior=ffdnet)).volume
    assert _psnr(torch.from_numpy(low), volume) > _psnr(torch.from_numpy(top), volume) + 0.3


def test_on_noiseless_mri_a_weak_tv_and_a_nearly_hard_consistency_beat_diffusionmbirs(
    ffdnet,
) -> None:
    """DDS + 3D TV with FFDNet on ×8 MRI of two MNI slices, 12 steps: the MRI defaults of
    the TV consistency (a weak TV, a slight pull towards x̂₀) against DiffusionMBIR's
    stronger TV and looser consistency (λ 1e-3, μ 0.2), which smooth the detail the prior
    and the data set."""
    volume = mni_brain_volume(128, 2, first_slice=44)
    op = MRIOperator(poisson_disc_mask((128, 128), 8, seed=0))
    y = op.forward(torch.from_numpy(volume).to(torch.complex64))
    cfg = ReconConfig(method="dds-tv", nfe=12, preview_every=0)
    weak = run_to_end(reconstruct(y, op, cfg, prior=ffdnet)).volume
    mbir = replace(cfg, admm_lam=1e-3, mbir_anchor=0.2)
    strong = run_to_end(reconstruct(y, op, mbir, prior=ffdnet)).volume
    assert _psnr(torch.from_numpy(weak), volume) > _psnr(torch.from_numpy(strong), volume) + 0.5


def test_d3ip_with_the_denoiser_adapts_above_its_horizon_and_denoises_with_the_base_below(
    ffdnet,
) -> None:
    volume = _phantom(2, 32)
    op = ParallelBeamCT(32, n_views=16)
    y = op.forward(torch.from_numpy(volume))
    cfg = ReconConfig(method="d3ip", nfe=4, adapt_steps=2, k_slices=1, preview_every=0)
    events: list = []
    finished = run_to_end(reconstruct(y, op, cfg, prior=ffdnet), events.append)
    adapted = [e.t for e in events if isinstance(e, Adapted)]
    assert adapted and min(adapted) >= 600  # the automatic horizon of a denoiser prior
    assert finished.adaptation and all(t >= 600 for t in finished.adaptation)
    assert np.isfinite(finished.volume).all()
    assert _psnr(torch.from_numpy(finished.volume), volume) > _psnr(op.pinv(y), volume)


def test_the_training_output_of_a_perfect_denoiser_is_the_drawn_noise() -> None:
    """Tweedie inverted: a denoiser that returns the clean image gives ε̂ = ε exactly, down to
    the lowest level 0.001, where ``1 − ᾱ`` = 1e-6 is below float32's resolution of ᾱ."""
    prior = DenoiserPrior()
    x0 = torch.from_numpy(_phantom(3, 16))
    prior.denoise = lambda y, s: x0  # the ideal denoiser, for these x0
    noise = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 500, 999])
    ab = prior.schedule.ab(t, x0)[:, None, None, None]
    std = prior.schedule.noise_std[t][:, None, None, None]
    noisy = torch.cat([ab.sqrt() * x0[:, None] + std * noise, torch.zeros(3, 2, 16, 16)], 1)
    eps = prior.training_output(noisy, t)
    assert torch.allclose(eps, prior.target(x0[:, None], noise, ab), atol=2e-3)


def _tiny_denoiser_prior(path) -> DenoiserPrior:
    """A random FFDNet of width 16 and depth 4, saved at ``path`` with a licence line."""
    from napari_ddip.prior.denoiser import DenoiserPriorConfig
    from napari_ddip.prior.ffdnet import FFDNetConfig
    from napari_ddip.prior.weights import save_prior

    torch.manual_seed(0)
    prior = DenoiserPrior(DenoiserPriorConfig(ffdnet=FFDNetConfig(width=16, depth=4)))
    save_prior(prior, path, info={"licence": "MIT (test)"})
    return prior


def test_fine_tuning_a_denoiser_prior_lowers_its_denoising_loss(tmp_path) -> None:
    from napari_ddip.prior.train import images_from_arrays, train_prior
    from tiny import tiny_train_config

    base = tmp_path / "base.safetensors"
    _tiny_denoiser_prior(base)
    images = images_from_arrays([_phantom(6, 64, seed=4)])
    cfg = tiny_train_config(40, augment=True, pool_refresh=0, lr=1e-3, name="ft")
    path = train_prior(cfg, tmp_path / "ft", device="cpu", images=images, init=base)
    rows = (tmp_path / "ft" / "loss.csv").read_text().splitlines()[1:]
    losses = [float(row.split(",")[1]) for row in rows]
    assert losses[-1] < 0.7 * losses[0]
    tuned = load_prior(path)
    assert isinstance(tuned, DenoiserPrior) and tuned.config == load_prior(base).config
    card = path.with_suffix(".md").read_text()
    assert "Licence: MIT (test), as the base prior" in card and "6 user images" in card


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_bf16_fine_tuning_runs_the_rows_below_the_level_floor_in_fp32(
    tmp_path, monkeypatch, precision
) -> None:
    """As in a reconstruction, a training row at a noise level below ``BF16_MIN_LEVEL`` runs
    in float32: its noise (down to 0.001) is smaller than bfloat16's rounding of the image.
    Recorded per network pass: the rows' levels and whether bfloat16 autocast was on."""
    from napari_ddip.precision import BF16_MIN_LEVEL
    from napari_ddip.prior.train import images_from_arrays, train_prior
    from tiny import tiny_train_config

    base = tmp_path / "base.safetensors"
    _tiny_denoiser_prior(base)
    passes: list[tuple[list[float], bool]] = []
    training_output = DenoiserPrior.training_output

    def record(self, noisy, t):
        passes.append(([self.schedule.level(int(i)) for i in t], torch.is_autocast_enabled("cpu")))
        return training_output(self, noisy, t)

    monkeypatch.setattr(DenoiserPrior, "training_output", record)
    images = images_from_arrays([_phantom(4, 32, seed=6)])
    cfg = tiny_train_config(3, batch_size=16, patch_sizes=(32,), patch_probs=(1.0,))
    path = train_prior(replace(cfg, precision=precision), tmp_path / "ft", "cpu", images, base)
    levels = [s for rows, _ in passes for s in rows]
    assert len(levels) == 3 * 16 and {s < BF16_MIN_LEVEL for s in levels} == {True, False}
    if precision == "fp32":  # one float32 pass per step
        assert len(passes) == 3 and not any(bf16 for _, bf16 in passes)
    else:  # per step a bfloat16 pass above the floor and a float32 one below
        assert len(passes) == 6
        assert all(bf16 == (min(rows) >= BF16_MIN_LEVEL) for rows, bf16 in passes)
        assert all(bf16 == (max(rows) >= BF16_MIN_LEVEL) for rows, bf16 in passes)
    losses = [float(row.split(",")[1]) for row in (tmp_path / "ft" / "loss.csv").read_text()
              .splitlines()[1:]]  # fmt: skip
    assert np.isfinite(losses).all() and load_prior(path).config == load_prior(base).config


def test_fine_tuning_leaves_the_learning_rate_to_the_kind_of_base_prior(tmp_path) -> None:
    import json

    from napari_ddip.prior.train import finetune_config, images_from_arrays, train_prior

    images = images_from_arrays([_phantom(2, 32, seed=5)])
    cfg = finetune_config(steps=1, batch_size=2, patch_sizes=(32,), patch_probs=(1.0,))
    assert cfg.lr is None
    path = train_prior(cfg, tmp_path / "ffdnet", "cpu", images, init="ffdnet-color")
    info = json.loads(path.with_suffix(".json").read_text())["info"]
    assert info["train_config"]["lr"] == 1e-5 and info["train_config"]["whole_image"] is False
    assert "base_channels" not in info["train_config"]  # FFDNet's architecture, not a UNet's
    assert info["licence"].startswith("MIT")
    # one step of 1e-5 moves no weight by more than AdamW's step
    base, tuned = load_prior("ffdnet-color").net, load_prior(path).net
    for a, b in zip(base.parameters(), tuned.parameters(), strict=True):
        assert (a - b).abs().max() <= 1.01e-5
