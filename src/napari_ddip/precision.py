"""Arithmetic precision of the network passes (reconstruction and prior training).

- ``fp32``: full float32 (on CUDA also with TF32 switched off, which cuDNN convolutions
  otherwise use by default).
- ``tf32``: float32 storage, TensorFloat-32 matrix products and convolutions (CUDA only).
- ``bf16``: autocast of the network to bfloat16 (CPU or CUDA); its output is cast back to
  float32 before the sampler and the data consistency, which always run in float32. Network
  passes at noise levels below :data:`BF16_MIN_LEVEL` run in ``fp32`` (:func:`pass_precision`;
  in training, the rows of a batch drawn at such levels). In training the weights, their
  gradients, the optimiser and the EMA stay float32 (mixed precision); only the forward and
  backward passes of the network run in bfloat16. What stays float32 runs with TF32 off, as
  under ``fp32``.
- ``auto``: ``tf32`` on CUDA, ``fp32`` elsewhere.

The TF32 switches are process-wide torch flags: :func:`network_precision` (forward passes) and
:func:`tf32_switches` (backward passes) set them for the duration of a pass and restore them
afterwards.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

PRECISIONS = ("auto", "fp32", "tf32", "bf16")

#: The lowest noise level ``s_t`` (the network's image units, images of order 1) at which a
#: network pass runs in bfloat16 (a reconstruction's pass; in training, a row of the batch).
#: bfloat16 keeps 8 significant bits, a rounding error of up to 2⁻⁹ of a value: near the
#: image's peak about 0.002, the size of the noise the last steps remove. One-step denoising
#: of MNI152 slices with ``ffdnet-color`` in bfloat16 loses 5.2 / 2.2 / 0.35 / 0.15 / 0.08 dB
#: against float32 at s = 0.001 / 0.003 / 0.01 / 0.02 / 0.03, and fine-tuning it on ten MNI152
#: slices with every row in bfloat16 costs its float32 denoising 2.6 / 1.6 dB at s = 0.001 /
#: 0.003 (``benchmarks/bf16_levels.py``, ``benchmarks/finetune_prior.py``; BENCHMARKS,
#: "precision=bf16", "Training in bf16").
BF16_MIN_LEVEL = 0.02


def check_precision(precision: str) -> None:
    """Raise ``ValueError`` unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (one of: {', '.join(PRECISIONS)})")


def resolve_precision(precision: str, device_type: str) -> str:
    """``precision`` with ``auto`` resolved for ``device_type`` (``"cpu"``, ``"cuda"``).

    Raises:
        ValueError: an unknown precision, or ``tf32`` on a device that has none.
    """
    check_precision(precision)
    if precision == "auto":
        return "tf32" if device_type == "cuda" else "fp32"
    if precision == "tf32" and device_type != "cuda":
        raise ValueError(f"precision tf32 needs a CUDA device, not {device_type}")
    if precision == "bf16" and device_type == "cpu" and cpu_has_bf16() is False:
        warnings.warn(
            "this CPU has no bfloat16 instructions (AVX512-BF16, AMX or Arm BF16): bf16 "
            "network passes are emulated, over 100 times slower than fp32",
            stacklevel=2,
        )
    return precision


def cpu_has_bf16() -> bool | None:
    """Whether this CPU computes in bfloat16 natively (x86 AVX512-BF16 or AMX-BF16, Arm BF16
    or SVE-BF16), from ``torch.cpu.get_capabilities``; None where this torch has no such
    query. Without them bfloat16 is emulated: one FFDNet pass on eight 128² slices took
    about 190 s against 1.1 s in float32 on an AVX2 CPU (``benchmarks/bf16_levels.py``)."""
    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is None:
        return None
    found = capabilities()
    return any(found.get(k, False) for k in ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16"))


def pass_precision(precision: str, level: float) -> str:
    """The precision of one network pass at noise level ``level`` (:meth:`Schedule.level
    <napari_ddip.prior.schedule.Schedule.level>`) in a run of resolved ``precision``: ``fp32``
    for ``bf16`` below :data:`BF16_MIN_LEVEL`, else ``precision``."""
    return "fp32" if precision == "bf16" and level < BF16_MIN_LEVEL else precision


@contextlib.contextmanager
def network_precision(precision: str, device: torch.device) -> Iterator[None]:
    """Run the enclosed network forward passes on ``device`` in the resolved ``precision``.

    Backward passes go outside it (autocast is for forward passes only), under
    :func:`tf32_switches`.
    """
    with tf32_switches(precision, device):
        if precision == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16):
                yield
        else:
            yield


@contextlib.contextmanager
def tf32_switches(precision: str, device: torch.device) -> Iterator[None]:
    """On CUDA, allow TF32 in the enclosed float32 matrix products and convolutions for
    ``tf32`` and forbid it for ``fp32`` and ``bf16`` (whose float32 parts, such as the
    gradients of the rows below :data:`BF16_MIN_LEVEL`, stay float32); elsewhere leave the
    flags alone."""
    if device.type != "cuda":
        yield
        return
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn)
    saved = [f.allow_tf32 for f in flags]
    try:
        for f in flags:
            f.allow_tf32 = precision == "tf32"
        yield
    finally:
        for f, value in zip(flags, saved, strict=True):
            f.allow_tf32 = value
