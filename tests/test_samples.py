"""Real anatomy that ships inside PyPI wheels, as the benchmarks load it."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ddip.io import InputError
from napari_ddip.samples import DWI_SLICES, dwi_b0_volume


def test_dwi_b0_volume_is_one_real_brain_scaled_to_unit_range() -> None:
    volume = dwi_b0_volume()
    assert volume.shape == (DWI_SLICES, 128, 128) and volume.dtype == np.float32
    assert volume.min() == 0.0 and volume.max() == 1.0
    assert 0.0005 < (volume == 1.0).mean() < 0.002  # only the 0.1 % brightest voxels clip
    head = volume > 0.05
    assert 0.1 < head.mean() < 0.5  # a head inside a dark field of view
    np.testing.assert_array_equal(dwi_b0_volume(3), volume[:3])


@pytest.mark.parametrize("n_slices", [0, DWI_SLICES + 1])
def test_dwi_b0_volume_refuses_slices_it_does_not_have(n_slices: int) -> None:
    with pytest.raises(InputError, match="slices"):
        dwi_b0_volume(n_slices)
