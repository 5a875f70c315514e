"""How measurements and volumes travel as napari layers.

Every layer this plugin makes carries ``layer.metadata["napari_ddip"]``:

- measurement layers (CT sinogram, MRI k-space): ``{"kind": "ct" | "mri", "geometry": {...},
  "measurement": Measurement}``. The layer shows the sinogram ``(Z, V, D)`` as is, or the
  k-space as log10 magnitude (root-sum-of-squares over coils) ``(Z, ky, kx)``; the complex
  k-space, mask and coil maps stay in the :class:`~napari_ddip.io.Measurement`. Its scale is
  the measurement's voxel size ``(z, y, x)`` mm, so k-space overlays its image and a
  sinogram's detector axis has its physical width.
- volume layers (references, results): ``{"kind": "volume", "provenance": {...}}``, scale
  ``(z, y, x)`` = the voxel size in mm; labels layers (annotations) the same with
  ``"kind": "labels"``. A result of a slice subset records ``"slices": [start, stop]`` (of its
  measurement) in its provenance and sits at that depth: translate ``(start · z, 0, 0)`` mm.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image

from napari_ddip.io import InputError, Measurement
from napari_ddip.io.tiff import VoxelSize
from napari_ddip.io.volume import as_real_volume

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

META_KEY = "napari_ddip"
#: napari's (data, layer kwargs, layer type) triple returned by readers and sample data.
LayerData = tuple[Any, dict[str, Any], str]
#: Dynamic range of the k-space display: magnitudes below max·1e-6 show as the floor.
KSPACE_FLOOR = 1e-6
#: Provenance ``"output"`` of a layer of the per-voxel posterior standard deviation.
STD_OUTPUT = "posterior standard deviation"


def kspace_display(kspace: np.ndarray) -> np.ndarray:
    """float32 ``(Z, ky, kx)`` log10 magnitude of complex k-space ``(Z, [coils,] ky, kx)``,
    root-sum-of-squares over coils, floored at ``KSPACE_FLOOR`` × its maximum (unsampled
    zeros show as the floor)."""
    magnitude = np.abs(kspace)
    if kspace.ndim == 4:
        magnitude = np.sqrt(np.sum(magnitude**2, axis=1))
    floor = KSPACE_FLOOR * float(magnitude.max()) or KSPACE_FLOOR
    return np.log10(np.maximum(magnitude, floor)).astype(np.float32)


def measurement_layer(m: Measurement, name: str) -> LayerData:
    """The image layer showing ``m`` (see the module docstring)."""
    is_ct = m.kind == "ct"
    kwargs = {
        "name": name,
        "scale": m.voxel_size,
        "colormap": "gray" if is_ct else "magma",
        "metadata": {META_KEY: {"kind": m.kind, "geometry": m.geometry, "measurement": m}},
    }
    return (m.data if is_ct else kspace_display(m.data)), kwargs, "image"


def volume_layer(
    volume: np.ndarray, voxel_size: VoxelSize, name: str, provenance: dict[str, Any]
) -> LayerData:
    """The image layer of a real volume ``(Z, Y, X)`` with voxel size ``(z, y, x)`` mm, at the
    depth of the slices its provenance records (see :func:`first_slice`)."""
    return volume, _placed(volume, voxel_size, name, "volume", provenance), "image"


def labels_layer(
    labels: np.ndarray, voxel_size: VoxelSize, name: str, provenance: dict[str, Any]
) -> LayerData:
    """The labels layer of annotations ``(Z, Y, X)`` (unsigned integers), voxel size in mm,
    placed as :func:`volume_layer` places a volume."""
    return labels, _placed(labels, voxel_size, name, "labels", provenance), "labels"


def _placed(
    data: np.ndarray, voxel_size: VoxelSize, name: str, kind: str, provenance: dict[str, Any]
) -> dict[str, Any]:
    """Layer kwargs: name, scale, translate ``(start · z, 0, 0)`` mm and our metadata."""
    start = first_slice(provenance, data.shape[0]) or 0
    return {
        "name": name,
        "scale": voxel_size,
        "translate": (start * voxel_size[0], 0.0, 0.0),
        "metadata": {META_KEY: {"kind": kind, "provenance": provenance}},
    }


def first_slice(provenance: dict[str, Any], n_slices: int) -> int | None:
    """The first slice a volume of ``n_slices`` slices covers in its measurement, read from
    its provenance ``"slices": [start, stop]`` (``stop − start`` must be ``n_slices``); None
    when the provenance records no such range."""
    slices = provenance.get("slices")
    if not (isinstance(slices, list | tuple) and len(slices) == 2):
        return None
    start, stop = slices
    valid = all(isinstance(v, int) and not isinstance(v, bool) for v in slices)
    return start if valid and 0 <= start and stop - start == n_slices else None


def our_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The ``napari_ddip`` block of a layer's metadata (empty when the layer has none)."""
    block = metadata.get(META_KEY)
    return block if isinstance(block, dict) else {}


def provenance_of(name: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """Provenance to store with a layer saved to disk: the layer's own, else its name."""
    return our_metadata(metadata).get("provenance") or {"layer": name}


def voxel_size_from_scale(scale: Any) -> VoxelSize:
    """``(z, y, x)`` mm from a 2D or 3D layer scale (a 2D layer is one 1 mm thick slice)."""
    values = [float(s) for s in scale]
    if len(values) == 2:
        values.insert(0, 1.0)
    if len(values) != 3:
        raise InputError(f"expected a 2D or 3D layer, got a scale of {len(values)} axes")
    vz, vy, vx = values
    return vz, vy, vx


def measurement_from_layer(layer: Layer | None) -> Measurement:
    """The measurement a layer carries; raises :class:`InputError` saying what to pick."""
    if layer is None:
        raise InputError("no layer selected: open or simulate a sinogram or k-space first")
    m = our_metadata(layer.metadata).get("measurement")
    if not isinstance(m, Measurement):
        raise InputError(
            f"layer '{layer.name}' holds no measurement: pick a sinogram or k-space layer "
            "opened with napari-ddip or made by 'Simulate measurement'"
        )
    return m


def volume_from_layer(layer: Layer | None) -> tuple[np.ndarray, VoxelSize]:
    """A real image layer's data as float32 ``(Z, Y, X)`` and its voxel size ``(z, y, x)`` mm;
    raises :class:`InputError` saying what to pick for any other layer."""
    if layer is None:
        raise InputError("no image layer selected: open or add an image volume first")
    if not isinstance(layer, Image):
        raise InputError(f"layer '{layer.name}' is not an image layer: pick an image volume")
    if layer.rgb or layer.multiscale:
        raise InputError(f"layer '{layer.name}' is RGB or multiscale: pick a grey-value volume")
    kind = our_metadata(layer.metadata).get("kind")
    if kind in ("ct", "mri"):
        raise InputError(
            f"layer '{layer.name}' is a {kind.upper()} measurement, not a volume: "
            "pick an image volume (a reference or a reconstruction)"
        )
    volume = as_real_volume(np.asarray(layer.data), f"layer '{layer.name}'")
    return volume, voxel_size_from_scale(layer.scale)


def show_layer(viewer: napari.Viewer, layer_data: LayerData) -> Layer:
    """Add ``layer_data`` to ``viewer``, or update the layer of the same name and type in place
    (so that re-running a widget does not stack copies); returns the layer."""
    data, kwargs, layer_type = layer_data
    same = [
        layer
        for layer in viewer.layers
        if layer.name == kwargs["name"] and type(layer).__name__.lower() == layer_type
    ]
    if same:
        layer = same[0]
        layer.data = data
        for key, value in kwargs.items():
            setattr(layer, key, value)
        if "contrast_limits" not in kwargs and hasattr(layer, "reset_contrast_limits"):
            layer.reset_contrast_limits()
        return layer
    return getattr(viewer, f"add_{layer_type}")(data, **kwargs)


def merge_preview(
    earlier: np.ndarray | None, n_slices: int, slices: tuple[int, ...], volume: np.ndarray
) -> np.ndarray:
    """The preview volume ``(n_slices, Y, X)`` after a preview of ``slices`` (``volume``:
    ``(len(slices), Y, X)``): those slices replace the ``earlier`` preview's (zeros where there
    was none, e.g. D3IP's first look at the slices of its first adaptation step)."""
    if len(slices) == n_slices:
        return volume
    shape = (n_slices, *volume.shape[1:])
    merged = np.zeros(shape, volume.dtype)
    if earlier is not None and earlier.shape == shape:
        merged[:] = earlier
    merged[list(slices)] = volume
    return merged
