"""Seconds per training step of the prior by network width and precision.

Runs ``train_prior`` on ellipse phantoms with the default recipe (batch 16 of the 16/32/64
patch mixture, v-prediction) for a few steps per (width, precision) pair, from scratch into a
temporary folder, and reads the loop's wall time from the written model card (phantom drawing
for the initial pool is not counted). Prints one line per pair and saves them as JSON.

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py --bases 16 32 --precisions fp32 bf16
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from napari_ddip.prior.train import TrainConfig, train_prior


def seconds_per_step(base: int, precision: str, steps: int, device: str) -> tuple[float, str]:
    """Mean wall seconds of one training step of a base-``base`` prior in ``precision``, and
    the hardware as the model card names it."""
    cfg = TrainConfig(
        steps=steps,
        base_channels=base,
        prediction="v",
        lr=5e-4,
        precision=precision,
        log_every=steps,
        checkpoint_every=10 * steps,
        name="speed",
    )
    with tempfile.TemporaryDirectory() as out:
        path = train_prior(cfg, out, device=device)
        info = json.loads(path.with_suffix(".json").read_text())["info"]
    return info["wall_seconds"] / steps, info["hardware"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bases", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    rows = []
    for base in args.bases:
        for precision in args.precisions:
            s, hardware = seconds_per_step(base, precision, args.steps, args.device)
            rows.append({"base_channels": base, "precision": precision, "seconds_per_step": s})
            print(f"base {base:3d} {precision}: {s:.3f} s/step", flush=True)
    result = {
        "hardware": hardware,
        "torch": torch.__version__,
        "steps": args.steps,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"train_speed_{args.device.replace(':', '')}{args.tag}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
