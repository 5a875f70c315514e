"""Shared small fixtures (keep them tiny: the test machine has 2 cores)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def tiny_volume() -> np.ndarray:
    """A ``(4, 64, 64)`` float32 ellipsoid phantom in [0, 1]; the 2 middle slices hold signal."""
    from napari_ddip.prior.phantoms import ellipsoid_volume

    return ellipsoid_volume((4, 64, 64), seed=1)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (small ops on a loaded 2-core machine stall otherwise)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
