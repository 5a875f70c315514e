"""Files in and out: volumes, measurements with their geometry, results with provenance.

Everything here raises :class:`InputError` with a message for the user when a file or value
does not fit; nothing imports Qt or napari. Importing this package does not import torch:
:func:`operator_from_measurement` (which needs it) is loaded on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from napari_ddip.io.errors import InputError, InputWarning, require_new_output
from napari_ddip.io.labels import read_labels, write_labels
from napari_ddip.io.measurement import (
    Measurement,
    check_measurement_path,
    is_measurement_file,
    load_measurement,
    save_measurement,
)
from napari_ddip.io.volume import (
    Volume,
    check_result_path,
    read_volume,
    tagged_path,
    write_result,
)

_LAZY = {"operator_from_measurement": "napari_ddip.io.operators"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_ddip.io' has no attribute {name!r}")


__all__ = [
    "InputError",
    "InputWarning",
    "Measurement",
    "Volume",
    "check_measurement_path",
    "check_result_path",
    "is_measurement_file",
    "load_measurement",
    "operator_from_measurement",
    "read_labels",
    "read_volume",
    "require_new_output",
    "save_measurement",
    "tagged_path",
    "write_labels",
    "write_result",
]
