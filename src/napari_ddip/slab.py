"""Contiguous blocks of a volume's slices (plain integers: no torch, light to import)."""

from __future__ import annotations


def central_block(n: int, most: int) -> slice:
    """The ``min(most, n)`` contiguous slices at the centre of ``n`` (all of them if ``most``
    is 0); an odd remainder puts the extra slice after the block."""
    size = n if most == 0 else min(most, n)
    start = (n - size) // 2
    return slice(start, start + size)
