"""Quality table shaped like Table 2 of Chung & Ye 2024, on data that ships in a PyPI wheel.

The reference volume is a slab of axial slices of nilearn's MNI152 T1 template (real anatomy,
an average of 152 brains), at 128² (2 mm) or 256² (1 mm), or with ``--volume dwi`` the slices
of dipy's b0 scan of one subject (128², 2 mm, at most 10 slices). It is measured as 60-view
parallel-beam CT with 1 % Gaussian noise, or as single-coil MRI with a variable-density
Poisson-disc mask (×8 by default), and reconstructed with every method through the same code
path as ``napari-ddip reconstruct``. PSNR (data range of the reference per slice, averaged over
slices) and SSIM per method, with the wall time, are printed as a Markdown table and saved as
JSON.

    python benchmarks/recon_table.py --modality ct --size 128 --slices 8 \
        --methods fbp tv dds dps ddnm ddip d3ip d3ip-mbir d3ip-meta --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from napari_ddip.methods import METHODS, parse_settings, reconstruct_measurement
from napari_ddip.metrics import score
from napari_ddip.samples import dwi_b0_volume, mni_brain_volume
from napari_ddip.simulate import simulate_ct, simulate_mri

#: Relative measurement noise unless ``--noise`` says otherwise.
DEFAULT_NOISE = {"ct": 0.01, "mri": 0.0}


def reference_volume(name: str, size: int, n_slices: int) -> np.ndarray:
    """``(n_slices, size, size)`` in [0, 1]: the MNI152 template (``mni152``) or dipy's b0 scan
    (``dwi``, 128² only)."""
    if name == "dwi":
        if size != 128:
            raise SystemExit("--volume dwi comes at 128² only")
        return dwi_b0_volume(n_slices)
    return mni_brain_volume(size, n_slices, voxel_mm=2 if size <= 128 else 1)


def measurement(
    volume: np.ndarray, modality: str, accel: float, seed: int, noise: float | None = None
):
    """The simulated measurement of ``volume`` (relative noise ``noise``; None: 1 % for CT, none
    for MRI)."""
    level = DEFAULT_NOISE[modality] if noise is None else noise
    if modality == "ct":
        return simulate_ct(volume, n_views=60, noise=level, seed=seed)
    return simulate_mri(volume, accel=accel, mask="poisson", noise=level, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=("ct", "mri"), default="ct")
    parser.add_argument("--volume", choices=("mni152", "dwi"), default="mni152")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--accel", type=float, default=8.0, help="MRI acceleration")
    parser.add_argument(
        "--noise", type=float, default=None, help="relative noise (default 0.01 CT, 0 MRI)"
    )
    parser.add_argument("--methods", nargs="+", default=["fbp", "tv", "dds", "d3ip"])
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="diffusion setting"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = parser.parse_args()
    overrides = parse_settings(args.set)
    volume = reference_volume(args.volume, args.size, args.slices)
    m = measurement(volume, args.modality, args.accel, args.seed, args.noise)
    rows = []
    print(f"{args.modality} {volume.shape} on {args.device}; diffusion settings {overrides}")
    print("| method | PSNR (dB) | SSIM | seconds |\n|---|---|---|---|", flush=True)
    unused = set(overrides) - {key for name in args.methods for key in METHODS[name].defaults}
    if unused:
        raise SystemExit(f"no method of {args.methods} takes the setting(s) {sorted(unused)}")
    for method in args.methods:
        if method == "fbp" and args.modality == "mri":
            method = "zero-filled"
        takes = METHODS[method].defaults  # each method gets the settings it takes
        settings = {key: value for key, value in overrides.items() if key in takes}
        start = time.perf_counter()
        recon = reconstruct_measurement(
            m, method, settings, device=args.device, seed=args.seed
        ).volume
        seconds = time.perf_counter() - start
        s = score(recon, volume)
        rows.append({"method": method, "psnr": s.psnr, "ssim": s.ssim, "seconds": seconds})
        print(f"| {method} | {s.psnr:.2f} | {s.ssim:.3f} | {seconds:.0f} |", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "recon" if args.volume == "mni152" else f"recon_{args.volume}"
    name = f"{stem}_{args.modality}_{args.size}_{args.slices}{args.tag}.json"
    info = {
        "modality": args.modality,
        "volume": args.volume,
        "shape": list(volume.shape),
        "settings": overrides,
        "noise": args.noise,
        "device": args.device,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "rows": rows,
    }
    (args.out / name).write_text(json.dumps(info, indent=2))
    print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
