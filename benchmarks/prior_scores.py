"""Score diffusion priors: one-step Tweedie denoising PSNR and unconditional samples.

Denoising: clean images ``x`` (held-out ellipse phantoms, a seed training never uses, and axial
slices of the MNI152 T1 template, real anatomy) are noised to ``x_t`` at the noise levels
``σ_t/√ᾱ_t`` of several timesteps ``t`` of the reference schedule (data scale 1; a prior with
another data scale is scored at its timestep of the nearest level); the score is the PSNR
(data range 1) of the Tweedie estimate ``x̂₀`` against ``x``, averaged over images, next to
the PSNR of the noisy input ``x_t / √ᾱ_t``. Samples: a PNG grid of unconditional
samples (DDS updates, 50 steps) and, to put a number on "they look like ellipse phantoms", their
mean intensity, foreground fraction (pixels above 0.05) and flat fraction (foreground pixels
whose gradient is below 0.005: phantoms are piecewise constant) and thin fraction (foreground
pixels in bright structures under 5 px wide: the needles) next to those of held-out phantoms
of the same size. Cost: seconds per 256² slice of one network call on this machine.

    python benchmarks/prior_scores.py --prior ellipse-patch-s --out benchmarks/results/prior
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from skimage.morphology import disk, white_tophat

from napari_ddip.prior.phantoms import ellipse_phantoms
from napari_ddip.prior.schedule import Schedule, VPSchedule
from napari_ddip.prior.train import model_card
from napari_ddip.prior.weights import Prior, load_prior, read_prior_meta, resolve_prior_path
from napari_ddip.recon.sampler import sample_unconditional
from napari_ddip.samples import mni_brain_volume

TIMESTEPS = (20, 50, 100, 200, 400)
HELD_OUT_SEED = 20261122


def test_images(n: int, size: int) -> dict[str, torch.Tensor]:
    """``{"ellipses": (n, size, size), "mni152": (n, size, size)}`` in [0, 1]."""
    phantoms = ellipse_phantoms(n, size, np.random.default_rng(HELD_OUT_SEED))
    brain = mni_brain_volume(256, 64, voxel_mm=1)[:: 64 // n][:n]
    if size != 256:
        brain = torch.nn.functional.interpolate(
            torch.from_numpy(brain.copy())[:, None], size=(size, size), mode="area"
        )[:, 0].numpy()
    return {"ellipses": torch.as_tensor(phantoms), "mni152": torch.from_numpy(brain.copy())}


def image_statistics(images: torch.Tensor) -> dict[str, float]:
    """Mean intensity, foreground fraction (pixels > 0.05), flat fraction and thin fraction of
    images ``(B, H, W)``. Flat: the share of foreground pixels whose forward-difference
    gradient is below 0.005 — ellipse phantoms are piecewise constant, so most of their
    foreground is flat. Thin: the share of foreground pixels in bright structures under 5 px
    wide (white top-hat with a disk of radius 2 above 0.02) — the phantoms' needles and small
    ellipses, but also the edges of a fine texture, so it does not tell needles from texture
    (BENCHMARKS, "Prior scores and samples"); compare images of one size, the priors' 256²."""
    gy = images[:, 1:, :-1] - images[:, :-1, :-1]
    gx = images[:, :-1, 1:] - images[:, :-1, :-1]
    foreground = images[:, :-1, :-1] > 0.05
    flat = (gx.square() + gy.square()).sqrt() < 0.005
    arrays = images.double().numpy()
    thin = np.stack([white_tophat(a, disk(2)) for a in arrays]) > 0.02
    whole_foreground = arrays > 0.05
    return {
        "mean": float(images.mean()),
        "foreground_fraction": float((images > 0.05).float().mean()),
        "flat_fraction": float((flat & foreground).sum() / foreground.sum().clamp(min=1)),
        "thin_fraction": float((thin & whole_foreground).sum() / max(whole_foreground.sum(), 1)),
    }


def psnr(estimate: torch.Tensor, clean: torch.Tensor) -> float:
    """Mean over images of ``10·log10(1 / MSE)`` (data range 1)."""
    mse = (estimate - clean).pow(2).flatten(1).mean(1)
    return float((10 * torch.log10(1 / mse)).mean())


@torch.no_grad()
def denoising_scores(
    prior: Prior, images: dict[str, torch.Tensor], seed: int
) -> dict[str, dict[int, dict[str, float]]]:
    """``{dataset: {t: {"noisy": dB, "tweedie": dB, "tweedie_foreground": dB}}}`` for the
    reference timesteps ``t`` (``TIMESTEPS``, the prior scored at ``matching_timestep``):
    ``tweedie`` is the mean of the images' PSNRs, so a nearly empty image weighs as much as a
    full one; ``tweedie_foreground`` pools the squared error over the pixels of the clean
    images above 0.02 (the object, without the background)."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for name, clean in images.items():
        generator = torch.Generator().manual_seed(seed)
        out[name] = {}
        for reference in TIMESTEPS:
            t = matching_timestep(prior.schedule, reference)
            noise = torch.randn(clean.shape, generator=generator)
            noisy = prior.schedule.add_noise(clean, noise, torch.full((len(clean),), t))
            estimate = prior.schedule.tweedie(noisy, prior.eps(noisy, t, generator), t)
            out[name][reference] = {
                "noisy": psnr(noisy / prior.schedule.ab(t).sqrt(), clean),
                "tweedie": psnr(estimate, clean),
                "tweedie_foreground": foreground_psnr(estimate, clean),
            }
    return out


def foreground_psnr(estimate: torch.Tensor, clean: torch.Tensor, threshold: float = 0.02) -> float:
    """``10·log10(1 / MSE)`` over the pixels where ``clean`` exceeds ``threshold``."""
    foreground = clean > threshold
    return float(10 * torch.log10(1 / (estimate - clean)[foreground].pow(2).mean()))


def matching_timestep(schedule: Schedule, reference: int) -> int:
    """The timestep of ``schedule`` whose noise level ``σ_t/√ᾱ_t`` is nearest to that of
    ``reference`` in the diffusion priors' linear-β schedule (the same timestep for a
    diffusion prior of data scale 1; a denoiser prior's geometric levels otherwise)."""
    target = VPSchedule().levels[reference]
    return int((schedule.levels - target).abs().argmin())


@torch.no_grad()
def seconds_per_slice(prior: Prior, size: int = 256, repeats: int = 3) -> float:
    """Median wall time of one network call on one ``size``² slice."""
    x = torch.randn(1, size, size)
    prior.eps(x, 500)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        prior.eps(x, 500)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def update_card(name: str, scores: dict, seconds: float) -> None:
    """Store the denoising scores and the CPU cost in the prior's JSON and model card."""
    path = resolve_prior_path(name)
    meta = read_prior_meta(name)
    tweedie = {
        data: {t: round(s["tweedie"], 2) for t, s in per_t.items()}
        for data, per_t in scores.items()
    }
    threads = torch.get_num_threads()
    meta["info"]["scores"] = {"tweedie_psnr_db_by_timestep": tweedie}
    meta["info"]["cost"] = {f"seconds_per_256_slice_cpu_{threads}_threads": round(seconds, 3)}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    path.with_suffix(".md").write_text(model_card(path.stem, meta["info"]))


def save_grid(path: Path, samples: dict[str, torch.Tensor]) -> None:
    """One row of samples per prior."""
    rows, cols = len(samples), max(len(s) for s in samples.values())
    fig = Figure(figsize=(1.6 * cols, 1.7 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for r, (name, images) in enumerate(samples.items()):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_axis_off()
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title(name, fontsize=9, loc="left")
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", nargs="+", default=["default"], help="names or paths")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/prior"))
    parser.add_argument("--n-images", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--sample-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timestep-power",
        type=float,
        default=1.0,
        help="spacing of the 50 sampling steps of the samples (1 even, 5 the recon default)",
    )
    parser.add_argument(
        "--eta",
        type=float,
        default=0.85,
        help="fresh noise of the samples' DDS updates (0.85 the engine's; 0 is DDIM, which "
        'keeps more of the prior\'s variance: BENCHMARKS, "Prior scores and samples")',
    )
    parser.add_argument(
        "--update-card", action="store_true", help="write the scores into each prior's card"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    images = test_images(args.n_images, args.size)
    phantoms = ellipse_phantoms(
        args.samples, args.sample_size, np.random.default_rng(HELD_OUT_SEED + 1)
    )
    results, grids = {"phantoms": {"sample_statistics": image_statistics(phantoms)}}, {}
    for ref in args.prior:
        prior = load_prior(ref).eval()
        name = Path(ref).stem if ref.endswith(".safetensors") else ref
        scores = denoising_scores(prior, images, args.seed)
        cost = seconds_per_slice(prior)
        grids[name] = sample_unconditional(
            prior,
            args.samples,
            (args.sample_size, args.sample_size),
            eta=args.eta,
            seed=args.seed,
            timestep_power=args.timestep_power,
        )
        results[name] = {
            "denoising_psnr": scores,
            "seconds_per_256_slice_cpu": cost,
            "sample_statistics": image_statistics(grids[name]),
        }
        if args.update_card:
            update_card(ref, scores, cost)
        print(f"\n{name}: one network call on a 256² slice: {cost * 1000:.0f} ms")
        print("| data | t | its t | σ/√ᾱ | noisy (dB) | Tweedie (dB) |\n|---|---|---|---|---|---|")
        levels = prior.schedule.levels
        for data, per_t in scores.items():
            for t, s in per_t.items():
                own = matching_timestep(prior.schedule, t)
                print(
                    f"| {data} | {t} | {own} | {float(levels[own]):.3f} | {s['noisy']:.2f} "
                    f"| {s['tweedie']:.2f} |"
                )
    print("\n| images | mean intensity | foreground fraction | flat fraction | thin fraction |")
    print("|---|---|---|---|---|")
    for name, result in results.items():
        stats = result["sample_statistics"]
        print(
            f"| {name} | {stats['mean']:.4f} | {stats['foreground_fraction']:.3f} "
            f"| {stats['flat_fraction']:.3f} | {stats['thin_fraction']:.3f} |"
        )
    (args.out / "scores.json").write_text(json.dumps(results, indent=2))
    save_grid(args.out / "samples.png", {"held-out phantoms": phantoms, **grids})
    print(f"\nwrote {args.out / 'scores.json'} and {args.out / 'samples.png'}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
