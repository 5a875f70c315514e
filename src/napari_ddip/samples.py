"""Built-in sample data: a volume with its simulated measurement (no Qt, nothing downloaded).

- CT: a 32×128×128 ellipsoid phantom (1 mm voxels) and its 60-view sinogram with 1 % noise.
- MRI: 32 axial slices of nilearn's MNI152 T1 template (real anatomy; the template ships inside
  the nilearn wheel) at 2 mm, zero-padded to 128×128 and scaled to [0, 1], with single-coil
  k-space undersampled ×4 by a Poisson-disc mask.
- A second real brain for the benchmarks: dipy's ``S0_10slices`` (10 axial b0 slices of one
  diffusion MRI scan, 128×128 at 2 mm, ships inside the dipy wheel), a single subject with its
  own noise and texture where the MNI152 template is an average of 152 brains.

The napari sample-data commands, the demo and the benchmarks all build their data here.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from napari_ddip.io import InputError, Measurement
from napari_ddip.io.nifti import nifti_to_zyx
from napari_ddip.io.tiff import VoxelSize
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.simulate import simulate_ct, simulate_mri

CT_SHAPE = (32, 128, 128)
CT_VIEWS = 60
CT_NOISE = 0.01

MRI_SIZE = 128
MRI_SLICES = 32
#: First axial slice of the 2 mm template used (the slab runs from the temporal lobes and
#: the cerebellum's top through the ventricles to the centrum semiovale).
MRI_FIRST_SLICE = 28
MRI_VOXEL_MM = 2.0
MRI_ACCEL = 4.0

DWI_SLICES = 10


@dataclass(frozen=True)
class Sample:
    """A reference volume and its measurement.

    Attributes:
        volume: float32 ``(Z, Y, X)`` in [0, 1], the ground truth.
        measurement: the simulated measurement of ``volume`` (its voxel size is the volume's).
        provenance: JSON-ready description of how ``volume`` was made.
    """

    volume: np.ndarray
    measurement: Measurement
    provenance: dict[str, Any]

    @property
    def voxel_size(self) -> VoxelSize:
        """``(z, y, x)`` in mm."""
        return self.measurement.voxel_size


def ct_phantom_sample(seed: int = 0) -> Sample:
    """The ellipsoid phantom ``(32, 128, 128)`` and its 60-view, 1 %-noise sinogram
    ``(32, 60, 182)``."""
    volume = ellipsoid_volume(CT_SHAPE, seed=seed)
    measurement = simulate_ct(volume, n_views=CT_VIEWS, noise=CT_NOISE, seed=seed)
    return Sample(volume, measurement, {"phantom": "ellipsoid_volume", "seed": seed})


def mni_brain_volume(
    size: int = MRI_SIZE,
    n_slices: int = MRI_SLICES,
    voxel_mm: int = int(MRI_VOXEL_MM),
    first_slice: int = MRI_FIRST_SLICE,
) -> np.ndarray:
    """Axial slices of the MNI152 T1 template: float32 ``(n_slices, size, size)`` in [0, 1].

    ``voxel_mm`` 2 (117×99 slices) or 1 (233×197); the slab starts at the same height
    (``first_slice`` at 2 mm) whatever the resolution. Axes run inferior → superior,
    anterior → posterior (anterior at the top) and from the subject's left to right
    (neurological view); slices are zero-padded (centred) to ``size``×``size``. Needs nilearn
    (``napari-ddip[data]``).
    """
    try:
        from nilearn.datasets import load_mni152_template
    except ImportError:
        raise InputError(
            "the MRI sample needs nilearn (its MNI152 template ships in the wheel): "
            "pip install 'napari-ddip[data]'"
        ) from None
    if voxel_mm not in (1, 2):
        raise InputError(f"the MNI152 template comes at 1 or 2 mm, not {voxel_mm}")
    template, _ = nifti_to_zyx(load_mni152_template(resolution=voxel_mm), "MNI152 template")
    first = first_slice * int(MRI_VOXEL_MM) // voxel_mm
    if first + n_slices > template.shape[0]:
        raise InputError(f"the template has only {template.shape[0] - first} slices above the slab")
    volume = template[first : first + n_slices]
    margins = [size - n for n in volume.shape[1:]]
    if min(margins) < 0:
        raise InputError(f"{size}² is smaller than the template's {volume.shape[1:]} slices")
    volume = np.pad(volume, [(0, 0)] + [(m // 2, m - m // 2) for m in margins])
    return (volume / volume.max()).astype(np.float32)


def dwi_b0_volume(n_slices: int = DWI_SLICES) -> np.ndarray:
    """The first ``n_slices`` of dipy's ``S0_10slices`` b0 scan: float32 ``(n_slices, 128,
    128)`` in [0, 1] (divided by the scan's 99.9th percentile and clipped: a few saturated
    CSF voxels would otherwise squeeze the brain into [0, 0.2]), 2 mm in-plane, anterior on top.

    One real subject, noise included; its slices are about 32 mm apart, so neighbouring slices
    are not correlated as in a 3D scan. Needs dipy (``napari-ddip[data]``); the file ships in
    its wheel and is read with nibabel (a dipy dependency) without importing dipy.
    """
    spec = find_spec("dipy")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "the second benchmark brain needs dipy (its b0 scan ships in the wheel): "
            "pip install 'napari-ddip[data]'"
        )
    if not 1 <= n_slices <= DWI_SLICES:
        raise InputError(f"the b0 scan has {DWI_SLICES} slices, not {n_slices}")
    import nibabel

    path = Path(spec.submodule_search_locations[0]) / "data" / "files" / "S0_10slices.nii.gz"
    scan, _ = nifti_to_zyx(nibabel.load(path), path.name)
    return np.clip(scan[:n_slices] / np.percentile(scan, 99.9), 0, 1)


def mri_brain_sample(seed: int = 0) -> Sample:
    """The MNI152 brain slab ``(32, 128, 128)`` and its ×4 Poisson-disc single-coil k-space."""
    volume = mni_brain_volume()
    voxel_size = (MRI_VOXEL_MM,) * 3
    measurement = simulate_mri(volume, accel=MRI_ACCEL, seed=seed, voxel_size=voxel_size)
    provenance = {
        "source": "nilearn MNI152 T1 template (ICBM 2009a, 2 mm)",
        "slices": [MRI_FIRST_SLICE, MRI_FIRST_SLICE + MRI_SLICES],
    }
    return Sample(volume, measurement, provenance)
