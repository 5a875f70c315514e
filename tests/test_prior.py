"""The prior: phantoms, schedule, UNet shapes, patch tiling, weights, training."""

from __future__ import annotations

import functools
import itertools
import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_ddip.prior.model import (
    CPU_PIXELS_PER_CALL,
    PREDICTIONS,
    DiffusionPrior,
    PriorConfig,
    call_batch,
)
from napari_ddip.prior.patches import random_patches, tiled_apply, with_coordinates
from napari_ddip.prior.phantoms import (
    EllipseDistribution,
    _draw_ellipses,
    _rasterize_dense,
    _rasterize_in_boxes,
    ellipse_phantoms,
    ellipsoid_volume,
)
from napari_ddip.prior.schedule import LevelSchedule, VPSchedule
from napari_ddip.prior.train import (
    TrainConfig,
    TrainingOutputError,
    images_from_arrays,
    learning_rate,
    train_prior,
    training_timesteps,
)
from napari_ddip.prior.train import pool as pool_module
from napari_ddip.prior.unet import UNet, UNetConfig
from napari_ddip.prior.weights import PriorLoadError, load_prior, save_prior
from tiny import tiny_train_config

TINY = UNetConfig(base_channels=8, channel_mults=(1, 2), attention_levels=(1,))


def test_phantoms_are_seeded_normalised_and_ellipse_like() -> None:
    a = ellipse_phantoms(32, 128, rng=3)
    b = ellipse_phantoms(32, 128, rng=3)
    assert a.shape == (32, 128, 128) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.equal(a, ellipse_phantoms(32, 128, rng=4))
    flat = a.flatten(1)
    assert torch.allclose(flat.amax(1), torch.ones(32)) and flat.min() == 0
    # Ellipses cluster within radius 0.4745 + axes: corners are background, centre mostly not.
    assert a[:, :8, :8].abs().max() == 0
    foreground = (a > 0).float().mean().item()
    assert 0.1 < foreground < 0.5
    centre = (a[:, 48:80, 48:80] > 0).float().mean().item()
    assert centre > 0.8


def test_whole_grid_rasterizer_draws_the_same_phantom_as_the_box_loop() -> None:
    # The GPU's way of drawing a phantom, run here on the CPU against the CPU's way.
    rng = np.random.default_rng(7)
    for shape in [(96, 96), (45, 70)]:
        ellipses = _draw_ellipses(rng, EllipseDistribution())
        image, foreground = _rasterize_in_boxes(ellipses, *shape)
        dense_image, dense_foreground = _rasterize_dense(ellipses, *shape, torch.device("cpu"))
        assert foreground.any() and np.array_equal(dense_foreground.numpy(), foreground)
        np.testing.assert_allclose(dense_image.numpy(), image, atol=1e-12)


def test_ellipsoid_volume_shape_range_and_continuity() -> None:
    v = ellipsoid_volume((32, 48, 40), seed=1)
    assert v.shape == (32, 48, 40) and v.dtype == np.float32
    assert v.min() == 0 and v.max() == pytest.approx(1.0)
    # Neighbouring slices are more alike than slices 8 apart.
    near = np.abs(v[9:24] - v[8:23]).mean()
    far = np.abs(v[16:31] - v[8:23]).mean()
    assert near < 0.5 * far


def test_schedule_maths() -> None:
    s = VPSchedule()
    ab = s.alpha_bar
    assert ab.shape == (1000,)
    assert ab[0].item() == pytest.approx(1 - 1e-4)
    assert torch.all(ab[1:] < ab[:-1])
    expected_last = np.prod(1 - np.linspace(1e-4, 0.02, 1000))
    assert ab[-1].item() == pytest.approx(expected_last, rel=1e-4)
    x0 = torch.rand(3, 8, 8)
    eps = torch.randn(3, 8, 8)
    xt = s.add_noise(x0, eps, torch.tensor([700, 700, 700]))
    assert torch.allclose(s.tweedie(xt, eps, 700), x0, atol=1e-5)
    assert s.sampling_timesteps(50)[:3] == [980, 960, 940] and s.sampling_timesteps(50)[-1] == 0
    with pytest.raises(ValueError, match="NFE"):
        s.sampling_timesteps(0)


def test_a_level_schedule_spaces_its_noise_levels_geometrically() -> None:
    s = LevelSchedule(n_steps=101, level_min=1e-3, level_max=0.1)
    ab = s._alpha_bar()  # float64: in the float32 ᾱ the level 0.001 is kept to about 1 %
    levels = ((1 - ab) / ab).sqrt()
    assert levels[0].item() == pytest.approx(1e-3, rel=1e-9)
    assert levels[-1].item() == pytest.approx(0.1, rel=1e-9)
    assert levels[50].item() == pytest.approx(1e-2, rel=1e-9)  # the geometric mean
    ratios = levels[1:] / levels[:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, 100 ** (1 / 100)), rtol=1e-9)
    used = s.sigma(torch.arange(101)) / s.ab(torch.arange(101)).sqrt()
    assert torch.allclose(used, levels.float(), rtol=0.01)
    x0, eps = torch.rand(2, 8, 8), torch.randn(2, 8, 8)
    xt = s.add_noise(x0, eps, torch.tensor([60, 60]))
    assert torch.allclose(s.tweedie(xt, eps, 60), x0, atol=1e-5)
    with pytest.raises(ValueError, match="level_min < level_max"):
        LevelSchedule(level_min=0.5, level_max=0.1)


def test_sampling_from_a_start_level_spends_every_step_below_it() -> None:
    s = LevelSchedule(n_steps=1000, level_min=1e-3, level_max=0.5)
    for t in (0, 250, 628, 999):
        assert s.timestep_at(s.level(t)) == t
    top = s.timestep_at(0.05)  # 0.001·500^(t/999) ≤ 0.05 ⇔ t ≤ 999·ln 50 / ln 500 = 628.9
    assert top == 628 and s.level(top) <= 0.05 < s.level(top + 1)
    steps = s.sampling_timesteps(50, 1.0, start_level=0.05)
    assert len(steps) == 50 and steps[0] == 628 and steps[-1] == 0
    assert all(a > b for a, b in itertools.pairwise(steps))
    # a start above the highest level is the full schedule; below the lowest there is no room
    assert s.sampling_timesteps(50, 1.0, start_level=10.0) == s.sampling_timesteps(50)
    with pytest.raises(ValueError, match="do not fit below"):
        s.sampling_timesteps(20, 1.0, start_level=1.01e-3)


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0, 7.0])
@pytest.mark.parametrize("nfe", [1, 2, 20, 50, 333, 1000])
def test_timestep_spacing_is_strictly_descending_from_the_same_top(nfe: int, power: float) -> None:
    s = VPSchedule()
    steps = s.sampling_timesteps(nfe, power)
    assert len(steps) == nfe and steps[0] == 1000 // nfe * (nfe - 1) and steps[-1] == 0
    assert all(a > b for a, b in itertools.pairwise(steps))
    uniform = s.sampling_timesteps(nfe)
    assert sum(t < 100 for t in steps) >= sum(t < 100 for t in uniform)  # packed near t = 0


def test_quadratic_spacing_follows_its_formula() -> None:
    steps = VPSchedule().sampling_timesteps(20, 2.0)  # 950·(i/19)²
    assert steps[:3] == [950, 853, 761] and steps[-4:] == [24, 11, 3, 0]
    with pytest.raises(ValueError, match="power"):
        VPSchedule().sampling_timesteps(20, 0.5)


@pytest.mark.parametrize("shape", [(37, 41), (64, 64), (17, 96)])
def test_unet_and_prior_accept_any_size(shape: tuple[int, int]) -> None:
    net = UNet(TINY)
    x = torch.randn(2, 3, *shape)
    assert net(x, torch.tensor([10, 900])).shape == (2, 1, *shape)
    for patch in (None, 16):
        prior = DiffusionPrior(PriorConfig(unet=TINY, patch_size=patch)).eval()
        with torch.no_grad():
            out = prior.eps(torch.rand(3, *shape), 500, torch.Generator().manual_seed(0))
        assert out.shape == (3, *shape)


@pytest.mark.parametrize("patch", [None, 16])
def test_network_calls_in_chunks_give_the_same_noise_estimate(patch: int | None) -> None:
    prior = DiffusionPrior(PriorConfig(unet=TINY, patch_size=patch)).eval()
    x = torch.rand(3, 40, 72)
    with torch.no_grad():
        outs = [
            prior.eps(x, 300, torch.Generator().manual_seed(0), patch_batch=size)
            for size in (None, 1, 5, 1000)
        ]
    for out in outs[1:]:
        assert torch.allclose(out, outs[0], atol=1e-5)
    with torch.no_grad():
        assert call_batch(torch.zeros(500, 3, 64, 64)) == CPU_PIXELS_PER_CALL // 64**2
        assert call_batch(torch.zeros(2, 3, 512, 512)) == 1
    assert call_batch(torch.zeros(500, 3, 64, 64)) == 500  # with gradients: one call


def test_patch_tiling_matches_whole_image_for_position_independent_network() -> None:
    torch.manual_seed(0)
    pointwise = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 1), torch.nn.SiLU(), torch.nn.Conv2d(6, 1, 1)
    )
    images = torch.rand(2, 45, 70)
    with torch.no_grad():
        whole = pointwise(with_coordinates(images))[:, 0]
        for offset in [(0, 0), (5, 11), (15, 15)]:
            tiled = tiled_apply(pointwise, images, 16, offset)
            assert torch.allclose(tiled, whole, atol=1e-6), offset


def test_random_patches_carry_matching_coordinates() -> None:
    images = torch.arange(32 * 32, dtype=torch.float32).reshape(1, 32, 32).repeat(64, 1, 1)
    patches = random_patches(images, 8, torch.Generator().manual_seed(1))
    assert patches.shape == (64, 3, 8, 8)
    # Inside the image, pixel value i·32 + j must agree with the coordinate channels.
    y, x = patches[:, 1], patches[:, 2]
    rows = ((y + 1) * 32 - 1) / 2
    cols = ((x + 1) * 32 - 1) / 2
    inside = (rows >= 0) & (rows < 32) & (cols >= 0) & (cols < 32)
    assert inside.any() and (~inside).any()
    assert torch.allclose(patches[:, 0][inside], (rows * 32 + cols)[inside], atol=1e-3)
    assert torch.all(patches[:, 0][~inside] == 0)


def test_v_prediction_target_and_noise_recovery_agree() -> None:
    """A network that outputs its training target exactly gives back the true noise and x₀."""
    prior = DiffusionPrior(PriorConfig(unet=TINY, patch_size=None, prediction="v"))
    x0, noise = torch.rand(2, 8, 8), torch.randn(2, 8, 8)
    for t in (0, 300, 999):
        ab = prior.schedule.ab(t)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        eps = prior.eps_from_output(prior.target(x0, noise, ab), xt, t)
        assert torch.allclose(eps, noise, atol=1e-5)
        if t < 999:  # at t = 999, √ᾱ ≈ 0.006 amplifies float32 rounding
            assert torch.allclose(prior.schedule.tweedie(xt, eps, t), x0, atol=1e-3)
    eps_prior = DiffusionPrior(PriorConfig(unet=TINY))
    assert torch.equal(eps_prior.target(x0, noise, ab), noise)
    # Configs written before the option existed are ε-prediction priors.
    legacy = {k: v for k, v in PriorConfig().to_dict().items() if k != "prediction"}
    assert PriorConfig.from_dict(legacy).prediction == "eps"
    with pytest.raises(ValueError, match="prediction"):
        PriorConfig(prediction="x0")


class _Oracle(torch.nn.Module):
    """A "network" that records its input and returns a fixed output."""

    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output, self.seen = output, None

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.seen = x[:, 0]
        return self.output[:, None]


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_data_scale_puts_the_network_in_its_training_units(prediction: str) -> None:
    """With data scale s the network sees ``√ᾱ·s·x₀ + √(1−ᾱ)·ε`` (what training feeds it) for
    ``x_t = √ᾱ·x₀ + σ_t·ε`` in image units, and its training target gives back ε and x₀."""
    scale = 3.0
    config = PriorConfig(unet=TINY, patch_size=None, prediction=prediction, data_scale=scale)
    prior = DiffusionPrior(config)
    x0, noise, t = torch.rand(2, 8, 8), torch.randn(2, 8, 8), 300
    ab = prior.schedule.ab(t)
    sigma = prior.schedule.sigma(t)
    assert float(sigma) == pytest.approx(float((1 - ab).sqrt()) / scale)
    xt = prior.schedule.add_noise(x0, noise, torch.full((2,), t))
    prior.net = _Oracle(prior.target(scale * x0, noise, ab))
    x0_hat, eps = prior.tweedie(xt, t)
    torch.testing.assert_close(prior.net.seen, ab.sqrt() * scale * x0 + (1 - ab).sqrt() * noise)
    torch.testing.assert_close(eps, noise, atol=1e-5, rtol=0)
    torch.testing.assert_close(x0_hat, x0, atol=1e-5, rtol=0)
    torch.testing.assert_close(prior.schedule.implied_eps(xt, x0, t), noise, atol=1e-5, rtol=0)
    # Configs written before the option existed have data scale 1.
    legacy = {k: v for k, v in PriorConfig().to_dict().items() if k != "data_scale"}
    assert PriorConfig.from_dict(legacy).data_scale == 1.0
    with pytest.raises(ValueError, match="data_scale"):
        PriorConfig(data_scale=0.0)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_a_diffusion_prior_denoises_at_the_timestep_of_the_noise_level(prediction: str) -> None:
    """``denoise(x₀ + s·ε, s)`` runs the network at the timestep whose level ``s_t`` is
    nearest ``s``, on ``x_t = √ᾱ_t·(x₀ + s_t·ε)`` (engine units, data scale 3), and a network
    that predicts its target exactly gives back ``x₀``."""
    scale = 3.0
    config = PriorConfig(unet=TINY, patch_size=None, prediction=prediction, data_scale=scale)
    prior = DiffusionPrior(config)
    x0, noise, t = torch.rand(2, 8, 8), torch.randn(2, 8, 8), 123
    level = float(prior.schedule.levels[t])
    assert prior.schedule.nearest_timestep(level * 1.001) == t
    assert prior.schedule.nearest_timestep(level * 0.999) == t
    assert prior.schedule.nearest_timestep(0.0) == 0
    ab = prior.schedule.ab(t)
    prior.net = _Oracle(prior.target(scale * x0, noise, ab))
    x0_hat = prior.denoise(x0 + level * noise, level * 1.001)
    torch.testing.assert_close(prior.net.seen, ab.sqrt() * scale * x0 + (1 - ab).sqrt() * noise)
    torch.testing.assert_close(x0_hat, x0, atol=1e-4, rtol=0)


def test_weights_round_trip_and_refuse_bad_files(tmp_path) -> None:
    prior = DiffusionPrior(PriorConfig(unet=TINY, patch_size=16))
    path = save_prior(prior, tmp_path / "p", info={"steps": 0}, card="# card\n")
    assert path.with_suffix(".md").read_text() == "# card\n"
    loaded = load_prior(path)
    x = torch.rand(1, 24, 24)
    g = torch.Generator
    with torch.no_grad():
        assert torch.equal(
            prior.eps(x, 300, g().manual_seed(0)), loaded.eps(x, 300, g().manual_seed(0))
        )
    # Corrupted weights: checksum mismatch.
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(PriorLoadError, match="corrupted"):
        load_prior(path)
    # Not a safetensors file at all (no checksum recorded).
    meta = json.loads(path.with_suffix(".json").read_text())
    meta.pop("sha256")
    path.with_suffix(".json").write_text(json.dumps(meta))
    path.write_bytes(b"this is not a weights file")
    with pytest.raises(PriorLoadError, match="not a readable safetensors"):
        load_prior(path)
    # Weights that do not match the config.
    other = save_prior(DiffusionPrior(PriorConfig(unet=TINY)), tmp_path / "q")
    meta = json.loads(other.with_suffix(".json").read_text())
    meta["config"]["unet"]["base_channels"] = 16
    meta.pop("sha256")
    other.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(PriorLoadError, match="does not match its config"):
        load_prior(other)
    with pytest.raises(PriorLoadError, match="not found"):
        load_prior(tmp_path / "missing")
    # An existing file that is not a prior is named as such, not as missing.
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(PriorLoadError, match=r"notes.txt is not a prior: a prior is a NAME\."):
        load_prior(tmp_path / "notes.txt")


def _losses(out) -> list[float]:
    lines = (out / "loss.csv").read_text().splitlines()[1:]
    return [float(line.split(",")[1]) for line in lines]


def test_learning_rate_schedules() -> None:
    constant = TrainConfig(steps=100, lr=1e-3, warmup_steps=10)
    assert learning_rate(constant, 0) == pytest.approx(1e-4)
    assert learning_rate(constant, 9) == learning_rate(constant, 99) == pytest.approx(1e-3)
    cosine = replace(constant, lr_schedule="cosine")
    assert learning_rate(cosine, 10) == pytest.approx(1e-3)
    assert learning_rate(cosine, 55) == pytest.approx(5e-4)  # halfway through the decay
    assert learning_rate(cosine, 100) == pytest.approx(0.0, abs=1e-12)
    rates = [learning_rate(cosine, s) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(rates))
    with pytest.raises(ValueError, match="lr_schedule"):
        train_prior(replace(cosine, lr_schedule="step"), "unused", device="cpu")


def test_training_timesteps_follow_their_power_law() -> None:
    gen = torch.Generator().manual_seed(0)
    uniform = training_timesteps(200_000, 1000, 1.0, gen)
    low = training_timesteps(200_000, 1000, 2.0, gen)
    for t in (uniform, low):
        assert t.dtype == torch.long and t.min() == 0 and t.max() == 999
    # P(t < s) = (s / T)^(1/p): 5 % below 50 when uniform, √0.05 = 22.4 % with power 2.
    assert float((uniform < 50).double().mean()) == pytest.approx(0.05, abs=0.003)
    assert float((low < 50).double().mean()) == pytest.approx(0.05**0.5, abs=0.005)
    assert float((low < 500).double().mean()) == pytest.approx(0.5**0.5, abs=0.005)
    with pytest.raises(ValueError, match="at least 1"):
        training_timesteps(4, 1000, 0.5, gen)


def _assert_same_weights(path_a: Path, path_b: Path) -> None:
    a, b = load_prior(path_a), load_prior(path_b)
    for (ka, va), (_, vb) in zip(
        a.net.state_dict().items(), b.net.state_dict().items(), strict=True
    ):
        assert torch.allclose(va, vb, atol=1e-6), ka


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_training_lowers_the_loss_and_resumes_exactly(tmp_path, schedule) -> None:
    torch.manual_seed(0)
    _cfg = functools.partial(tiny_train_config, lr_schedule=schedule, warmup_steps=5)
    path = train_prior(_cfg(60), tmp_path / "a", device="cpu")
    losses = _losses(tmp_path / "a")
    assert len(losses) == 6 and losses[-1] < 0.6 * losses[0]
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["info"]["steps"] == 60 and "wall_seconds" in meta["info"]
    assert "Wall time" in path.with_suffix(".md").read_text()
    # Stopping at 30 then resuming to 60 gives the same weights as one run.
    stop_at_30 = lambda step, steps, loss: step < 30  # noqa: E731
    train_prior(_cfg(60), tmp_path / "b", device="cpu", progress=stop_at_30)
    assert json.loads((tmp_path / "b" / "checkpoint" / "progress.json").read_text())["step"] == 30
    # A run killed after logging past its last checkpoint: the resumed run repeats those steps.
    with (tmp_path / "b" / "loss.csv").open("a") as f:
        f.write("40,9.0,1.0\n")
    resumed = train_prior(_cfg(60), tmp_path / "b", device="cpu")
    assert _losses(tmp_path / "b") == pytest.approx(losses, abs=1e-6)
    _assert_same_weights(path, resumed)


def test_a_run_killed_while_saving_resumes_from_a_whole_checkpoint(tmp_path) -> None:
    path = train_prior(tiny_train_config(30), tmp_path / "a", device="cpu")
    stop_at_20 = lambda step, steps, loss: step < 20  # noqa: E731
    train_prior(tiny_train_config(30), tmp_path / "b", device="cpu", progress=stop_at_20)
    ckpt = tmp_path / "b" / "checkpoint"
    # Killed during the next save, between its two renames: the complete checkpoint is
    # checkpoint.old, and checkpoint.tmp holds a half-written one.
    ckpt.replace(ckpt.with_name("checkpoint.old"))
    half = ckpt.with_name("checkpoint.tmp")
    half.mkdir()
    (half / "model.safetensors").write_bytes(b"\0" * 100)
    logged = []
    resumed = train_prior(
        tiny_train_config(30),
        tmp_path / "b",
        device="cpu",
        progress=lambda step, steps, loss: logged.append(step),
    )
    assert logged == [30]  # resumed at step 20, not started again
    assert _losses(tmp_path / "b") == pytest.approx(_losses(tmp_path / "a"), abs=1e-6)
    assert sorted(p.name for p in (tmp_path / "b").glob("checkpoint*")) == ["checkpoint"]
    _assert_same_weights(path, resumed)


def test_v_prediction_training_lowers_the_loss(tmp_path) -> None:
    torch.manual_seed(0)
    path = train_prior(tiny_train_config(60, prediction="v"), tmp_path / "v", device="cpu")
    losses = _losses(tmp_path / "v")
    assert losses[-1] < 0.6 * losses[0]
    assert load_prior(path).config.prediction == "v"


def test_bf16_mixed_precision_training_tracks_float32(tmp_path) -> None:
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        cfg = tiny_train_config(60, precision=precision)
        runs[precision] = train_prior(cfg, tmp_path / precision, device="cpu")
    fp32, bf16 = _losses(tmp_path / "fp32"), _losses(tmp_path / "bf16")
    assert bf16[-1] < 0.6 * bf16[0]
    assert bf16 == pytest.approx(fp32, rel=0.02)  # measured: within 0.15 %
    assert bf16 != pytest.approx(fp32, rel=1e-4)  # the passes did run in bfloat16
    assert json.loads(runs["bf16"].with_suffix(".json").read_text())["info"]["precision"] == "bf16"
    assert "network passes in bf16" in runs["bf16"].with_suffix(".md").read_text()
    assert all(v.dtype == torch.float32 for v in load_prior(runs["bf16"]).net.state_dict().values())
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        train_prior(tiny_train_config(1, precision="fp16"), tmp_path / "fp16", device="cpu")
    with pytest.raises(ValueError, match="tf32 needs a CUDA device"):
        train_prior(tiny_train_config(1, precision="tf32"), tmp_path / "tf32", device="cpu")


def test_a_continued_prior_keeps_its_training_image_size(tmp_path, monkeypatch) -> None:
    """Continuing a whole-image prior trained on 32² phantoms draws 32² phantoms again, not the
    configuration's default size (which would train it on images it was never meant for)."""
    sizes = []

    def recording_phantoms(n, size, *args, **kwargs):
        sizes.append(size)
        return ellipse_phantoms(n, size, *args, **kwargs)

    base = train_prior(
        tiny_train_config(2, whole_image=True, image_size=32), tmp_path / "base", device="cpu"
    )
    monkeypatch.setattr(pool_module, "ellipse_phantoms", recording_phantoms)
    path = train_prior(
        tiny_train_config(2, image_size=64), tmp_path / "more", device="cpu", init=base
    )
    assert sizes and set(sizes) == {32}
    assert load_prior(path).config.image_size == 32
    assert (
        json.loads(path.with_suffix(".json").read_text())["info"]["train_config"]["image_size"]
        == 32
    )


def test_training_draws_phantoms_with_the_configured_ellipse_count(tmp_path, monkeypatch) -> None:
    """``ellipses`` sets the phantom distribution of the training pool, and the model card says
    so; fewer than two ellipses are refused (the dimmest region joins the background)."""
    distributions = []

    def recording_phantoms(n, size, rng, distribution, device):
        distributions.append(distribution)
        return ellipse_phantoms(n, size, rng, distribution, device)

    monkeypatch.setattr(pool_module, "ellipse_phantoms", recording_phantoms)
    path = train_prior(tiny_train_config(2, ellipses=5), tmp_path / "five", device="cpu")
    assert distributions and set(distributions) == {EllipseDistribution(5.0, 5)}
    info = json.loads(path.with_suffix(".json").read_text())["info"]
    assert info["train_config"]["ellipses"] == 5
    assert "min(Poisson(5), 5) ellipses" in info["data"]
    assert "Poisson(5)" in path.with_suffix(".md").read_text()
    with pytest.raises(ValueError, match="at least 2 ellipses"):
        train_prior(tiny_train_config(2, ellipses=1), tmp_path / "one", device="cpu")
    assert not (tmp_path / "one").exists()


def test_finetuning_from_a_few_images(tmp_path) -> None:
    base = train_prior(tiny_train_config(10), tmp_path / "base", device="cpu")
    volume = ellipsoid_volume((10, 64, 64), seed=2) * 300.0 + 20.0
    images = images_from_arrays([volume])
    assert images.shape == (10, 64, 64) and images.min() >= 0 and images.max() <= 1
    cfg = tiny_train_config(40, augment=True, pool_refresh=0, lr=1e-3, name="ft")
    path = train_prior(cfg, tmp_path / "ft", device="cpu", images=images, init=base)
    losses = _losses(tmp_path / "ft")
    assert losses[-1] < losses[0]
    assert json.loads(path.with_suffix(".json").read_text())["info"]["data"] == "10 user images"
    with pytest.raises(ValueError, match="share one in-plane shape"):
        images_from_arrays([np.eye(8), np.eye(9)])  # not constant: those are refused


def test_fine_tuning_images_are_scaled_whatever_their_units_and_refused_when_flat() -> None:
    rng = np.random.default_rng(0)
    # Any units reach [0, 1]: CT in Hounsfield units, uint16 MRI, and tiny values (1e-10).
    for volume in (
        rng.uniform(-1000, 3000, (2, 16, 24)),
        rng.integers(0, 65535, (2, 16, 24)).astype(np.uint16),
        rng.random((16, 24)) * 1e-10,
    ):
        images = images_from_arrays([volume])
        assert images.min() == 0 and images.max() == 1
    # A constant image or an all-zero volume would train on a blank canvas; a volume that is
    # almost all one value would become a binary mask: refused, naming the array.
    with pytest.raises(ValueError, match=r"b\.npy: every value is 7; a constant image"):
        images_from_arrays([rng.random((8, 8)), np.full((8, 8), 7.0)], names=["a.npy", "b.npy"])
    with pytest.raises(ValueError, match="fine-tuning image 1: every value is 0"):
        images_from_arrays([np.zeros((3, 8, 8))])
    sparse = np.zeros((4, 32, 32))
    sparse[1, 10:12, 10:12] = 5.0
    with pytest.raises(ValueError, match="99 % of its values are 0"):
        images_from_arrays([sparse])


def test_a_finished_run_run_again_leaves_its_prior_as_it_is(tmp_path) -> None:
    out = tmp_path / "run"
    path = train_prior(tiny_train_config(10), out, device="cpu")
    card = path.with_suffix(".md")
    card.write_text(card.read_text() + "\n## Scores\n(added by a benchmark)\n")
    files = {p: p.read_bytes() for p in (path, path.with_suffix(".json"), card, out / "loss.csv")}
    calls = []
    again = train_prior(
        tiny_train_config(10), out, device="cpu", progress=lambda *a: calls.append(a)
    )
    assert again == path and not calls
    assert all(p.read_bytes() == data for p, data in files.items())
    # More steps go on from the checkpoint.
    train_prior(tiny_train_config(12), out, device="cpu", progress=lambda *a: calls.append(a))
    assert (
        calls[-1][0] == 12
        and json.loads(path.with_suffix(".json").read_text())["info"]["steps"] == 12
    )


def test_a_checkpoint_resumes_only_the_run_that_wrote_it(tmp_path) -> None:
    out = tmp_path / "run"
    train_prior(tiny_train_config(10), out, device="cpu")
    weights = (out / "tiny.safetensors").read_bytes()
    # Another network or other phantoms in the same folder stop before anything is trained.
    for change, setting in ((dict(base_channels=16), "unet"), (dict(ellipses=6), "ellipses")):
        with pytest.raises(TrainingOutputError, match=f"{setting} differ"):
            train_prior(tiny_train_config(20, **change), out, device="cpu")
    assert (out / "tiny.safetensors").read_bytes() == weights
    assert json.loads((out / "checkpoint" / "progress.json").read_text())["step"] == 10
    # Finished weights whose checkpoint is gone are not replaced by a new run either ...
    shutil.rmtree(out / "checkpoint")
    with pytest.raises(TrainingOutputError, match=r"tiny\.safetensors exists"):
        train_prior(tiny_train_config(10), out, device="cpu")
    # ... unless told to: then it trains afresh, and its checkpoint says what it trained on.
    train_prior(tiny_train_config(10, ellipses=6), out, device="cpu", overwrite=True)
    identity = json.loads((out / "checkpoint" / "progress.json").read_text())["identity"]
    assert identity["ellipses"] == 6 and identity["unet"]["base_channels"] == 8
    # Fine-tuning on other images does not resume a fine-tuning on these (whose pool it
    # would restore, training on the old images).
    base = out / "tiny.safetensors"
    volume = ellipsoid_volume((4, 64, 64), seed=2)
    cfg = tiny_train_config(10, augment=True, pool_refresh=0, name="ft")
    train_prior(cfg, tmp_path / "ft", device="cpu", images=images_from_arrays([volume]), init=base)
    other = images_from_arrays([volume[::-1].copy()])
    with pytest.raises(TrainingOutputError, match="images differ"):
        train_prior(cfg, tmp_path / "ft", device="cpu", images=other, init=base)
