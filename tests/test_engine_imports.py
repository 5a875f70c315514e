"""The engine (physics, prior, solvers, recon) imports with torch and numpy alone: no Qt, no
napari, and the package's other dependencies only inside the functions that need them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

ENGINE = ("physics", "prior", "solvers", "recon")

# A child interpreter whose imports fail when engine code itself asks, at import time, for a
# top-level module that is neither the standard library, torch, numpy nor the package (torch's
# own imports go through, whatever it pulls in).
CHILD = textwrap.dedent(
    """
    import importlib, importlib.abc, pkgutil, sys

    ALLOWED = {"torch", "numpy", "napari_ddip"}

    def importer():
        frame = sys._getframe(2)
        while frame and frame.f_code.co_filename.startswith("<frozen importlib"):
            frame = frame.f_back
        return frame.f_code.co_filename if frame else ""

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            top = name.split(".")[0]
            if top in ALLOWED or top in sys.stdlib_module_names:
                return None
            if "napari_ddip" in importer():
                raise ImportError(f"the engine imported {name!r} from {importer()}")
            return None

    sys.meta_path.insert(0, Refuse())
    import napari_ddip
    for package in PACKAGES:
        module = importlib.import_module(f"napari_ddip.{package}")
        for info in pkgutil.walk_packages(module.__path__, f"{module.__name__}."):
            importlib.import_module(info.name)
    print(sorted(name for name in sys.modules if name.startswith("napari_ddip.")))
    """
)


def test_engine_imports_with_torch_and_numpy_alone() -> None:
    code = f"PACKAGES = {ENGINE!r}\n{CHILD}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = result.stdout
    for module in ("physics.ct", "physics.mri", "prior.train", "solvers.tv", "recon.engine"):
        assert f"napari_ddip.{module}" in imported


def test_the_guard_refuses_engine_code_that_asks_for_another_package() -> None:
    """Not vacuous: the CT projector builds its matrix with scipy, imported when called."""
    call = "import napari_ddip.physics.ct as ct; ct._joseph_matrix(4, (0.0,), 6, 1.0)"
    code = f"PACKAGES = ()\n{CHILD}\n{call}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "the engine imported 'scipy" in result.stderr


def test_only_the_command_line_parses_arguments() -> None:
    """Options come from their configuration (e.g. TrainConfig); argparse is the CLI's alone."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "src" / "napari_ddip"
    users = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if "argparse" in names:
                users.add(path.relative_to(package).as_posix())
    assert users == {"cli.py"}
