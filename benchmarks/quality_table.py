"""The quality table: every method at one setting on real anatomy, CT and MRI, both priors.

Volumes: ``mni152`` (nilearn's MNI152 T1 template, 8 axial slices from slice 28 at 2 mm,
128²; ``mni152-256`` the same slab at 1 mm, 256²), ``dwi`` (8 slices of dipy's b0 scan of one
subject, 128²), ``mni152-tune`` (8 slices from slice 44 at 2 mm: the slab the defaults were
chosen on, not reported as a result) and ``mni152-32`` (32 slices from slice 20 at 2 mm, 128²:
a volume larger than the equivariant copies' block). Measurements as ``recon_table.py``
makes them: 60-view parallel-beam CT with 1 % Gaussian noise, single-coil ×8 Poisson-disc MRI
without noise.

Each cell (volume, modality, row) is one JSON file in ``--out``, written when it finishes and
skipped when it exists, so an interrupted run resumes where it stopped. A cell also holds its
error split over rings of spatial frequency (``metrics.band_errors``), which ``--bands``
prints for every cell that has it. Every row runs with
the method's shipped defaults except the prior and the sampling steps (``--nfe``, 20 by
default: the CPU budget), the same for every volume.

    python benchmarks/quality_table.py --volumes mni152 dwi --modalities ct mri
    python benchmarks/quality_table.py --print   # the Markdown table of what is there
    python benchmarks/quality_table.py --print --bands   # where the error lies (see below)
    python benchmarks/quality_table.py --print --margins  # the defaults and presets over TV
    python benchmarks/quality_table.py --volumes mni152-tune --modalities ct \
        --rows "dds-tv, FFDNet" --set prior_error=4 --tag _prior-error-4   # a tuning run
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch

import napari_ddip.samples as samples
from napari_ddip.methods import Reconstruction, reconstruct_measurement
from napari_ddip.metrics import band_errors, score
from recon_table import measurement

#: The classical rows: label → (method, settings).
CLASSICAL = {"FBP / zero-filled": ("fbp", {}), "ADMM-TV": ("tv", {})}
PRIORS = {"ellipse": "default", "FFDNet": "ffdnet-color"}
#: The diffusion rows (method, prior) in the order they run: the shipped prior and the fast
#: methods first.
ORDER = [
    ("dds", "FFDNet"),
    ("dds-tv", "FFDNet"),
    ("dds", "ellipse"),
    ("dds-tv", "ellipse"),
    ("d3ip", "FFDNet"),
    ("d3ip-mbir", "ellipse"),
    ("d3ip", "ellipse"),
    ("d3ip-mbir", "FFDNet"),
    ("d3ip-tv", "FFDNet"),
    ("d3ip-tv", "ellipse"),
]
VOLUMES = ("mni152", "mni152-256", "dwi", "mni152-tune", "mni152-32")
#: The columns of ``--margins``: title → (row label, tag) of the cells it reads; FFDNet at the
#: shipped 50 steps, the presets ``quality`` and ``best`` on DDS + 3D TV.
MARGINS = {
    "`dds-tv`": ("dds-tv, FFDNet", "_nfe50"),
    "`dds`": ("dds, FFDNet", "_nfe50"),
    "`dds-tv` `quality`": ("dds-tv, FFDNet", "_equivariant-4"),
    "`dds` `quality`": ("dds, FFDNet", "_equivariant-4"),
    "`dds-tv` `best`": ("dds-tv, FFDNet", "_equivariant-4_steps-600_slices-8"),
}


def reference(name: str) -> np.ndarray:
    """The reference volume ``(Z, N, N)`` in [0, 1] called ``name`` (module docstring)."""
    if name == "dwi":
        return samples.dwi_b0_volume(8)
    first = {"mni152": 28, "mni152-256": 28, "mni152-tune": 44, "mni152-32": 20}[name]
    size = 256 if name.endswith("256") else 128
    n = 32 if name == "mni152-32" else 8
    return samples.mni_brain_volume(size, n, voxel_mm=1 if size == 256 else 2, first_slice=first)


def rows(nfe: int) -> dict[str, tuple[str, dict[str, str]]]:
    """Every row's label, method and settings, in the order they run (the shipped prior and
    the fast methods first)."""
    table = dict(CLASSICAL)
    for method, label in ORDER:
        table[f"{method}, {label}"] = (method, {"prior": PRIORS[label], "nfe": str(nfe)})
    return table


def cell_path(out: Path, volume: str, modality: str, label: str, tag: str = "") -> Path:
    slug = label.replace(" / ", "-").replace(", ", "_").replace(" ", "-").lower()
    return out / f"{volume}_{modality}_{slug}{tag}.json"


def reconstruct_cell(
    volume: str, modality: str, method: str, settings: dict
) -> tuple[np.ndarray, Reconstruction, float]:
    """The reference volume ``volume``, its reconstruction from the cell's measurement (seed 0,
    on the CPU; ``fbp`` on MRI is ``zero-filled``) and the wall time (s)."""
    ref = reference(volume)
    m = measurement(ref, modality, 8.0, 0)
    if method == "fbp" and modality == "mri":
        method = "zero-filled"
    start = time.perf_counter()
    result = reconstruct_measurement(m, method, settings, device="cpu", seed=0)
    return ref, result, time.perf_counter() - start


def run_cell(volume: str, modality: str, label: str, method: str, settings: dict) -> dict:
    """Reconstruct and score one cell."""
    ref, result, seconds = reconstruct_cell(volume, modality, method, settings)
    method = result.provenance["method"]
    s = score(result.volume, ref)
    # the equivariant self-supervision's record (noise, level), where it ran
    extra = {k: result.provenance[k] for k in ("equivariant",) if k in result.provenance}
    return extra | {
        "volume": volume,
        "modality": modality,
        "row": label,
        "method": method,
        "settings": result.provenance["settings"],
        "psnr": s.psnr,
        "ssim": s.ssim,
        "bands": band_errors(result.volume, ref).as_dict(),
        "seconds": seconds,
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
    }


def print_table(out: Path, volumes: list[str], modalities: list[str], nfe: int) -> None:
    """The Markdown table of the cells in ``out`` (missing cells: —)."""
    columns = [(v, m) for v in volumes for m in modalities]
    print("| method | " + " | ".join(f"{v} {m.upper()}" for v, m in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for label in rows(nfe):
        cells = []
        for v, m in columns:
            path = cell_path(out, v, m, label)
            if path.is_file():
                r = json.loads(path.read_text())
                cells.append(f"{r['psnr']:.2f} / {r['ssim']:.3f} ({r['seconds']:.0f} s)")
            else:
                cells.append("—")
        print(f"| {label} | " + " | ".join(cells) + " |")


def print_bands(out: Path, volumes: list[str], modalities: list[str]) -> None:
    """The Markdown table of each cell's error per frequency ring (10⁻⁴ per voxel) and, in
    brackets, the share of the reference's ring it carries; the reference's own power first."""
    header_printed = False
    for volume in volumes:
        for modality in modalities:
            cells = sorted(out.glob(f"{volume}_{modality}_*.json"))
            cells = [json.loads(p.read_text()) | {"file": p.stem} for p in cells]
            cells = [c for c in cells if "bands" in c]
            if not cells:
                continue
            edges = cells[0]["bands"]["edges"]
            if not header_printed:
                rings = [f"{a:g}–{b:g}" for a, b in pairwise(edges)]
                rings.append(f"≥ {edges[-1]:g}")
                print("| volume | cell | " + " | ".join(rings) + " | all |")
                print("|---|---|" + "---|" * (len(rings) + 1))
                header_printed = True
            ref = cells[0]["bands"]["reference"]
            print(
                f"| {volume} {modality.upper()} | reference power | "
                + " | ".join(f"{1e4 * r:.3f}" for r in ref)
                + f" | {1e4 * sum(ref):.3f} |"
            )
            for c in cells:
                b = c["bands"]
                tag = c["file"].split(cell_path(out, volume, modality, c["row"]).stem, 1)[-1]
                pairs = zip(b["error"], b["gain"], strict=True)
                ring = [f"{1e4 * e:.3f} ({g:.2f})" for e, g in pairs]
                print(
                    f"| | {c['row']}{' ' + tag if tag else ''} | "
                    + " | ".join(ring)
                    + f" | {1e4 * sum(b['error']):.3f} |"
                )


def print_margins(out: Path, volumes: list[str], modalities: list[str]) -> None:
    """The Markdown table of ADMM-TV and each :data:`MARGINS` column per volume: PSNR / SSIM
    and, in brackets, the PSNR over ADMM-TV's (dB, from the unrounded cells; missing: —)."""
    print("| volume | ADMM-TV | " + " | ".join(MARGINS) + " |")
    print("|---|---|" + "---|" * len(MARGINS))
    for volume in volumes:
        for modality in modalities:
            tv_path = cell_path(out, volume, modality, "ADMM-TV")
            if not tv_path.is_file():
                continue
            tv = json.loads(tv_path.read_text())
            cells = [f"{tv['psnr']:.2f} / {tv['ssim']:.3f}"]
            for label, tag in MARGINS.values():
                path = cell_path(out, volume, modality, label, tag)
                if not path.is_file():
                    cells.append("—")
                    continue
                r = json.loads(path.read_text())
                over = f"{r['psnr'] - tv['psnr']:+.2f}".replace("-", "−")
                cells.append(f"{r['psnr']:.2f} / {r['ssim']:.3f} ({over})")
            print(f"| {volume} {modality.upper()} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--volumes", nargs="+", choices=VOLUMES, default=["mni152", "dwi"])
    parser.add_argument("--modalities", nargs="+", choices=("ct", "mri"), default=["ct", "mri"])
    parser.add_argument("--rows", nargs="+", help="only these row labels (default: all)")
    parser.add_argument("--nfe", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quality"))
    parser.add_argument("--print", action="store_true", help="print the table and stop")
    parser.add_argument(
        "--bands", action="store_true", help="with --print: the error per frequency ring"
    )
    parser.add_argument(
        "--margins",
        action="store_true",
        help="with --print: the shipped defaults and the presets against ADMM-TV",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting for the chosen --rows, instead of its default (a tuning run)",
    )
    parser.add_argument("--tag", default="", help="suffix of the JSON names (with --set)")
    args = parser.parse_args()
    if args.set and not (args.rows and args.tag):
        parser.error("--set needs --rows and a --tag, so no default cell is overwritten")
    overrides = dict(item.split("=", 1) for item in args.set)
    if args.print and args.margins:
        print_margins(args.out, args.volumes, args.modalities)
        return
    if args.print and args.bands:
        print_bands(args.out, args.volumes, args.modalities)
        return
    if args.print:
        print_table(args.out, args.volumes, args.modalities, args.nfe)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for label, (method, settings) in rows(args.nfe).items():  # the cheap rows first
        for volume in args.volumes:
            for modality in args.modalities:
                path = cell_path(args.out, volume, modality, label, args.tag)
                if path.is_file() or (args.rows and label not in args.rows):
                    continue
                result = run_cell(volume, modality, label, method, settings | overrides)
                path.write_text(json.dumps(result, indent=2) + "\n")
                print(f"{volume} {modality} {label}: {result['psnr']:.2f} dB", flush=True)


if __name__ == "__main__":
    main()
