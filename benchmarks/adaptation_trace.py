"""How much the adaptation moves the measurement loss, step by step, on the quality-table data.

Runs one adaptive method on the MNI152 slab of ``recon_table.py`` and records every
:class:`~napari_ddip.recon.Adapted` event: at each sampling timestep ``t`` the ``L`` values of
the adaptation loss ``‖y − A·DC(x̂₀(θ))‖² / ‖y‖²``. Printed per timestep: the loss at the first
and the last of the ``L`` steps and the relative drop; saved as JSON with the PSNR of the
result, and the noise floor ``‖y − y_clean‖² / ‖y‖²`` (the same measurement simulated without
noise): a loss at or below it is fitting the measurement's noise. Beside it the floor that
the engine's discrepancy stop estimates from the measurement alone (``discrepancy``; with
``--set discrepancy=0`` the adaptation runs through the whole horizon). A small drop means
the LoRA can barely change what the measurement sees after data consistency. D3IP draws K new slices
at every step; with ``--set k_slices=`` the slice count every step sees the same slices, so
the first and last values compare like with like (and with the noise floor).

What the adaptation changes in the result: the same method is run again with ``adapt_steps=0``
(the LoRA stays zero, the same seeded draws: the sampler without adaptation), and per ring of
in-plane frequency (``metrics.band_errors``, 10⁻⁴ per voxel) the error of both and the energy
of their difference are printed and saved.

    python benchmarks/adaptation_trace.py --modality ct --size 128 --slices 8 \
        --set nfe=20 --set k_slices=8 [--set lr=1e-2 --tag _lr-1e-2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from napari_ddip.io import Measurement
from napari_ddip.methods import Request, parse_settings, prepare, reconstruct_measurement
from napari_ddip.metrics import band_errors, score
from napari_ddip.operators import operator_from_measurement
from napari_ddip.recon import Adapted
from napari_ddip.recon.problem import Problem
from recon_table import measurement, reference_volume


def estimated_floor(m: Measurement, request: Request) -> float | None:
    """The noise's share of the loss over every slice as the engine estimates it for the
    discrepancy stop (``Problem.noise_share``; None where the noise is not known)."""
    assert request.config is not None
    cfg = request.config.resolved(m.kind, "cpu")
    problem = Problem(operator_from_measurement(m), torch.as_tensor(m.data), cfg)
    return problem.noise_share(slice(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=("ct", "mri"), default="ct")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--method", default="d3ip")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="diffusion setting"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = parser.parse_args()
    overrides = parse_settings(args.set)
    volume = reference_volume("mni152", args.size, args.slices)
    m = measurement(volume, args.modality, 8.0, args.seed)
    clean = measurement(volume, args.modality, 8.0, args.seed, noise=0.0).data
    floor = float(np.sum(np.abs(m.data - clean) ** 2) / np.sum(np.abs(m.data) ** 2))
    print(f"noise floor of the loss: {floor:.3e}")
    estimated = estimated_floor(m, prepare(m, args.method, overrides))
    if estimated is not None:
        print(f"the floor the discrepancy stop estimates (all slices): {estimated:.3e}")
    steps = []
    print("| t | first | last | drop |\n|---|---|---|---|")

    def on_event(event: object) -> None:
        if isinstance(event, Adapted) and event.losses:
            first, last = event.losses[0], event.losses[-1]
            steps.append({"t": event.t, "losses": list(event.losses)})
            print(f"| {event.t} | {first:.3e} | {last:.3e} | {1 - last / first:.1%} |", flush=True)

    settings = {"preview_every": 0} | overrides
    result = reconstruct_measurement(m, args.method, settings, seed=args.seed, on_event=on_event)
    s = score(result.volume, volume)
    print(f"PSNR {s.psnr:.2f} dB, SSIM {s.ssim:.3f}")
    base = reconstruct_measurement(m, args.method, settings | {"adapt_steps": 0}, seed=args.seed)
    b = score(base.volume, volume)
    print(f"without adaptation (adapt_steps 0): PSNR {b.psnr:.2f} dB, SSIM {b.ssim:.3f}")
    adapted = band_errors(result.volume, volume)
    rings = {
        "reference": adapted.reference,
        "error_adapted": adapted.error,
        "error_without": band_errors(base.volume, volume).error,
        "change": band_errors(result.volume, base.volume).error,
    }
    edges = adapted.edges
    print("| ring (cycles/pixel) | " + " | ".join(rings) + " |")
    print("|---" * (len(rings) + 1) + "|")
    for k, edge in enumerate(edges):
        upper = f"{edges[k + 1]:g}" if k + 1 < len(edges) else ""
        values = " | ".join(f"{1e4 * v[k]:.4f}" for v in rings.values())
        print(f"| {edge:g}–{upper} | {values} |")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"adaptation_{args.modality}_{args.size}_{args.slices}{args.tag}.json"
    record = {
        "method": args.method,
        "settings": overrides,
        "psnr": s.psnr,
        "ssim": s.ssim,
        "noise_floor": floor,
        "estimated_noise_floor": estimated,
        "without_adaptation": {"psnr": b.psnr, "ssim": b.ssim},
        "rings": {"edges": edges, **rings},
    }
    horizon = result.provenance["settings"]
    print(f"adapted at {len(steps)} timesteps (t {horizon['t_min']}–{horizon['t_max']})")
    path.write_text(json.dumps(record | {"steps": steps}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
