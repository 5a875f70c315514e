"""Sample data open through the plugin manifest with their measurement layers."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ddip.viewer.layers import META_KEY

pytestmark = pytest.mark.napari


def test_samples_open_with_volume_and_measurement(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample("napari-ddip", "ct-phantom")
    phantom, sinogram = viewer.layers["phantom"], viewer.layers["phantom sinogram"]
    assert phantom.data.shape == (32, 128, 128) and phantom.data.dtype == np.float32
    m = sinogram.metadata[META_KEY]["measurement"]
    assert sinogram.data.shape == m.data.shape == (32, 60, 182)
    assert m.provenance["settings"]["noise"] == 0.01
    assert phantom.metadata[META_KEY]["provenance"]["phantom"] == "ellipsoid_volume"
    # drawn side by side: the sinogram starts to the right of where the phantom ends (x, mm)
    assert sinogram.extent.world[0, -1] > phantom.extent.world[1, -1]
    np.testing.assert_allclose(sinogram.translate[:2], (0.0, 0.0))

    viewer.open_sample("napari-ddip", "mri-brain")
    brain, kspace = viewer.layers["brain"], viewer.layers["brain k-space"]
    assert brain.data.shape == (32, 128, 128) and brain.data.max() == 1.0
    assert 0.2 < np.mean(brain.data > 0.1) < 0.8  # a head, not an empty or full frame
    np.testing.assert_allclose(brain.scale, (2.0, 2.0, 2.0))
    m = kspace.metadata[META_KEY]["measurement"]
    assert m.kind == "mri" and m.data.dtype == np.complex64 and m.data.shape == (32, 128, 128)
    assert m.geometry["acceleration"] == pytest.approx(4.0, rel=0.05)
    assert kspace.data.dtype == np.float32
    np.testing.assert_allclose(kspace.scale, brain.scale)  # k-space overlays its image
