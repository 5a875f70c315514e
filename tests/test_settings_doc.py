"""One help text per setting: ``reconstruct --help``, docs/cli.md and the Reconstruct
widget's tooltips all show the ``help`` of the method registry's :class:`Setting` records."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_ddip.cli import main
from napari_ddip.methods import METHODS
from napari_ddip.settings_doc import END, START, render_into, settings_table
from napari_ddip.settings_doc import main as settings_doc_main

CLI_PAGE = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def _every_setting():
    return [(m, key, s) for m in METHODS.values() for key, s in m.settings.items()]


def _words(text: str) -> str:
    return " ".join(text.split())


def test_every_setting_of_every_method_has_one_line_of_help():
    assert _every_setting()
    for m, key, s in _every_setting():
        assert s.help.strip(), f"{m.name}: setting {key} has no help"
        assert "\n" not in s.help and len(s.help) < 200, f"{m.name}: {key}'s help is not one line"


def test_reconstruct_help_shows_every_settings_help(capsys):
    assert main(["reconstruct", "--help"]) == 0
    shown = _words(capsys.readouterr().out)
    for m, key, s in _every_setting():
        assert _words(s.help) in shown, f"--help lacks the help of {m.name}'s {key}"


def test_docs_settings_table_is_the_registrys():
    page = CLI_PAGE.read_text(encoding="utf-8")
    assert render_into(page) == page, "run: python -m napari_ddip.settings_doc docs/cli.md"
    table = page.split(START)[1].split(END)[0]
    for m, key, s in _every_setting():
        assert f"`{key}`" in table and s.help.replace("|", "\\|") in table, (m.name, key)


def test_generator_rewrites_only_between_the_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\n{START}\nstale\n{END}\n\nafter\n", encoding="utf-8")
    assert settings_doc_main([str(page), "--check"]) == 1
    assert settings_doc_main([str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert "stale" not in text and text.startswith("# Title\n") and text.endswith("\nafter\n")
    assert settings_table() in text
    assert settings_doc_main([str(page), "--check"]) == 0
    assert settings_doc_main([]) == 2  # usage
    page.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="needs the lines"):
        settings_doc_main([str(page)])


@pytest.mark.napari
def test_widget_tooltips_are_the_settings_help(make_napari_viewer):
    from napari_ddip.viewer.reconstruct_widget import ReconstructWidget

    widget = ReconstructWidget(make_napari_viewer())
    for m, key, s in _every_setting():
        if m.diffusion is None:
            field = widget.classical[m.name][key]
        elif key == "prior":
            field = widget.prior.choice
        elif key == "warm_start":
            field = widget.warm_start
        else:
            field = (widget.basic if key in widget.basic.keys else widget.advanced)[key]
        assert field.tooltip == s.help, f"{m.name}: the tooltip of {key} is not its help"
