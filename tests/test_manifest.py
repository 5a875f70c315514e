"""napari finds the plugin's npe2 manifest through the installed package's entry point."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

import npe2
from npe2.manifest.utils import import_python_name

TOP_LEVEL = Path(__file__).resolve().parents[1] / "napari.yaml"


def test_entry_point_names_the_packaged_manifest() -> None:
    (ep,) = [e for e in entry_points(group="napari.manifest") if e.name == "napari-ddip"]
    assert ep.value == "napari_ddip:napari.yaml"


def test_manifest_loads_and_validates_from_the_installed_distribution() -> None:
    manifest = npe2.PluginManifest.from_distribution("napari-ddip")
    assert manifest.name == "napari-ddip"
    assert manifest.display_name


def test_plugin_manager_discovers_the_plugin() -> None:
    pm = npe2.PluginManager()
    pm.discover()
    assert pm.get_manifest("napari-ddip").name == "napari-ddip"


def test_packaged_manifest_is_the_top_level_file() -> None:
    packaged = files("napari_ddip") / "napari.yaml"
    assert packaged.read_text() == TOP_LEVEL.read_text()


def test_every_contribution_names_an_existing_command() -> None:
    contributions = npe2.PluginManifest.from_file(TOP_LEVEL).contributions
    commands = {c.id: c.python_name for c in contributions.commands}
    used = [r.command for r in contributions.readers]
    used += [w.command for w in contributions.writers]
    used += [s.command for s in contributions.sample_data]
    used += [w.command for w in contributions.widgets]
    assert set(used) == set(commands)
    for python_name in commands.values():
        assert callable(import_python_name(python_name)), python_name


def test_napari_face_imports_without_torch() -> None:
    modules = [f"napari_ddip.viewer.{m}" for m in ("readers", "writers", "sample_data")]
    modules += ["napari_ddip.viewer.simulate_widget", "napari_ddip.viewer.compare_widget"]
    code = f"import sys; import {', '.join(modules)}; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_napari_offers_its_builtin_reader_before_ours() -> None:
    # napari's reader dialog lists the compatible readers by sorted display name and
    # pre-selects the first; a user who did not ask for napari-ddip keeps the builtin one.
    pm = npe2.PluginManager()
    pm.discover()
    builtins, ours = pm.get_manifest("napari").display_name, pm.get_manifest("napari-ddip")
    assert sorted([ours.display_name, builtins])[0] == builtins
