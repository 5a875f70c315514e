"""Two gloo processes on the CPU reproduce one process (D3IP's data parallelism,
docs/architecture.md §7)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from napari_ddip.cli import main
from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.noise import add_gaussian_noise
from napari_ddip.prior.denoiser import DenoiserPrior, DenoiserPriorConfig
from napari_ddip.prior.ffdnet import FFDNetConfig
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.recon import Adapted, ReconConfig, reconstruct, run_to_end
from napari_ddip.recon.distributed import Group, leave_process_group
from tiny import tiny_prior

#: Each run's name → (method, its settings). ``d3ip-stopped`` measures with 5 % noise and a
#: discrepancy τ that ends its adaptation in the second of three steps (its losses 0.97, 2.2,
#: then 0.14 against τ times a noise share of about 1.3e-3, i.e. 0.4): every rank has to
#: stop at the same step.
RUNS = {
    "dds": ("dds", {}),
    "d3ip": ("d3ip", {}),
    "d3ip-mbir": ("d3ip-mbir", {}),
    "ddip": ("ddip", {}),
    "d3ip-stopped": ("d3ip", {"discrepancy": 300.0}),
    # with a tiny random denoiser prior: every rank reconstructs the rotated copies together
    # and fine-tunes the same copy of the prior
    "dds-equivariant": ("dds", {"equivariant": 2, "equivariant_steps": 3}),
}


def _tiny_denoiser() -> DenoiserPrior:
    torch.manual_seed(0)
    return DenoiserPrior(DenoiserPriorConfig(ffdnet=FFDNetConfig(width=16, depth=4))).eval()


def _reconstruct_all(out_dir: str, rank: int) -> None:
    torch.set_num_threads(1)
    prior, denoiser = tiny_prior(), _tiny_denoiser()
    volume = torch.from_numpy(ellipsoid_volume((6, 32, 32), seed=1))
    op = ParallelBeamCT(32, n_views=16)
    clean = op.forward(volume)
    for name, (method, settings) in RUNS.items():
        y = add_gaussian_noise(clean, 0.05, seed=0) if "discrepancy" in settings else clean
        cfg = ReconConfig(
            method=method, nfe=3, adapt_steps=2, k_slices=3, t_min=0, slice_batch=2, **settings
        )
        chosen = denoiser if "equivariant" in settings else prior
        events = list(reconstruct(y, op, cfg, prior=chosen, device="cpu"))
        if "discrepancy" in settings:  # the stop came where the comment above says
            assert [len(e.losses) for e in events if isinstance(e, Adapted)] == [2, 1]
        np.save(f"{out_dir}/{name}_{rank}.npy", run_to_end(iter(events)).volume)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    _reconstruct_all(out_dir, rank)
    leave_process_group()


def test_group_shares_are_contiguous_and_cover_everything() -> None:
    items = list(range(7))
    shares = [Group(r, 3).share(items) for r in range(3)]
    assert shares == [[0, 1, 2], [3, 4], [5, 6]]
    assert Group().share(items) == items


@pytest.mark.slow
def test_two_processes_reproduce_one(tmp_path) -> None:
    _reconstruct_all(str(tmp_path), rank=-1)
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for method in RUNS:
        single = np.load(tmp_path / f"{method}_-1.npy")
        for rank in (0, 1):
            parallel = np.load(tmp_path / f"{method}_{rank}.npy")
            # Equal up to the order of floating-point sums (gradients, CG inner products).
            scale = float(np.abs(single).max())
            np.testing.assert_allclose(parallel, single, atol=1e-5 * scale, err_msg=method)


def _torchrun(*args: str, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node 2 -m napari_ddip ARGS`` in ``cwd`` (a hang
    fails the test through ``timeout``)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "-m", "napari_ddip", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("device", ["gpu", "cuda"])
def test_distributed_refuses_a_device_that_is_not_there(tmp_path, device) -> None:
    """As one process does: not a traceback (cuda without GPUs), nor the CPU instead (gpu)."""
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    np.save(tmp_path / "v.npy", ellipsoid_volume((2, 32, 32), seed=1))
    assert main(["simulate", "ct", str(tmp_path / "v.npy"), str(tmp_path / "m.npz")]) == 0
    args = f"reconstruct m.npz r.tif --method fbp --device {device} --distributed".split()
    done = _torchrun(*args, cwd=tmp_path)
    assert done.returncode != 0
    # An error line from a rank, and no hang. torchrun stops the other rank as soon as one
    # exits, so the second line may or may not be written.
    assert done.stderr.count("napari-ddip: error: --device") in (1, 2), done.stderr
    assert "napari_ddip/" not in done.stderr  # no traceback of ours (torchrun adds its own)
    assert not (tmp_path / "r.tif").exists()


def test_torchrun_without_distributed_is_refused_before_any_work(tmp_path) -> None:
    """Each process would reconstruct the whole volume and write the same OUT."""
    np.save(tmp_path / "v.npy", ellipsoid_volume((2, 32, 32), seed=1))
    assert main(["simulate", "ct", str(tmp_path / "v.npy"), str(tmp_path / "m.npz")]) == 0
    done = _torchrun("reconstruct", "m.npz", "r.tif", "--method", "fbp", cwd=tmp_path)
    assert done.returncode != 0
    # torchrun stops the other rank as soon as one exits: one or two error lines.
    errors = done.stderr.count("napari-ddip: error: started as one of 2 processes")
    assert errors in (1, 2), done.stderr
    assert "napari_ddip/" not in done.stderr
    assert not (tmp_path / "r.tif").exists()
