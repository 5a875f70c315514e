"""The shipped prior, offline, on a small 60-view CT phantom: D3IP adapted through its horizon
beats DDS, which beats FBP."""

from __future__ import annotations

import pytest
import torch

from napari_ddip.metrics import score
from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.noise import add_gaussian_noise
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.prior.weights import DEFAULT_PRIOR, load_prior, read_prior_meta, shipped_priors
from napari_ddip.recon import ReconConfig, reconstruct, run_to_end

pytestmark = pytest.mark.slow


def test_default_prior_ships_and_loads_offline() -> None:
    assert DEFAULT_PRIOR in shipped_priors()
    assert load_prior("default").patch_size == 64


@pytest.mark.parametrize("name", shipped_priors())
def test_every_shipped_prior_loads_with_its_card(name: str) -> None:
    prior = load_prior(name)
    meta = read_prior_meta(name)
    info = meta["info"]
    if "network" not in meta["config"]:  # trained here
        assert info["steps"] > 0 and "scores" in info
    elif "init" in info:  # a denoiser fine-tuned here: its base prior's licence
        assert info["steps"] > 0 and "scores" in info
        assert f"as the base prior `{info['init']}`" in info["licence"]
        assert "MIT" in info["licence"] and info["init"] in shipped_priors()
    else:  # a converted denoiser names its source
        assert info["source"] and "MIT" in info["licence"]
    assert sum(p.numel() for p in prior.net.parameters()) == meta["info"]["parameters"]


def test_d3ip_beats_dds_beats_fbp_on_a_sparse_view_phantom() -> None:
    volume = ellipsoid_volume((12, 128, 128), seed=0)[4:8]
    op = ParallelBeamCT(128, n_views=60)
    y = add_gaussian_noise(op.forward(torch.from_numpy(volume)), 0.01, seed=0)
    fbp = score(op.pinv(y).numpy(), volume).psnr
    prior = load_prior("default")
    psnr = {}
    # The CT defaults (L 10, K 3, timestep power 5) with 10 steps. D3IP adapting through its
    # whole horizon (discrepancy 0) adds a little to DDS on phantoms like the prior's
    # training data; at its default the adaptation ends once its loss reaches the
    # sinogram's noise, and D3IP stays level with DDS.
    runs = {"dds": {}, "d3ip": {"discrepancy": 0.0}, "d3ip, stopped": {}}
    for name, settings in runs.items():
        cfg = ReconConfig(method=name.split(",")[0], nfe=10, preview_every=0, **settings)
        result = run_to_end(reconstruct(y, op, cfg, prior=prior, device="cpu"))
        psnr[name] = score(result.volume, volume).psnr
    assert psnr["d3ip"] > psnr["dds"] > fbp + 0.5, (fbp, psnr)
    assert abs(psnr["d3ip, stopped"] - psnr["dds"]) < 0.05, psnr
