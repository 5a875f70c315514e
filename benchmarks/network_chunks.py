"""Network calls in cache-sized chunks on the CPU against one call over every patch.

Reconstructs the quality table's MNI152 measurement (``recon_table.py``) with one diffusion
method twice per repeat, alternating: once with ``napari_ddip.prior.model.call_batch`` forced
to "all inputs in one call" and once as shipped (about ``CPU_PIXELS_PER_CALL`` pixels per call
without gradients). Prints the wall times and whether the two volumes are identical, and saves
them as JSON.

    python benchmarks/network_chunks.py --modality ct --size 256 --slices 8 --method dds --nfe 5
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import napari_ddip.prior.model as prior_model
from napari_ddip.methods import reconstruct_measurement
from recon_table import measurement, reference_volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=("ct", "mri"), default="ct")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--method", default="dds")
    parser.add_argument("--nfe", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    volume = reference_volume("mni152", args.size, args.slices)
    m = measurement(volume, args.modality, 8.0, 0)
    shipped = prior_model.call_batch
    modes = {"one call": lambda inputs: inputs.shape[0], "chunks": shipped}
    seconds: dict[str, list[float]] = {name: [] for name in modes}
    volumes: dict[str, np.ndarray] = {}
    try:
        for _ in range(args.repeats):
            for name, rule in modes.items():
                prior_model.call_batch = rule
                start = time.perf_counter()
                volumes[name], _ = reconstruct_measurement(
                    m, args.method, {"nfe": args.nfe}, seed=0
                )
                seconds[name].append(round(time.perf_counter() - start, 1))
                print(f"{name}: {seconds[name][-1]} s", flush=True)
    finally:
        prior_model.call_batch = shipped
    identical = bool(np.array_equal(volumes["one call"], volumes["chunks"]))
    print(f"identical volumes: {identical}")
    info = {
        "modality": args.modality,
        "shape": list(volume.shape),
        "method": args.method,
        "nfe": args.nfe,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "seconds": seconds,
        "identical": identical,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"chunks_{args.modality}_{args.size}_{args.slices}_{args.method}.json"
    (args.out / name).write_text(json.dumps(info, indent=2))
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
