"""Reusable adaptations: D3IP on volume B started cold vs warm from volume A's saved LoRA.

Volumes A and B are two different slabs of the MNI152 template (128², 2 mm), each measured as
60-view CT with 1 % noise. D3IP adapts on A and its LoRA states are saved
(``save_adaptation``); B is then reconstructed cold (default L) and warm-started from A's file
with fewer adaptation steps (and with none). Prints PSNR and wall time of each.

    OMP_NUM_THREADS=1 python benchmarks/warm_start.py --slices 4 --nfe 10
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from napari_ddip.metrics import score
from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.noise import add_gaussian_noise
from napari_ddip.recon import ReconConfig, reconstruct, run_to_end
from napari_ddip.recon.adaptation import load_adaptation, save_adaptation
from napari_ddip.samples import mni_brain_volume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--nfe", type=int, default=10)
    parser.add_argument("--warm-steps", type=int, nargs="+", default=[3, 0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    slab = mni_brain_volume(128, 32)
    n = args.slices
    volumes = {"A": slab[4 : 4 + n], "B": slab[20 : 20 + n]}
    op = ParallelBeamCT(128, n_views=60)
    measured = {
        k: add_gaussian_noise(op.forward(torch.from_numpy(v)), 0.01, seed=1)
        for k, v in volumes.items()
    }

    def run(name: str, cfg: ReconConfig, warm=None) -> tuple[float, float, object]:
        start = time.perf_counter()
        result = run_to_end(reconstruct(measured[name], op, cfg, device="cpu", warm_start=warm))
        seconds = time.perf_counter() - start
        return score(result.volume, volumes[name]).psnr, seconds, result

    rows = []
    _, _, source = run("A", ReconConfig(method="d3ip", nfe=args.nfe))
    with tempfile.TemporaryDirectory() as tmp:
        path = save_adaptation(Path(tmp) / "a.safetensors", source.adaptation, {"volume": "A"})
        size_kib = path.stat().st_size / 1024
        states, _ = load_adaptation(path)
    psnr, seconds, _ = run("B", ReconConfig(method="d3ip", nfe=args.nfe))
    rows.append({"start": "cold", "L": 10, "psnr": psnr, "seconds": seconds})
    for steps in args.warm_steps:
        cfg = ReconConfig(method="d3ip", nfe=args.nfe, adapt_steps=steps)
        psnr, seconds, _ = run("B", cfg, states)
        rows.append({"start": "warm from A", "L": steps, "psnr": psnr, "seconds": seconds})
    print(f"adaptation file: {size_kib:.0f} KiB")
    print("| start | L | PSNR on B (dB) | seconds |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['start']} | {r['L']} | {r['psnr']:.2f} | {r['seconds']:.0f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "warm_start.json").write_text(json.dumps({"kib": size_kib, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
