"""npe2 writers: image layers to float32 TIFF or NIfTI (or their measurement), labels layers to
uint8/uint16 TIFF or NIfTI.

napari calls a single-layer writer as ``writer(path, data, meta)`` with ``meta`` the layer's
state (``name``, ``scale``, ``metadata``, ...) and asks before replacing a file, so these
writers overwrite. Each returns the list of paths written.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_ddip.io import InputError, save_measurement, write_labels, write_result
from napari_ddip.viewer.layers import our_metadata, provenance_of, voxel_size_from_scale


def write_image(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """A volume layer → float32 TIFF or NIfTI with voxel size (layer scale, mm) and provenance.

    A CT sinogram layer is saved as its measurement (TIFF with geometry) instead, so that it
    can be opened and reconstructed again; MRI k-space must go to ``.npz``.
    """
    measurement = our_metadata(meta["metadata"]).get("measurement")
    if measurement is not None:
        return [str(save_measurement(path, measurement, overwrite=True))]
    voxel_size = voxel_size_from_scale(meta["scale"])
    provenance = provenance_of(meta["name"], meta["metadata"])
    return [str(write_result(path, np.asarray(data), voxel_size, provenance, overwrite=True))]


def write_measurement(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """A sinogram or k-space layer → its measurement ``.npz`` (data, geometry, mask, maps)."""
    measurement = our_metadata(meta["metadata"]).get("measurement")
    if measurement is None:
        raise InputError(
            f"layer '{meta['name']}' holds no measurement: only sinogram and k-space layers "
            "opened or simulated with napari-ddip can be saved as .npz"
        )
    return [str(save_measurement(path, measurement, overwrite=True))]


def write_labels_layer(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """A labels layer (annotations) → uint8/uint16 TIFF or NIfTI with voxel size (layer scale,
    mm)."""
    voxel_size = voxel_size_from_scale(meta["scale"])
    provenance = provenance_of(meta["name"], meta["metadata"])
    return [str(write_labels(path, np.asarray(data), voxel_size, provenance, overwrite=True))]
