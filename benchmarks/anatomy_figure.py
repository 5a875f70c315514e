"""What the quality table's numbers look like: the middle slice of real anatomy reconstructed by
FBP / zero-filled, ADMM-TV, DDS + 3D TV at the shipped defaults and with the ``quality``
preset, with each one's error.

The volumes and measurements are the quality table's (``quality_table.py``: 8 slices, CT with
60 views and 1 % noise, MRI single-coil ×8 Poisson-disc, seed 0), so that the scores in the
titles (PSNR / SSIM over all 8 slices) are those of its cells. Writes the PNG and the scores
with the wall times as JSON (``--record``); about 15 minutes on one thread:

    OMP_NUM_THREADS=1 python benchmarks/anatomy_figure.py --out docs/anatomy.png
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from napari_ddip.metrics import score
from quality_table import VOLUMES, reconstruct_cell

#: Columns: title → (method, settings); the FFDNet prior (the default) at 50 steps.
COLUMNS = {
    "FBP / zero-filled": ("fbp", {}),
    "ADMM-TV": ("tv", {}),
    "dds-tv": ("dds-tv", {}),
    "dds-tv, quality": ("dds-tv", {"equivariant": "4"}),
}
#: The error maps' grey scale: 0 to this share of the reference's range.
ERROR_RANGE = 0.05


def figure(rows: list[tuple[str, np.ndarray, dict]], path: Path) -> None:
    """PNG: per case two rows, the middle slice of the reference and of each reconstruction,
    and under it the absolute error (``0`` to :data:`ERROR_RANGE` of the reference's range)."""
    n_cols = len(COLUMNS) + 1
    fig = Figure(figsize=(2.6 * n_cols, 2.75 * 2 * len(rows)), layout="constrained")
    axes = fig.subplots(2 * len(rows), n_cols, squeeze=False)
    for r, (case, ref, results) in enumerate(rows):
        mid = ref.shape[0] // 2
        low, high = float(ref.min()), float(ref.max())
        panels = [("reference", ref[mid], None)]
        panels += [(title, v[mid], s) for title, (v, s) in results.items()]
        for c, (title, image, s) in enumerate(panels):
            top, bottom = axes[2 * r, c], axes[2 * r + 1, c]
            top.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
            if s is not None:
                title = f"{title}\n{s.psnr:.2f} dB, SSIM {s.ssim:.3f}"
                error = np.abs(image - ref[mid])
                bottom.imshow(error, cmap="magma", vmin=0, vmax=ERROR_RANGE * (high - low))
            top.set_title(title if c else f"{case}\nreference", fontsize=9)
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_frame_on(False)
        axes[2 * r + 1, 0].text(
            0.5,
            0.5,
            f"|error|\n0 to {ERROR_RANGE:g} of\nthe reference's range",
            ha="center",
            va="center",
            fontsize=9,
            transform=axes[2 * r + 1, 0].transAxes,
        )
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=80)
    # 256 colours: about a third of the full-colour PNG's size
    Image.open(buffer).convert("RGB").quantize(256).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["dwi:ct", "mni152:mri"],
        help="VOLUME:MODALITY pairs, one per pair of rows",
    )
    parser.add_argument("--out", type=Path, default=Path("docs/anatomy.png"))
    parser.add_argument(
        "--record", type=Path, default=Path("benchmarks/results/anatomy_figure.json")
    )
    args = parser.parse_args()
    rows, record = [], {}
    for case in args.cases:
        volume, modality = case.split(":")
        if volume not in VOLUMES or modality not in ("ct", "mri"):
            parser.error(f"{case}: VOLUME one of {VOLUMES}, MODALITY ct or mri")
        results = {}
        for title, (method, settings) in COLUMNS.items():
            ref, result, seconds = reconstruct_cell(volume, modality, method, settings)
            s = score(result.volume, ref)
            results[title] = (result.volume, s)
            record[f"{case} {title}"] = {"psnr": s.psnr, "ssim": s.ssim, "seconds": seconds}
            print(
                f"{case} {title}: {s.psnr:.2f} dB, SSIM {s.ssim:.4f}, {seconds:.0f} s", flush=True
            )
        label = {"dwi": "b0 scan", "mni152": "MNI152"}.get(volume, volume)
        rows.append((f"{label}, {modality.upper()}", ref, results))
    figure(rows, args.out)
    args.record.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
