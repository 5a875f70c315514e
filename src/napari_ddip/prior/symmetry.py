"""Geometric self-ensemble: a network's output averaged over symmetries of the slice.

A prior learnt from images has no preferred orientation, but its network is not exactly
equivariant: rotated or transposed, a slice comes back with other errors. Averaging

    f̄(x) = 1/n · Σ_{k<n} T_k⁻¹ f(T_k x)

over the first ``n`` of the eight symmetries ``T_k`` of the square (the dihedral group D4)
keeps what every orientation agrees on and averages the rest down (the "self-ensemble" of
Timofte et al. 2016, "Seven ways to improve example-based single image super resolution";
KAIR's ``x8`` test mode). The first 1, 2, 4 and 8 form a group each (identity; + the half
turn; + the transpose and the anti-transpose; + the quarter turns and the two flips), so
``f̄`` is exactly equivariant under them: ``f̄(T_k x) = T_k f̄(x)`` for ``k < n``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: The ensemble sizes allowed: the subgroups of D4 that :data:`SYMMETRIES` lists first.
ENSEMBLE_SIZES = (1, 2, 4, 8)

Transform = Callable[[torch.Tensor], torch.Tensor]


def _transpose(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-2, -1)


def _half_turn(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-2, -1)


def _anti_transpose(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-2, -1).transpose(-2, -1)


def _quarter_turn(x: torch.Tensor) -> torch.Tensor:
    return torch.rot90(x, 1, (-2, -1))


def _three_quarter_turn(x: torch.Tensor) -> torch.Tensor:
    return torch.rot90(x, -1, (-2, -1))


def _flip_rows(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-2)


def _flip_columns(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


#: ``(T_k, T_k⁻¹)`` on the last two axes ``(H, W)``, in the order whose first 1, 2, 4 and 8
#: are groups (module docstring).
SYMMETRIES: tuple[tuple[Transform, Transform], ...] = (
    (lambda x: x, lambda x: x),
    (_half_turn, _half_turn),
    (_transpose, _transpose),
    (_anti_transpose, _anti_transpose),
    (_quarter_turn, _three_quarter_turn),
    (_three_quarter_turn, _quarter_turn),
    (_flip_rows, _flip_rows),
    (_flip_columns, _flip_columns),
)


def check_ensemble(n: int) -> None:
    """Raise ValueError unless ``n`` is one of :data:`ENSEMBLE_SIZES`."""
    if n not in ENSEMBLE_SIZES:
        sizes = ", ".join(map(str, ENSEMBLE_SIZES))
        raise ValueError(f"ensemble must be one of {sizes} (symmetries of the slice), not {n}")


def ensemble_mean(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, n: int
) -> torch.Tensor:
    """``f̄(x) = 1/n Σ_{k<n} T_k⁻¹ f(T_k x)`` for slices ``x (B, H, W)`` and a map ``f`` from
    slices to slices of the same shape (``n`` in :data:`ENSEMBLE_SIZES`; ``n`` calls of
    ``f``; 1: ``f(x)`` itself)."""
    check_ensemble(n)
    if n == 1:
        return f(x)
    return sum(inverse(f(forward(x))) for forward, inverse in SYMMETRIES[:n]) / n
