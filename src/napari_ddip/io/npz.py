"""Reading NumPy files without pickles, with user-facing errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from napari_ddip.io.errors import InputError


def read_npy(path: Path) -> np.ndarray:
    """The array in a ``.npy`` file."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy file ({exc})") from None
    if not isinstance(array, np.ndarray):
        raise InputError(f"{path}: not a .npy file (it is a .npz archive)")
    return array


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of a ``.npz`` archive, by name."""
    errors = (ValueError, OSError, EOFError, zipfile.BadZipFile)
    try:
        npz = np.load(path, allow_pickle=False)
    except errors as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise InputError(f"{path}: not a .npz archive (it is a single array)")
    try:
        with npz:
            return {name: npz[name] for name in npz.files}
    except errors as exc:
        raise InputError(f"{path}: not a readable .npz file ({exc})") from None
