"""Named sets of setting values: ``--preset`` on the command line, "preset" in the Reconstruct
widget.

A :class:`Preset` holds setting values (some by measurement kind) applied on top of a method's
defaults; only the settings the method takes apply (:func:`preset_settings`), and the user's
own values win over the preset's (:func:`apply_preset`)::

    values = apply_preset("preview", METHODS["d3ip"], "ct", {"nfe": "12"})

- ``preview``: a first look in about a minute on a laptop CPU for a few slices: fewer
  sampling steps, adaptation steps and slices per step; the widget also picks the
  :attr:`Preset.middle_slices` middle slices.
- ``standard``: the shipped defaults.
- ``quality``: the equivariant self-supervision with four rotations (``equivariant`` 4: the
  prior fine-tuned as a denoiser on rotated, re-measured and reconstructed copies of a block
  of the result, then applied to all of it); for five or six reconstructions of the block
  and the fine-tuning (BENCHMARKS.md, "Equivariant self-supervision").
- ``best``: the same with twice the fine-tuning (``equivariant_steps`` 600) on copies of
  8 slices (``equivariant_slices`` 8), chosen on the tuning slab (+0.05 dB there over
  ``quality`` for twice its time).
- ``paper``: the settings of the D3IP paper (Chung & Ye 2024): NFE 50, evenly spaced timesteps,
  ``L`` 10 for CT and 5 for MRI, ``K`` 3, learning rate 1e-3 for CT and 1e-4 for MRI, and
  every step of the horizon adapted (``discrepancy`` 0: no stop at the noise).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from napari_ddip.io import InputError
from napari_ddip.slab import central_block

if TYPE_CHECKING:
    from napari_ddip.methods import Method


@dataclass(frozen=True)
class Preset:
    """A named set of setting values.

    Attributes:
        name: what the user chooses.
        summary: one line for ``--help`` and the widget.
        values: setting values for every measurement kind.
        by_kind: further values by kind (``"ct"``, ``"mri"``), over ``values``.
        middle_slices: the widget reconstructs only this many middle slices (None: all).
    """

    name: str
    summary: str
    values: Mapping[str, Any] = field(default_factory=dict)
    by_kind: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    middle_slices: int | None = None

    def slice_range(self, n_slices: int) -> tuple[int, int]:
        """``(start, stop)`` of the slices to reconstruct of ``n_slices``: the
        :attr:`middle_slices` middle ones, or all."""
        block = central_block(n_slices, self.middle_slices or 0)
        return block.start, block.stop

    def for_kind(self, kind: str) -> dict[str, Any]:
        """Every value of the preset for measurements of ``kind``."""
        return dict(self.values) | dict(self.by_kind.get(kind, {}))


#: The presets by name (the order of ``--help`` and the widget).
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "preview",
            "a first look in about a minute on a laptop CPU: NFE 10, L 3, K 2, 4 middle slices",
            {"nfe": 10, "adapt_steps": 3, "k_slices": 2},
            middle_slices=4,
        ),
        Preset("standard", "the shipped defaults"),
        Preset(
            "quality",
            "the prior fine-tuned on 4 rotated, re-measured copies of 4 slices of the result "
            "(equivariant 4): +0.5 to +1.5 dB with dds-tv for 5 or 6 reconstructions of "
            "those slices",
            {"equivariant": 4},
        ),
        Preset(
            "best",
            "quality with 600 fine-tuning steps on copies of 8 slices: −0.05 to +0.19 dB "
            "against quality, up to twice its time",
            {"equivariant": 4, "equivariant_steps": 600, "equivariant_slices": 8},
        ),
        Preset(
            "paper",
            "the D3IP paper's settings: NFE 50 evenly spaced, L 10 CT / 5 MRI, K 3, "
            "lr 1e-3 CT / 1e-4 MRI, every step adapted (minutes per slice on a CPU)",
            {"nfe": 50, "timestep_power": 1.0, "k_slices": 3, "discrepancy": 0.0},
            {"ct": {"adapt_steps": 10, "lr": 1e-3}, "mri": {"adapt_steps": 5, "lr": 1e-4}},
        ),
    )
}
DEFAULT_PRESET = "standard"


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (InputError naming the presets)."""
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r} (presets: {', '.join(PRESETS)})")
    return PRESETS[name]


def preset_settings(name: str, method: Method, kind: str) -> dict[str, Any]:
    """The values of preset ``name`` that ``method`` takes, for measurements of ``kind``."""
    values = get_preset(name).for_kind(kind)
    return {key: value for key, value in values.items() if key in method.settings}


def apply_preset(
    name: str, method: Method, kind: str, user: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The settings to give :func:`~napari_ddip.methods.prepare`: preset ``name``'s values for
    ``method`` and ``kind``, with the ``user``'s own values over them."""
    return preset_settings(name, method, kind) | dict(user or {})
