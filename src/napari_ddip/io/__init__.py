"""Files in and out: volumes, measurements with their geometry, results with provenance.

Everything here raises :class:`InputError` with a message for the user when a file or value
does not fit; nothing imports Qt or napari.
"""

from napari_ddip.io.errors import InputError, require_new_output
from napari_ddip.io.measurement import (
    Measurement,
    check_measurement_path,
    load_measurement,
    save_measurement,
)
from napari_ddip.io.operators import operator_from_measurement
from napari_ddip.io.volume import Volume, check_result_path, read_volume, write_result

__all__ = [
    "InputError",
    "Measurement",
    "Volume",
    "check_measurement_path",
    "check_result_path",
    "load_measurement",
    "operator_from_measurement",
    "read_volume",
    "require_new_output",
    "save_measurement",
    "write_result",
]
