"""Network precision of a reconstruction: resolution per device, the TF32 switches, and a
bfloat16 run that really runs the network in bfloat16 (in float32 at the low noise levels
bfloat16 cannot resolve) and stays close to float32."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.precision import (
    BF16_MIN_LEVEL,
    cpu_has_bf16,
    network_precision,
    pass_precision,
    resolve_precision,
    tf32_switches,
)
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.recon import ReconConfig, reconstruct, run_to_end
from tiny import tiny_prior

pytestmark = pytest.mark.usefixtures("one_thread")


def test_auto_is_tf32_on_cuda_and_fp32_elsewhere_and_tf32_needs_cuda() -> None:
    assert resolve_precision("auto", "cuda") == "tf32"
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="tf32 needs a CUDA device"):
        resolve_precision("tf32", "cpu")
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        ReconConfig(precision="fp16")
    with pytest.raises(ValueError, match="tf32 needs a CUDA device"):
        ReconConfig(precision="tf32").resolved("ct", "cpu")


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
@pytest.mark.parametrize("context", [network_precision, tf32_switches])
def test_tf32_switches_are_set_inside_and_restored_after(context, precision) -> None:
    """TF32 only for ``tf32``: the float32 parts of a bf16 run (its passes below the level
    floor, their gradients) are as exact as an fp32 run's."""
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn)
    saved = [f.allow_tf32 for f in flags]
    allowed = precision == "tf32"
    try:
        for f in flags:
            f.allow_tf32 = not allowed  # the opposite of what the context sets
        with context(precision, torch.device("cuda")):
            assert [f.allow_tf32 for f in flags] == [allowed] * 2
        assert [f.allow_tf32 for f in flags] == [not allowed] * 2
    finally:
        for f, value in zip(flags, saved, strict=True):
            f.allow_tf32 = value


def test_bf16_passes_below_the_level_floor_run_in_fp32_and_other_precisions_stay() -> None:
    assert pass_precision("bf16", BF16_MIN_LEVEL) == "bf16"
    assert pass_precision("bf16", 0.5) == "bf16"
    assert pass_precision("bf16", BF16_MIN_LEVEL / 2) == "fp32"
    for precision in ("fp32", "tf32"):
        assert pass_precision(precision, 0.001) == pass_precision(precision, 0.5) == precision


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_bfloat16_instructions_warns(monkeypatch, native) -> None:
    capabilities = {"avx2": True, "avx512_bf16": native, "amx_bf16": False}
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities, raising=False)
    assert cpu_has_bf16() is native
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve_precision("bf16", "cpu") == "bf16"
        resolve_precision("bf16", "cuda")  # neither of these two warns
        resolve_precision("fp32", "cpu")
    assert [str(w.message).split(":")[0] for w in caught] == (
        [] if native else ["this CPU has no bfloat16 instructions (AVX512-BF16, AMX or Arm BF16)"]
    )


def test_bf16_runs_the_network_in_bf16_and_stays_close_to_fp32() -> None:
    volume = ellipsoid_volume((4, 32, 32), seed=1)
    op = ParallelBeamCT(32, n_views=16)
    y = op.forward(torch.from_numpy(volume))
    prior = tiny_prior()
    passes: list[tuple[float, torch.dtype]] = []  # (noise level, dtype) of each network pass
    stem: list[torch.dtype] = []

    def record_pass(_m, inputs: tuple[torch.Tensor, torch.Tensor], _out) -> None:
        levels = {prior.schedule.level(int(t)) for t in inputs[1].flatten()}
        passes.extend((s, stem[-1]) for s in levels)

    prior.net.stem.register_forward_hook(lambda _m, _i, out: stem.append(out.dtype))
    prior.net.register_forward_hook(record_pass)

    def run(precision: str) -> np.ndarray:
        cfg = ReconConfig(
            method="d3ip", nfe=3, adapt_steps=2, k_slices=2, t_min=0, precision=precision
        )
        finished = run_to_end(reconstruct(y, op, cfg, prior=prior))
        assert finished.metadata["settings"]["precision"] == precision
        return finished.volume

    full = run("fp32")
    assert {dtype for _, dtype in passes} == {torch.float32}
    passes.clear()
    half = run("bf16")
    # The sampler's last steps sit below the floor and its first ones above; the adaptation's
    # passes (t_min 0: at every step) follow the same rule.
    assert {s < BF16_MIN_LEVEL for s, _ in passes} == {True, False}
    assert all((dtype == torch.bfloat16) == (s >= BF16_MIN_LEVEL) for s, dtype in passes)
    assert half.dtype == np.float32 and np.isfinite(half).all()
    relative = np.linalg.norm(half - full) / np.linalg.norm(full)
    assert 0 < relative < 0.05
