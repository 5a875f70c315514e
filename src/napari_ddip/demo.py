"""The demo job on built-in sample data: sparse-view CT of an ellipsoid phantom.

The CT sample of :mod:`napari_ddip.samples` (a 32×128×128 ellipsoid phantom projected to 60
views with 1 % Gaussian noise) is reconstructed with each method, the diffusion methods with
the prior fine-tuned on ellipse phantoms (:data:`DEMO_PRIOR`); PSNR/SSIM are printed, and
the folder gets the phantom, the sinogram, one result TIFF per method and ``comparison.png``
(middle axial slice and a coronal slice of phantom and reconstructions, PSNR/SSIM in the
titles).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from napari_ddip.io import InputError, require_new_output, save_measurement, write_result
from napari_ddip.methods import check_device, progress_bar, reconstruct_measurement
from napari_ddip.metrics import Scores, score
from napari_ddip.samples import CT_NOISE, CT_SHAPE, CT_VIEWS, ct_phantom_sample

METHODS = ("fbp", "tv", "dds", "dds-tv", "d3ip")
LABELS = {"fbp": "FBP", "tv": "ADMM-TV", "dds": "DDS", "dds-tv": "DDS + 3D TV", "d3ip": "D3IP"}
#: The prior of the demo's diffusion methods: FFDNet fine-tuned on ellipse phantoms, the kind
#: of image the demo reconstructs (the default prior, of natural images, is level with TV on
#: them; BENCHMARKS.md, "The demo").
DEMO_PRIOR = "ffdnet-ellipse"
#: A CPU-sized sampler for the demo (the D3IP paper's 50 steps and L = 10 take ~10× longer on CPU):
#: 20 steps, 3 adaptation steps of 2 slices each.
DEMO_SETTINGS = {
    "dds": {"nfe": 20, "prior": DEMO_PRIOR},
    "dds-tv": {"nfe": 20, "prior": DEMO_PRIOR},
    "d3ip": {"nfe": 20, "adapt_steps": 3, "k_slices": 2, "prior": DEMO_PRIOR},
}


def run_demo(
    out_dir: str | Path,
    methods: Sequence[str] = METHODS,
    overwrite: bool = False,
    device: str = "cpu",
    seed: int = 0,
    quiet: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Scores]:
    """Run the demo into ``out_dir`` (created if needed); returns the scores per method.

    Writes ``phantom.tif``, ``sinogram.npz``, ``recon_<method>.tif`` and ``comparison.png``;
    refuses to replace existing files unless ``overwrite``.
    """
    check_device(device)  # before anything is written
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    names = ["phantom.tif", "sinogram.npz", "comparison.png"]
    names += [f"recon_{m}.tif" for m in methods]
    for name in names:
        require_new_output(out / name, overwrite)

    sample = ct_phantom_sample(seed)
    phantom, m = sample.volume, sample.measurement
    write_result(out / "phantom.tif", phantom, sample.voxel_size, sample.provenance, overwrite)
    save_measurement(out / "sinogram.npz", m, overwrite)
    log(f"phantom {CT_SHAPE}, CT {CT_VIEWS} views, {CT_NOISE:.0%} noise -> {out}")

    results: dict[str, tuple[np.ndarray, Scores]] = {}
    for method in methods:
        start = time.perf_counter()
        with progress_bar(method, quiet=quiet) as on_event:
            result = reconstruct_measurement(
                m, method, DEMO_SETTINGS.get(method), device=device, seed=seed, on_event=on_event
            )
        seconds = time.perf_counter() - start
        volume, provenance = result.volume, result.provenance
        write_result(out / f"recon_{method}.tif", volume, m.voxel_size, provenance, overwrite)
        scores = score(volume, phantom)
        results[method] = (volume, scores)
        log(f"{method:>12}: PSNR {scores.psnr:6.2f} dB  SSIM {scores.ssim:.4f}  ({seconds:.1f} s)")
    save_comparison(out / "comparison.png", phantom, results)
    log(f"wrote {out / 'comparison.png'}")
    return {method: s for method, (_, s) in results.items()}


def save_comparison(
    path: Path, reference: np.ndarray, results: dict[str, tuple[np.ndarray, Scores]]
) -> None:
    """PNG grid: columns reference and each result; rows the middle axial (z) slice and the
    middle coronal (y) slice; grey scale of the reference's range; scores in the titles."""
    columns = [("phantom", reference, None)]
    columns += [(LABELS.get(k, k), v, s) for k, (v, s) in results.items()]
    nz, ny, nx = reference.shape
    low, high = float(reference.min()), float(reference.max())
    fig = Figure(figsize=(3.2 * len(columns), 3.2 + 3.2 * nz / nx), layout="constrained")
    axes = fig.subplots(2, len(columns), squeeze=False, height_ratios=[ny, nz])
    for col, (title, volume, scores) in enumerate(columns):
        if scores is not None:
            title = f"{title}\n{scores.psnr:.2f} dB, SSIM {scores.ssim:.3f}"
        for row, image in enumerate((volume[nz // 2], volume[:, ny // 2])):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", vmin=low, vmax=high, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, col].set_title(title, fontsize=10)
    axes[0, 0].set_ylabel(f"z = {nz // 2}")
    axes[1, 0].set_ylabel(f"y = {ny // 2}")
    fig.savefig(path, dpi=100)
