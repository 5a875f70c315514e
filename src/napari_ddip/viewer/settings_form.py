"""A form of typed settings made from their defaults (method settings, fine-tuning options).

A ``bool`` default gets a checkbox, an ``int`` a spin box, a ``str`` a text field, and a
``float`` or ``None`` ("auto") a text field too, so that ``1e-4`` and ``auto`` can be typed.
:meth:`SettingsForm.values` parses the text back and raises
:class:`~napari_ddip.io.InputError` naming the setting that does not parse.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from magicgui.widgets import CheckBox, LineEdit, SpinBox, Widget

from napari_ddip.io import InputError

AUTO = "auto"
#: Largest value of an integer setting.
INT_MAX = 1_000_000


class SettingsForm:
    """One widget per setting in ``keys`` (named after the setting); :attr:`widgets` go into
    the caller's container (so that labels line up).

    Args:
        defaults: every setting's default; its type is the setting's type.
        keys: the settings shown, in order.
        labels: display labels (default: the setting's name).
        optional_types: the type (``int`` or ``float``) of settings whose default is ``None``
            (default ``float``); their field accepts ``auto`` too.
        tooltips: help per setting.
        prefix: prepended to the widgets' names (unique names when forms share a container).
    """

    def __init__(
        self,
        defaults: Mapping[str, Any],
        keys: Sequence[str],
        labels: Mapping[str, str] | None = None,
        optional_types: Mapping[str, type] | None = None,
        tooltips: Mapping[str, str] | None = None,
        prefix: str = "",
    ) -> None:
        self._defaults = {key: defaults[key] for key in keys}
        self._optional_types = dict(optional_types or {})
        labels, tooltips = labels or {}, tooltips or {}
        self._by_key = {
            key: _widget(prefix + key, self._defaults[key], labels.get(key, key), tooltips.get(key))
            for key in keys
        }
        self.widgets = list(self._by_key.values())

    def __getitem__(self, key: str) -> Widget:
        return self._by_key[key]

    @property
    def keys(self) -> tuple[str, ...]:
        """The settings of the form, in order."""
        return tuple(self._defaults)

    def show(self, keys: Collection[str]) -> None:
        """Show the fields of ``keys``, hide the others."""
        for key, widget in self._by_key.items():
            widget.visible = key in keys

    def reset(self, values: Mapping[str, Any] | None = None) -> None:
        """Every field back to its default, then those of ``values`` (the form's settings
        among them) to their value."""
        given = {key: value for key, value in (values or {}).items() if key in self._by_key}
        for key, default in self._defaults.items():
            self._by_key[key].value = _shown(given.get(key, default), default)

    def values(self, keys: Collection[str] | None = None) -> dict[str, Any]:
        """The settings (those of ``keys`` among them, default all), typed as their defaults
        (``None`` for ``auto``)."""
        values = {}
        for key, default in self._defaults.items():
            if keys is not None and key not in keys:
                continue
            raw = self._by_key[key].value
            if isinstance(default, bool | int | str):
                values[key] = raw
            else:
                values[key] = _parse(key, raw, self._optional_types.get(key, float), default)
        return values


def _widget(name: str, default: Any, label: str, tooltip: str | None) -> Widget:
    options = {"name": name, "label": label, "tooltip": tooltip}
    if isinstance(default, bool):
        return CheckBox(value=default, **options)
    if isinstance(default, int):
        return SpinBox(value=default, min=0, max=INT_MAX, **options)
    if isinstance(default, str):
        return LineEdit(value=default, **options)
    return LineEdit(value=_shown(default, default), **options)


def _shown(value: Any, default: Any) -> Any:
    """``value`` as the field of a setting with ``default`` shows it."""
    if isinstance(default, bool | int | str):
        return value
    return AUTO if value is None else repr(value)


def _parse(key: str, text: str, kind: type, default: Any) -> Any:
    """``text`` as ``kind``; ``auto`` is None where the default is None."""
    text = text.strip()
    if default is None and text.lower() in (AUTO, "none", ""):
        return None
    try:
        return kind(text)
    except ValueError:
        expected = ("an integer" if kind is int else "a number") + (
            " or auto" if default is None else ""
        )
        raise InputError(f"setting '{key}' = {text!r}: expected {expected}") from None
