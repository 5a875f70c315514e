"""npe2 sample data: each returns a reference volume layer and its measurement layer.

The data come from :mod:`napari_ddip.samples` (made on the fly; nothing downloaded).
"""

from __future__ import annotations

from napari_ddip.viewer.layers import LayerData, measurement_layer, volume_layer

#: Gap between a sample's image and its sinogram drawn beside it, in image widths.
GAP = 0.1


def ct_phantom() -> list[LayerData]:
    """Ellipsoid phantom ``(32, 128, 128)`` and its 60-view sinogram with 1 % noise, drawn to
    the right of the phantom (translated along x by its width and a gap) so neither hides the
    other; reconstructions of the sinogram overlay the phantom."""
    from napari_ddip.samples import ct_phantom_sample

    sample = ct_phantom_sample()
    sinogram = measurement_layer(sample.measurement, "phantom sinogram")
    width = sample.volume.shape[-1] * sample.voxel_size[-1]  # mm
    sinogram[1]["translate"] = (0.0, 0.0, (1 + GAP) * width)
    return [volume_layer(sample.volume, sample.voxel_size, "phantom", sample.provenance), sinogram]


def mri_brain() -> list[LayerData]:
    """MNI152 T1 brain slab ``(32, 128, 128)`` at 2 mm and its ×4 undersampled k-space."""
    from napari_ddip.samples import mri_brain_sample

    sample = mri_brain_sample()
    return [
        volume_layer(sample.volume, sample.voxel_size, "brain", sample.provenance),
        measurement_layer(sample.measurement, "brain k-space"),
    ]
