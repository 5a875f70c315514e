"""The sinogram noise estimate against the noise that was added, on the quality table's CT
measurements (60 views, 1 % Gaussian noise, ``recon_table.measurement``, seed 0).

``physics.noise.estimate_noise_std`` reads part of a sinogram's own fine content as noise;
the equivariant self-supervision therefore simulates its rotated copies at the level whose
estimate matches the measurement's (``recon.equivariant.matched_noise``), which each
quality-table cell run with ``equivariant`` records (``equivariant.noise_std``). Printed per
volume: the true standard deviation, the estimate and their ratio, and the matched level
computed on the reference itself (the best case: the method computes it on its own first
reconstruction).

    python benchmarks/noise_estimate.py
"""

from __future__ import annotations

import torch

from napari_ddip.operators import operator_from_measurement
from napari_ddip.physics.noise import estimate_noise_std
from napari_ddip.recon.equivariant import matched_noise
from quality_table import VOLUMES, reference
from recon_table import measurement


def main() -> None:
    print("| volume | added σ | estimate | estimate / σ | matched on the reference |")
    print("|---|---|---|---|---|")
    for name in VOLUMES:
        ref = torch.from_numpy(reference(name))
        m = measurement(ref.numpy(), "ct", 8.0, 0)
        op = operator_from_measurement(m, "cpu")
        y = torch.as_tensor(m.data, dtype=torch.float32)
        sigma = float((y - op.forward(ref)).std())
        estimate = estimate_noise_std(y)
        matched = matched_noise(op, ref, y, torch.Generator().manual_seed(0))
        print(f"| {name} | {sigma:.4f} | {estimate:.4f} | {estimate / sigma:.2f} | {matched:.4f} |")


if __name__ == "__main__":
    main()
