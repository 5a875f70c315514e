"""Two gloo processes on the CPU reproduce one process (D3IP's data parallelism, DESIGN §7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.recon import ReconConfig, reconstruct, run_to_end
from napari_ddip.recon.distributed import Group, leave_process_group
from tiny import tiny_prior

METHODS = ("dds", "d3ip", "d3ip-mbir", "ddip")


def _reconstruct_all(out_dir: str, rank: int) -> None:
    torch.set_num_threads(1)
    prior = tiny_prior()
    volume = torch.from_numpy(ellipsoid_volume((6, 32, 32), seed=1))
    op = ParallelBeamCT(32, n_views=16)
    y = op.forward(volume)
    for method in METHODS:
        cfg = ReconConfig(method=method, nfe=3, adapt_steps=2, k_slices=3, t_min=0, slice_batch=2)
        result = run_to_end(reconstruct(y, op, cfg, prior=prior, device="cpu"))
        np.save(f"{out_dir}/{method}_{rank}.npy", result.volume)


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
    for method in METHODS:
        single = np.load(tmp_path / f"{method}_-1.npy")
        for rank in (0, 1):
            parallel = np.load(tmp_path / f"{method}_{rank}.npy")
            # Equal up to the order of floating-point sums (gradients, CG inner products).
            scale = float(np.abs(single).max())
            np.testing.assert_allclose(parallel, single, atol=1e-5 * scale, err_msg=method)
