"""Fine-tuning on a handful of slices without memorising (Hu et al. 2024's small-data setting).

Ten axial slices of the MNI152 T1 template (1 mm, 256², the inferior part of the slab: every
4th slice of the first 40) are written to a file and given to ``napari-ddip finetune-prior``
(its defaults: 500 steps, the base prior's learning rate, flips and 90° rotations, starting
from ``--prior``). The base and the fine-tuned prior are then scored by one-step Tweedie
denoising PSNR (as in ``prior_scores.py``; per image and over the brain's pixels) on the ten
training slices and on eight held-out slices of the superior part (at least 24 mm from any
training slice). Fine-tuning works when the held-out score rises; it memorises when the
training score rises much more than the held-out one.

    python benchmarks/finetune_prior.py --out benchmarks/results/finetune
    python benchmarks/finetune_prior.py --prior ffdnet-color \
        --out benchmarks/results/finetune-ffdnet --work runs/finetune-ffdnet

``--precision bf16`` fine-tunes in bfloat16 (BENCHMARKS, "Training in bf16"). ``--scan b0``
fine-tunes instead on the last two of the ten slices of dipy's b0 scan (one real
subject) and holds out the other eight (the slices ``quality_table.py`` reconstructs): slices
of the very scan to be reconstructed, about 32 mm apart.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from napari_ddip.prior.train import images_from_arrays
from napari_ddip.prior.weights import load_prior, read_prior_meta
from napari_ddip.samples import dwi_b0_volume, mni_brain_volume
from prior_scores import TIMESTEPS, denoising_scores

TRAIN_SLICES = slice(0, 40, 4)
HELD_OUT_SLICES = slice(64, 128, 8)
#: ``--scan``: the volume, its training and held-out slices, the fine-tuned prior's name.
SCANS = {
    "mni": (lambda: mni_brain_volume(256, 128, voxel_mm=1), TRAIN_SLICES, HELD_OUT_SLICES),
    "b0": (lambda: dwi_b0_volume(10), slice(8, 10), slice(0, 8)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="default", help="prior to fine-tune")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--lr", default="auto", help="learning rate (auto: the base prior's)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/finetune"))
    parser.add_argument("--work", type=Path, default=Path("runs/finetune-mni"), help="run folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scan", choices=SCANS, default="mni", help="the slices (docstring)")
    parser.add_argument("--precision", default="fp32", help="finetune-prior's --precision")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    load, train_slices, held_out_slices = SCANS[args.scan]
    volume = load()
    train, held_out = volume[train_slices], volume[held_out_slices]
    name = f"{args.scan}-{len(train)}"
    images = args.work / "train_slices.npy"
    np.save(images, train)
    command = [
        sys.executable, "-m", "napari_ddip", "finetune-prior", str(images),
        "--out", str(args.work), "--name", name, "--prior", args.prior,
        "--steps", str(args.steps), "--lr", args.lr, "--precision", args.precision,
        "--device", "cpu", "--quiet",
    ]  # fmt: skip
    subprocess.run(command, check=True)
    tuned_path = args.work / f"{name}.safetensors"
    # The run's own training time (a finished run started again trains nothing).
    seconds = read_prior_meta(tuned_path)["info"]["wall_seconds"]
    # Each set scaled as finetune-prior scales its input (0.5/99.5 percentiles).
    sets = {
        "training slices": images_from_arrays([train]),
        "held-out slices": images_from_arrays([held_out]),
    }
    results = {
        "finetune_seconds": seconds,
        "command": shlex.join(["python", *command[1:]]),
        "scores": {},
    }
    for name, prior in (("base", args.prior), ("fine-tuned", tuned_path)):
        scores = denoising_scores(load_prior(prior).eval(), sets, args.seed)
        results["scores"][name] = scores
    print(f"fine-tuned on {len(train)} slices in {seconds:.0f} s")
    print("| slices | t | base → fine-tuned (dB) | foreground: base → fine-tuned (dB) |")
    print("|---|---|---|---|")
    for data in sets:
        for t in TIMESTEPS:
            cells = []
            for key in ("tweedie", "tweedie_foreground"):
                base = results["scores"]["base"][data][t][key]
                tuned = results["scores"]["fine-tuned"][data][t][key]
                cells.append(f"{base:.2f} → {tuned:.2f} ({tuned - base:+.2f})")
            print(f"| {data} | {t} | {cells[0]} | {cells[1]} |")
    (args.out / "scores.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out / 'scores.json'}")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
