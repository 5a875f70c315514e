"""The engine on a CUDA device against the same run on the CPU (skipped without CUDA).

The random draws of a run (noise, slices, patch offsets, LoRA init) come from CPU generators,
so a CUDA run in float32 follows the CPU run step by step; what differs is the arithmetic of
the kernels. Imports only torch, numpy and the engine, so that it runs on a bare GPU machine
(``benchmarks/gpu_checks.sh``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_ddip.metrics import score
from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.masks import uniform1d_mask
from napari_ddip.physics.mri import MRIOperator
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.prior.train import train_prior
from napari_ddip.prior.weights import load_prior
from napari_ddip.recon import ReconConfig, reconstruct, run_to_end
from tiny import tiny_prior, tiny_train_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

FAST = {"nfe": 4, "adapt_steps": 2, "k_slices": 2, "t_min": 0, "preview_every": 0}


def _volume(n_slices: int = 4, size: int = 32) -> np.ndarray:
    return ellipsoid_volume((n_slices, size, size), seed=1)


def _coil_maps(n_coils: int, n_slices: int, size: int) -> np.ndarray:
    """Smooth complex maps ``(Z, C, Y, X)`` with ``Σ_c |S_c|² = 1`` (coils around the
    image; written here because sigpy's birdcage maps are not on a bare GPU machine)."""
    yy, xx = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    angles = 2 * np.pi * np.arange(n_coils) / n_coils
    maps = np.stack(
        [np.exp(-((yy - np.sin(a)) ** 2 + (xx - np.cos(a)) ** 2) + 1j * a) for a in angles]
    )
    maps /= np.sqrt((np.abs(maps) ** 2).sum(0))
    return np.broadcast_to(maps, (n_slices, *maps.shape)).astype(np.complex64)


def _both_devices(y: torch.Tensor, op, cfg: ReconConfig) -> tuple[np.ndarray, np.ndarray]:
    cpu = run_to_end(reconstruct(y, op, cfg, prior=tiny_prior(), device="cpu")).volume
    gpu = run_to_end(reconstruct(y, op, cfg, prior=tiny_prior(), device="cuda")).volume
    return cpu, gpu


@pytest.mark.parametrize("method", ["dds", "d3ip", "d3ip-mbir", "ddip"])
def test_ct_reconstruction_on_cuda_follows_the_cpu_run(method) -> None:
    volume = _volume()
    op = ParallelBeamCT(32, n_views=16)
    y = op.forward(torch.from_numpy(volume))
    cfg = ReconConfig(method=method, precision="fp32", **FAST)
    cpu, gpu = _both_devices(y, op, cfg)
    assert gpu.shape == cpu.shape and np.isfinite(gpu).all()
    # Same draws, float32 kernels that sum in another order: far closer than any two methods.
    assert score(gpu, cpu).psnr > 50


def test_multicoil_mri_reconstruction_on_cuda_follows_the_cpu_run() -> None:
    volume = _volume()
    maps = _coil_maps(4, len(volume), 32)
    op = MRIOperator(uniform1d_mask((32, 32), accel=2, seed=0), maps)
    y = op.forward(torch.from_numpy(volume).to(torch.complex64))
    cfg = ReconConfig(method="d3ip", precision="fp32", **FAST)
    cpu, gpu = _both_devices(y, op, cfg)
    assert score(gpu, cpu).psnr > 50


@pytest.mark.parametrize("precision", ["auto", "bf16"])
def test_reduced_precision_on_cuda_stays_close_to_fp32(precision) -> None:
    volume = _volume()
    op = ParallelBeamCT(32, n_views=16)
    y = op.forward(torch.from_numpy(volume))
    runs = {
        p: run_to_end(
            reconstruct(
                y,
                op,
                ReconConfig(method="d3ip", precision=p, **FAST),
                prior=tiny_prior(),
                device="cuda",
            )
        ).volume
        for p in ("fp32", precision)
    }
    ref = runs["fp32"]
    # TF32 keeps 10 mantissa bits and bfloat16 7; both accumulate in float32.
    assert score(runs[precision], ref).psnr > 30


def test_training_on_cuda_follows_the_cpu_run(tmp_path) -> None:
    # The batches and the noise are drawn on the CPU, so both devices train on the same data;
    # Adam amplifies the kernels' rounding in near-zero gradients, so only the losses are
    # compared.
    losses = {}
    for dev in ("cpu", "cuda"):
        path = train_prior(tiny_train_config(30), tmp_path / dev, device=dev)
        assert load_prior(path).config.unet.base_channels == 8
        rows = (tmp_path / dev / "loss.csv").read_text().split()[1:]
        losses[dev] = [float(row.split(",")[1]) for row in rows]
    assert losses["cuda"] == pytest.approx(losses["cpu"], rel=5e-2)
    assert losses["cuda"][-1] < losses["cuda"][0]


def _host_waits(nfe: int) -> int:
    """How often a CUDA DDS reconstruction makes the host wait for the GPU (sync debug mode)."""
    volume = _volume()
    op = ParallelBeamCT(32, n_views=16)
    y = op.forward(torch.from_numpy(volume))
    cfg = ReconConfig(method="dds", precision="fp32", **(FAST | {"nfe": nfe}))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_to_end(reconstruct(y, op, cfg, prior=tiny_prior(), device="cuda"))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def test_sampling_steps_on_cuda_never_wait_for_the_host() -> None:
    # Setting up (operator norm, data scale) and handing back the volume may synchronise;
    # the steps in between may not, so the count does not grow with the number of steps.
    _host_waits(4)  # the CUDA libraries' first-use set-up may synchronise
    assert _host_waits(8) == _host_waits(4)
