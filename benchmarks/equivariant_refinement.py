"""Equivariant self-supervision of the FFDNet prior on the volume being reconstructed (a
candidate, not a method of the package yet).

The idea is equivariant imaging's (Chen, Tachella & Davies 2021): anatomy has no preferred
orientation, but a sparse-view CT does (its 60 views), so a rotated volume is measured in
directions the real scan missed. Per volume (CT, 60 views, 1 % noise, as ``quality_table.py``):

1. ``x₁``: the reconstruction by ``--method`` (default DDS + 3D TV, 50 steps, ``ffdnet-color``).
2. For ``--angles`` rotations ``T_g`` by ``g = 360°·(i + ½)/N`` (half-way between multiples
   of the 3° view spacing, where the rotated problem is not the same problem again): simulate
   the sinogram of ``T_g x₁`` (60 views, 1 % noise, a seed per angle) and reconstruct it by the
   same method: ``r_g``.
3. Fine-tune FFDNet (all weights, Adam at ``--lr``, ``--steps`` batches of eight random 64²
   patches of the pairs, random left–right flips) as one denoiser at the fixed level
   ``s₀ = RMS(r_g − T_g x₁)``, mapping ``r_g`` to ``T_g x₁``: it learns to undo what the
   reconstruction does to an image like this one.
4. Output ``f(x₁)`` and its mean over the eight rotations and flips of each slice.

``--modality mri``: ×8 Poisson-disc k-space without noise; each rotated copy is measured under
the measurement's own mask. Nothing of the reference enters 1–4; it only scores. Writes
``equivariant_<volume><tag>.json`` (PSNR / SSIM of ``x₁``, ``f(x₁)`` and the flip-rotation
mean; ``s₀``; seconds per phase).

    OMP_NUM_THREADS=1 python benchmarks/equivariant_refinement.py --volume mni152 \
        --out benchmarks/results/equivariant
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import rotate

from napari_ddip.methods import reconstruct_measurement
from napari_ddip.metrics import score
from napari_ddip.prior.denoiser import DenoiserPrior
from napari_ddip.prior.symmetry import ensemble_mean
from napari_ddip.prior.weights import load_prior
from napari_ddip.simulate import simulate_ct, simulate_mri
from quality_table import VOLUMES, reference
from recon_table import measurement

PATCH, BATCH = 64, 8


def rotated(volume: np.ndarray, degrees: float) -> np.ndarray:
    """Each slice of ``volume (Z, N, N)`` rotated by ``degrees`` (cubic, zero outside)."""
    slices = [rotate(s, degrees, reshape=False, order=3, mode="constant") for s in volume]
    return np.clip(np.stack(slices), 0, None).astype(np.float32)


def fine_tune(
    prior: DenoiserPrior, inputs: torch.Tensor, targets: torch.Tensor, level: float, args
) -> None:
    """Train all of ``prior``'s weights to map patches of ``inputs`` to ``targets`` (both
    ``(B, N, N)``) as a denoiser at ``level``."""
    net = prior.net
    for p in net.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    n, size = inputs.shape[0], inputs.shape[-1]
    for _ in range(args.steps):
        idx = torch.randint(0, n, (BATCH,), generator=gen)
        ys, xs = torch.randint(0, size - PATCH + 1, (2, BATCH), generator=gen)
        corners = list(zip(idx.tolist(), ys.tolist(), xs.tolist(), strict=True))
        a = torch.stack([inputs[i, y : y + PATCH, x : x + PATCH] for i, y, x in corners])
        b = torch.stack([targets[i, y : y + PATCH, x : x + PATCH] for i, y, x in corners])
        if torch.rand((), generator=gen) < 0.5:
            a, b = a.flip(-1), b.flip(-1)
        loss = (prior.denoise(a, level) - b).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for p in net.parameters():
        p.requires_grad_(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volume", choices=VOLUMES, default="mni152")
    parser.add_argument("--modality", choices=("ct", "mri"), default="ct")
    parser.add_argument("--method", default="dds-tv")
    parser.add_argument("--nfe", default="50")
    parser.add_argument("--angles", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/equivariant"))
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    args = parser.parse_args()
    settings = {"prior": "ffdnet-color", "nfe": args.nfe}
    ref = reference(args.volume)
    seconds = {}
    start = time.perf_counter()
    m = measurement(ref, args.modality, 8.0, 0)
    x1 = reconstruct_measurement(m, args.method, settings).volume
    seconds["reconstruction"] = time.perf_counter() - start
    start = time.perf_counter()
    inputs, targets = [], []
    for i in range(args.angles):
        degrees = 360.0 * (i + 0.5) / args.angles
        target = rotated(x1, degrees)
        if args.modality == "ct":
            m = simulate_ct(target, n_views=60, noise=0.01, seed=1000 + i)
        else:  # the measurement's own mask (seed 0), no noise
            m = simulate_mri(target, accel=8.0, mask="poisson", noise=0.0, seed=0)
        inputs.append(reconstruct_measurement(m, args.method, settings, seed=1 + i).volume)
        targets.append(target)
        print(f"rotation {degrees:g}°: {score(inputs[-1], target).psnr:.2f} dB", flush=True)
    seconds["rotated reconstructions"] = time.perf_counter() - start
    inputs_t = torch.from_numpy(np.concatenate(inputs))
    targets_t = torch.from_numpy(np.concatenate(targets))
    level = float((inputs_t - targets_t).pow(2).mean().sqrt())
    prior = load_prior("ffdnet-color")
    start = time.perf_counter()
    fine_tune(prior, inputs_t, targets_t, level, args)
    seconds["fine-tuning"] = time.perf_counter() - start

    @torch.no_grad()
    def f(volume: torch.Tensor) -> torch.Tensor:
        return prior.denoise(volume, level)

    x1_t = torch.from_numpy(x1)
    results = {"x1": score(x1, ref), "f(x1)": score(f(x1_t).numpy(), ref)}
    # the eight rotations by 90° and flips (the package's orientation ensemble)
    results["flip-rotation mean"] = score(ensemble_mean(f, x1_t, 8).numpy(), ref)
    for name, s in results.items():
        print(f"{args.volume} {name}: {s.psnr:.2f} dB / SSIM {s.ssim:.4f}", flush=True)
    record = {
        "volume": args.volume,
        "modality": args.modality,
        "method": args.method,
        "settings": vars(args) | {"out": str(args.out)},
        "level": level,
        "scores": {k: {"psnr": s.psnr, "ssim": s.ssim} for k, s in results.items()},
        "seconds": seconds,
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"equivariant_{args.volume}{args.tag}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
