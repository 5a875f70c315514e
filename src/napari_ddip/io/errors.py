"""User-facing input errors and the checks that raise them.

Every problem with a file or a value the user gave (missing file, wrong shape, NaN, wrong
dtype, missing geometry, existing output) is an :class:`InputError` whose message alone tells
what is wrong; the CLI prints it as one line and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


class InputError(ValueError):
    """Bad user input: the message is meant for the user, without a traceback."""


def require_file(path: str | Path) -> Path:
    """Return ``path`` as a :class:`Path`, or raise if it is not an existing file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    return path


def require_new_output(path: str | Path, overwrite: bool) -> Path:
    """Return ``path`` if it may be written: it must not exist unless ``overwrite``, and
    never be a folder (``--overwrite`` replaces files, not folders)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a file name for the output")
    if path.exists() and not overwrite:
        raise InputError(f"{path}: output exists (pass --overwrite to replace it)")
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")
    return path


def require_suffix(path: Path, allowed: tuple[str, ...], what: str) -> str:
    """The lower-case suffix of ``path``, which must be one of ``allowed``."""
    suffix = path.suffix.lower()
    if suffix not in allowed:
        shown = ".nii.gz" if path.name.lower().endswith(".nii.gz") else suffix
        raise InputError(f"{path}: {what} must be one of {', '.join(allowed)} (got '{shown}')")
    return suffix


def require_finite(array: np.ndarray, what: str) -> None:
    """Raise if ``array`` holds NaN or ±Inf."""
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InputError(f"{what} contains {bad} NaN/Inf value(s)")


def require_ndim(array: np.ndarray, allowed: tuple[int, ...], what: str, axes: str) -> None:
    """Raise if ``array.ndim`` is not in ``allowed``; ``axes`` names the expected layout."""
    if array.ndim not in allowed:
        raise InputError(f"{what} has shape {array.shape}; expected {axes}")


def require_nonempty(array: np.ndarray, what: str, axes: Sequence[str]) -> None:
    """Raise if an axis of ``array`` has length 0; ``axes`` names its axes (``"slices"``, ...)."""
    for length, name in zip(array.shape, axes, strict=True):
        if length == 0:
            raise InputError(f"{what} has shape {array.shape}: it has no {name}")


class InputWarning(UserWarning):
    """Something in a file the reader worked around (and says how): the CLI prints it as one
    ``napari-ddip: warning: ...`` line, napari as a notification."""
