"""The geometry of a parallel-beam CT scan: what a sinogram file stores and the projector builds.

:class:`CTGeometry` is the one description of a scan: the measurement files validate theirs
with it (:mod:`napari_ddip.io.measurement`) and :class:`~napari_ddip.physics.ct.ParallelBeamCT`
is built from it, so both hold the same defaults and refuse the same values. All lengths are
in pixels of the reconstructed image; angles are in degrees. Importing this module does not
import torch (the file layer uses it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FBP_FILTERS = ("ramp", "hann")
#: Degrees a full parallel-beam scan covers (a half-turn); fewer is a limited-angle scan.
FULL_SCAN_DEG = 180.0
#: The keys a stored geometry must have, with what they mean (for messages).
REQUIRED = {
    "image_size": "the reconstructed image side N in pixels",
    "angles_deg": "the projection angle of every view, in degrees",
}


def default_n_det(image_size: int) -> int:
    """Detector bins that see every ray through an ``N×N`` image: ``ceil(√2·N)``."""
    return math.ceil(math.sqrt(2) * image_size)


@dataclass(frozen=True)
class CTGeometry:
    """A parallel-beam scan of ``N×N`` images (see :mod:`napari_ddip.physics.ct` for where
    rays and pixels sit).

    Attributes:
        image_size: ``N``, a positive whole number.
        angles_deg: the angle of every view ``V``, finite, in degrees (any set: sparse,
            limited, irregular).
        n_det: detector bins ``D``; None means :func:`default_n_det`.
        det_spacing: detector bin width in pixels, finite and above 0.
        fbp_filter: ``"ramp"`` (Ram-Lak) or ``"hann"`` (Ram-Lak × Hann window).

    Construction normalises the values (ints, a tuple of floats) and raises ``ValueError``
    naming the field that does not fit.
    """

    image_size: int
    angles_deg: tuple[float, ...]
    n_det: int | None = None
    det_spacing: float = 1.0
    fbp_filter: str = "ramp"

    def __post_init__(self) -> None:
        size = positive_int(self.image_size, "CT geometry image_size")
        n_det = default_n_det(size) if self.n_det is None else self.n_det
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "angles_deg", _angles(self.angles_deg))
        object.__setattr__(self, "n_det", positive_int(n_det, "CT geometry n_det"))
        object.__setattr__(self, "det_spacing", _det_spacing(self.det_spacing))
        if self.fbp_filter not in FBP_FILTERS:
            raise ValueError(
                f"CT geometry fbp_filter must be one of {FBP_FILTERS}, got {self.fbp_filter!r}"
            )

    @classmethod
    def from_dict(cls, geometry: Any) -> CTGeometry:
        """The geometry a file stores (a JSON object: :data:`REQUIRED` keys, the others
        optional, ``kind`` ``"ct"`` if present); ValueError naming what is missing or wrong."""
        if not isinstance(geometry, dict):
            raise ValueError(f"CT geometry must be a JSON object, got {type(geometry).__name__}")
        missing = [f"'{k}' ({why})" for k, why in REQUIRED.items() if k not in geometry]
        if missing:
            raise ValueError(f"CT geometry is missing {', '.join(missing)}")
        if geometry.get("kind", "ct") != "ct":
            raise ValueError(f"geometry is for {geometry['kind']!r}, not a CT sinogram")
        return cls(
            image_size=geometry["image_size"],
            angles_deg=geometry["angles_deg"],
            n_det=geometry.get("n_det"),
            det_spacing=geometry.get("det_spacing", cls.det_spacing),
            fbp_filter=geometry.get("fbp_filter", cls.fbp_filter),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object a file stores; :meth:`from_dict` reads it back."""
        return {
            "kind": "ct",
            "image_size": self.image_size,
            "angles_deg": list(self.angles_deg),
            "n_det": self.n_det,
            "det_spacing": self.det_spacing,
            "fbp_filter": self.fbp_filter,
        }

    @property
    def sinogram_shape(self) -> tuple[int, int]:
        """One slice's sinogram ``(V, D)``."""
        return (len(self.angles_deg), int(self.n_det))

    def check_sinogram(self, shape: tuple[int, ...]) -> None:
        """ValueError unless a sinogram of ``shape`` ``(Z, V, D)`` fits this geometry."""
        (n_angles, n_det), (_, n_views, n_bins) = self.sinogram_shape, shape
        if n_angles != n_views:
            raise ValueError(f"CT geometry has {n_angles} angles but the sinogram {n_views} views")
        if n_det != n_bins:
            raise ValueError(f"CT geometry has {n_det} detector bins but the sinogram {n_bins}")


def _is_number(value: Any) -> bool:
    """Whether ``value`` is a real number (an int or float, not a bool or a string)."""
    real = (int, float, np.integer, np.floating)
    return isinstance(value, real) and not isinstance(value, (bool, np.bool_))


def positive_int(value: Any, what: str) -> int:
    """``value`` as an int; it must be a positive whole number (``32`` or ``32.0``, not
    ``32.7``, ``0``, ``true`` or ``"32"``)."""
    if not _is_number(value) or not float(value).is_integer() or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def _angles(angles: Any) -> tuple[float, ...]:
    """``angles_deg`` as floats; each must be a finite number (degrees)."""
    what = "CT geometry angles_deg"
    try:  # a string would read as one number or fail; it is never a list of angles
        array = None if isinstance(angles, (str, bytes)) else np.asarray(angles, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is None or array.ndim != 1:
        raise ValueError(f"{what} must be a list of numbers (degrees), got {angles!r}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"{what} holds {bad.size} NaN/Inf value(s) (first at view {bad[0]}); "
            "every view needs a finite angle"
        )
    return tuple(float(a) for a in array)


def _det_spacing(value: Any) -> float:
    """``det_spacing`` (detector bin width in pixels): a finite number above 0."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"CT geometry det_spacing (detector bin width in pixels) must be a finite number "
            f"above 0, got {value!r}"
        )
    return float(value)
