"""napari finds the plugin's npe2 manifest through the installed package's entry point."""

from __future__ import annotations

from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

import npe2

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
