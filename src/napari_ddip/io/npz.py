"""Reading NumPy files without pickles, with user-facing errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from napari_ddip.io.errors import InputError

#: First bytes of a ``.npy`` file and of a (non-empty or empty) zip archive, as np.load tells
#: them apart; anything else np.load would unpickle.
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def read_npy(path: Path) -> np.ndarray:
    """The array in a ``.npy`` file."""
    magic = _magic(path)
    if magic.startswith(ZIP_MAGIC):
        raise InputError(f"{path}: not a .npy file (it is a .npz archive)")
    if not magic.startswith(NPY_MAGIC):
        raise InputError(f"{path}: not a valid .npy file (it does not start with a NumPy header)")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of a ``.npz`` archive, by name."""
    magic = _magic(path)
    if magic.startswith(NPY_MAGIC):
        raise InputError(f"{path}: not a .npz archive (it is a single array)")
    if not magic.startswith(ZIP_MAGIC):
        raise InputError(f"{path}: not a readable .npz file (it is not a zip archive)")
    errors = (ValueError, OSError, EOFError, zipfile.BadZipFile)
    try:
        npz = np.load(path, allow_pickle=False)
    except errors as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None
    try:
        with npz:
            return {name: npz[name] for name in npz.files}
    except errors as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None


def _magic(path: Path) -> bytes:
    """The first bytes of ``path`` (enough to tell ``.npy`` from ``.npz`` from anything else)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(NPY_MAGIC))  # the longest magic
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
