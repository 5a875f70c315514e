"""Network calls in cache-sized chunks on the CPU against one call over every patch.

Reconstructs the quality table's MNI152 measurement (``recon_table.py``) with one diffusion
method, alternating two child processes per repeat: one with
``napari_ddip.prior.model.call_batch`` forced to "all inputs in one call", one as shipped
(about ``CPU_PIXELS_PER_CALL`` pixels per call without gradients). Prints each run's wall time
and peak resident memory and whether the two volumes are identical, and saves them as JSON.

    python benchmarks/network_chunks.py --modality ct --size 256 --slices 8 --method dds --nfe 5
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

MODES = ("one call", "chunks")


def child(args: argparse.Namespace) -> None:
    """One reconstruction in this process; prints ``{"seconds", "peak_rss_mib"}`` as JSON and
    saves the volume to ``args.volume_out``."""
    import napari_ddip.prior.model as prior_model
    from napari_ddip.methods import reconstruct_measurement
    from recon_table import measurement, reference_volume

    if args.child == "one call":
        prior_model.call_batch = lambda inputs: inputs.shape[0]
    m = measurement(reference_volume("mni152", args.size, args.slices), args.modality, 8.0, 0)
    start = time.perf_counter()
    volume = reconstruct_measurement(m, args.method, {"nfe": args.nfe}, seed=0).volume
    seconds = time.perf_counter() - start
    np.save(args.volume_out, volume)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": round(seconds, 1), "peak_rss_mib": round(peak)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=("ct", "mri"), default="ct")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--method", default="dds")
    parser.add_argument("--nfe", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--volume-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    volumes: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for mode in MODES:
                path = Path(tmp) / f"{mode.replace(' ', '_')}.npy"
                command = [sys.executable, __file__, *sys.argv[1:], "--child", mode]
                done = subprocess.run(
                    [*command, "--volume-out", str(path)],
                    check=True,
                    stdout=subprocess.PIPE,  # the child's errors reach the terminal
                    text=True,
                )
                runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
                volumes[mode] = np.load(path)
                print(f"{mode}: {runs[mode][-1]}", flush=True)
    identical = bool(np.array_equal(volumes["one call"], volumes["chunks"]))
    print(f"identical volumes: {identical}")
    info = {
        "modality": args.modality,
        "shape": [args.slices, args.size, args.size],
        "method": args.method,
        "nfe": args.nfe,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "runs": runs,
        "identical": identical,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"chunks_{args.modality}_{args.size}_{args.slices}_{args.method}.json"
    (args.out / name).write_text(json.dumps(info, indent=2))
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
