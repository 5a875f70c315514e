"""What bfloat16 costs a prior's one-step denoising, by noise level.

Axial MNI152 slices (the tuning slab: 8 slices from slice 44 at 2 mm, 128²) are noised to
``x_t`` at the timesteps of the prior's schedule nearest to each level ``s`` (image units,
data range 1) and denoised by Tweedie's formula, ``x̂₀ = (x_t − σ_t ε̂) / √ᾱ_t``, with the
network pass in float32 and in bfloat16 (the engine's ``network_precision``; the same noise
draw for both). Writes ``bf16_levels.json``: per level the PSNR of the noisy input and of
both estimates. The engine's ``BF16_MIN_LEVEL`` (``napari_ddip.precision``) is read off this
table and the sampler runs of BENCHMARKS ("precision=bf16").

    OMP_NUM_THREADS=1 python benchmarks/bf16_levels.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from napari_ddip.precision import network_precision
from napari_ddip.prior.weights import load_prior
from napari_ddip.samples import mni_brain_volume
from prior_scores import psnr

LEVELS = (0.001, 0.003, 0.01, 0.02, 0.03, 0.1)


@torch.no_grad()
def level_scores(prior_name: str, seed: int) -> dict[str, dict[str, float]]:
    """``{level: {"timestep", "level", "noisy", "fp32", "bf16", "bf16_seconds",
    "fp32_seconds"}}`` (PSNR in dB) on the tuning slab."""
    prior = load_prior(prior_name)
    schedule, device = prior.schedule, torch.device("cpu")
    clean = torch.from_numpy(mni_brain_volume(128, 8, voxel_mm=2, first_slice=44))
    out = {}
    for level in LEVELS:
        t = schedule.timestep_at(level)
        noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(seed))
        noisy = schedule.add_noise(clean, noise, torch.full((len(clean),), t))
        row = {"timestep": t, "level": schedule.level(t)}
        row["noisy"] = psnr(noisy / schedule.ab(t).sqrt(), clean)
        for precision in ("fp32", "bf16"):
            start = time.perf_counter()
            with network_precision(precision, device):
                eps = prior.eps(noisy, t, torch.Generator().manual_seed(seed)).float()
            row[f"{precision}_seconds"] = time.perf_counter() - start
            row[precision] = psnr(schedule.tweedie(noisy, eps, t), clean)
        out[f"{level:g}"] = row
        print(
            f"s {row['level']:.4f}: noisy {row['noisy']:.2f}  fp32 {row['fp32']:.2f}  "
            f"bf16 {row['bf16']:.2f} dB",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="ffdnet-color")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = parser.parse_args()
    scores = level_scores(args.prior, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "prior": args.prior,
        "images": "MNI152 slices 44-51 at 2 mm, 128²",
        "levels": scores,
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    (args.out / f"bf16_levels{args.tag}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
