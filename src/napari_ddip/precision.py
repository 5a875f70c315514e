"""Arithmetic precision of the network passes (reconstruction and prior training).

- ``fp32``: full float32 (on CUDA also with TF32 switched off, which cuDNN convolutions
  otherwise use by default).
- ``tf32``: float32 storage, TensorFloat-32 matrix products and convolutions (CUDA only).
- ``bf16``: autocast of the network to bfloat16 (CPU or CUDA); its output is cast back to
  float32 before the sampler and the data consistency, which always run in float32. In
  training the weights, their gradients, the optimiser and the EMA stay float32 (mixed
  precision); only the forward and backward passes of the network run in bfloat16.
- ``auto``: ``tf32`` on CUDA, ``fp32`` elsewhere.

The TF32 switches are process-wide torch flags: :func:`network_precision` (forward passes) and
:func:`tf32_switches` (backward passes) set them for the duration of a pass and restore them
afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

PRECISIONS = ("auto", "fp32", "tf32", "bf16")


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
    return precision


@contextlib.contextmanager
def network_precision(precision: str, device: torch.device) -> Iterator[None]:
    """Run the enclosed network forward passes on ``device`` in the resolved ``precision``.

    Backward passes go outside it (autocast is for forward passes only), under
    :func:`tf32_switches`.
    """
    if precision == "bf16":
        with torch.autocast(device.type, dtype=torch.bfloat16):
            yield
        return
    with tf32_switches(precision, device):
        yield


@contextlib.contextmanager
def tf32_switches(precision: str, device: torch.device) -> Iterator[None]:
    """On CUDA, allow TF32 in the enclosed float32 matrix products and convolutions for
    ``tf32`` and forbid it for ``fp32``; elsewhere, and for ``bf16``, leave the flags alone."""
    if device.type != "cuda" or precision == "bf16":
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
