"""npe2 sample data: each returns a reference volume layer and its measurement layer.

The data come from :mod:`napari_ddip.samples` (made on the fly; nothing downloaded).
"""

from __future__ import annotations

from napari_ddip.viewer.layers import LayerData, measurement_layer, volume_layer


def ct_phantom() -> list[LayerData]:
    """Ellipsoid phantom ``(32, 128, 128)`` and its 60-view sinogram with 1 % noise."""
    from napari_ddip.samples import ct_phantom_sample

    sample = ct_phantom_sample()
    return [
        volume_layer(sample.volume, sample.voxel_size, "phantom", sample.provenance),
        measurement_layer(sample.measurement, "phantom sinogram"),
    ]


def mri_brain() -> list[LayerData]:
    """MNI152 T1 brain slab ``(32, 128, 128)`` at 2 mm and its ×4 undersampled k-space."""
    from napari_ddip.samples import mri_brain_sample

    sample = mri_brain_sample()
    return [
        volume_layer(sample.volume, sample.voxel_size, "brain", sample.provenance),
        measurement_layer(sample.measurement, "brain k-space"),
    ]
