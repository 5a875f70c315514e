"""The help of every method setting, rendered for each place that shows it.

Each setting's one line of help lives in its :class:`~napari_ddip.recon.config.Setting`
(``help``), next to its default and range, in the method registry
(:data:`napari_ddip.methods.METHODS`). This module renders those records for

- ``napari-ddip reconstruct --help`` (:func:`settings_epilog`),
- the Reconstruct widget's tooltips (:func:`tooltips`),
- the settings table of docs/cli.md (:func:`settings_table`, written between
  :data:`START` and :data:`END` by ``python -m napari_ddip.settings_doc docs/cli.md``;
  ``--check`` only says whether the file is up to date).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from napari_ddip.methods import METHODS, Method
from napari_ddip.recon.config import ENGINE_SETTINGS, Setting

START = "<!-- settings-table:start (python -m napari_ddip.settings_doc docs/cli.md) -->"
END = "<!-- settings-table:end -->"


def tooltips(settings: Mapping[str, Setting]) -> dict[str, str]:
    """Each setting's help by name (the Reconstruct widget's tooltips)."""
    return {key: s.help for key, s in settings.items()}


def describe_default(value: Any) -> str:
    """A default as the user types it (``auto`` for ``None``, ``true``/``false``)."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return "(none)"
    return str(value)


def describe_bound(s: Setting) -> str:
    """The values ``s`` allows, in a few words."""
    if s.kind is bool:
        return "true / false"
    if s.bound is None:
        return "text"
    b = s.bound
    if b.high is not None:
        left = "(" if b.open else "["
        text = f"{left}{b.low:g}, {b.high:g}]"
    else:
        text = f"{'>' if b.open else '≥'} {b.low:g}"
    return text + (", whole" if b.whole else "")


def _diffusion_methods() -> list[Method]:
    return [m for m in METHODS.values() if m.diffusion is not None]


def _diffusion_settings() -> dict[str, tuple[Setting, list[str]]]:
    """Every setting of a diffusion method, with the diffusion methods that take it."""
    table: dict[str, tuple[Setting, list[str]]] = {}
    for m in _diffusion_methods():
        for key, s in m.settings.items():
            table.setdefault(key, (s, []))[1].append(m.name)
    order = list(ENGINE_SETTINGS)  # the engine's order; warm_start (not the engine's) last
    return dict(
        sorted(table.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    )


def _taken_by(names: list[str]) -> str:
    return "all" if len(names) == len(_diffusion_methods()) else ", ".join(names)


def _cell(text: str) -> str:
    """``text`` for a Markdown table cell (``|`` escaped)."""
    return text.replace("|", "\\|")


def settings_table() -> str:
    """The Markdown tables of every setting: one for the diffusion methods (with the methods
    that take each), one for the classical methods."""
    lines = [
        "Diffusion methods (`" + "`, `".join(m.name for m in _diffusion_methods()) + "`):",
        "",
        "| setting | default | allowed | methods | what it does |",
        "|---|---|---|---|---|",
    ]
    for key, (s, names) in _diffusion_settings().items():
        row = (f"`{key}`", describe_default(s.default), describe_bound(s), _taken_by(names))
        lines.append("| " + " | ".join(row) + f" | {_cell(s.help)} |")
    lines += [
        "",
        "Classical methods (`fbp` and `zero-filled` take no setting):",
        "",
        "| method | setting | default | allowed | what it does |",
        "|---|---|---|---|---|",
    ]
    for m in METHODS.values():
        if m.diffusion is not None:
            continue
        for key, s in m.settings.items():
            row = (f"`{m.name}`", f"`{key}`", describe_default(s.default), describe_bound(s))
            lines.append("| " + " | ".join(row) + f" | {_cell(s.help)} |")
    return "\n".join(lines) + "\n"


def settings_epilog(width: int = 88) -> str:
    """The settings part of ``reconstruct --help``: each setting with its default, the
    methods that take it and its help."""
    indent = " " * 6

    def entry(key: str, s: Setting, who: str) -> list[str]:
        head = f"  {key}={describe_default(s.default)} [{who}]"
        body = textwrap.wrap(
            s.help,
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
            break_long_words=False,
        )
        return [head, *body]

    lines = ["settings (--set KEY=VALUE; [the methods that take it]):"]
    for key, (s, names) in _diffusion_settings().items():
        lines += entry(key, s, "diffusion" if _taken_by(names) == "all" else _taken_by(names))
    for m in METHODS.values():
        if m.diffusion is None:
            for key, s in m.settings.items():
                lines += entry(key, s, m.name)
    return "\n".join(lines)


def render_into(text: str) -> str:
    """``text`` (a Markdown page) with the part between :data:`START` and :data:`END`
    replaced by :func:`settings_table`.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"the page needs the lines {START!r} and {END!r}")
    return f"{head}{START}\n\n{settings_table()}\n{END}{tail}"


USAGE = "usage: python -m napari_ddip.settings_doc PAGE.md [--check]"


def main(argv: list[str] | None = None) -> int:
    """Write the settings table into the Markdown page ``argv[0]`` (``--check``: only say,
    by the exit status, whether it is up to date)."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    pages = [a for a in args if a != "--check"]
    if len(pages) != 1 or pages[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    page = Path(pages[0])
    text = page.read_text(encoding="utf-8")
    new = render_into(text)
    if check:
        if new != text:
            print(f"{page}: settings table out of date", file=sys.stderr)
            return 1
        return 0
    page.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
