"""Preset *preview* on the CPU: wall time, when the first time-left estimate comes and how far
off it is, and when the first preview comes, for the Reconstruct widget's default method and
for D3IP on the CT sample (``napari_ddip.samples.ct_phantom_sample``, its middle slices as the
widget's preview preset picks them).

Each method runs in a fresh process, as a user's first run would (prior loaded, the network
call measured). The first ETA is the first time left the run reports (the estimate, at its
``Started`` event); its error is against the time that was actually left then.

    OMP_NUM_THREADS=1 python benchmarks/preset_preview.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def measure(method: str) -> dict:
    """One preset-preview run of ``method`` on the CT sample's middle slices."""
    import torch

    from napari_ddip.methods import METHODS as REGISTRY
    from napari_ddip.methods import prepare, run
    from napari_ddip.presets import PRESETS, apply_preset
    from napari_ddip.recon import Preview, Progress, Started
    from napari_ddip.samples import ct_phantom_sample
    from napari_ddip.viewer.jobs import measurement_slab

    preset = PRESETS["preview"]
    m = ct_phantom_sample().measurement
    z = preset.slice_range(m.data.shape[0])
    settings = apply_preset(preset.name, REGISTRY[method], m.kind)
    marks: dict[str, float] = {}
    start = time.perf_counter()

    def on_event(event: object) -> None:
        now = time.perf_counter() - start
        eta = getattr(event, "estimate", None) if isinstance(event, Started) else None
        if isinstance(event, Progress):
            eta = event.eta
            marks["units"] = event.total
        if eta is not None and "first_eta_s" not in marks:
            marks["first_eta_s"], marks["first_eta_value_s"] = now, eta
        if isinstance(event, Started):
            marks["estimate_s"] = event.estimate or 0.0
        if isinstance(event, Preview) and "first_preview_s" not in marks:
            marks["first_preview_s"] = now

    request = prepare(measurement_slab(m, *z), method, settings, "cpu")
    result = run(request, on_event=on_event)
    wall = time.perf_counter() - start
    left = wall - marks["first_eta_s"]
    return {
        "method": method,
        "slices": list(z),
        "settings": {k: result.provenance["settings"][k] for k in settings},
        "torch_threads": torch.get_num_threads(),
        "wall_s": round(wall, 2),
        "estimate_s": round(marks["estimate_s"], 2),
        "first_eta_delay_s": round(marks["first_eta_s"], 2),
        "first_eta_s": round(marks["first_eta_value_s"], 2),
        "first_eta_error": round(marks["first_eta_value_s"] / left - 1, 3),
        "first_preview_s": round(marks["first_preview_s"], 2),
        "first_preview_fraction": round(marks["first_preview_s"] / wall, 3),
        "units": marks["units"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a run in its own process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    from napari_ddip.viewer.reconstruct_widget import DEFAULT_METHOD

    rows = []
    for method in (DEFAULT_METHOD, "d3ip"):
        command = [sys.executable, __file__, "--one", method]
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "preset_preview_ct_cpu.json"
    path.write_text(json.dumps({"preset": "preview", "device": "cpu", "runs": rows}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
