"""The user documentation: the README's Python blocks run as written, and the documents speak
of the software only (no development-stage words, no result file named by one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Words of a development diary, not of the software ("a napari session" of a user is fine).
DIARY = re.compile(r"session [0-9]|sessions? [0-9]|device tool|so far", re.IGNORECASE)
#: A result file named by when it was made (``recon_ct_128_8_s6.json``, ``s12_p128``).
SESSION_TAG = re.compile(r"(^|[_-])s[0-9]+([_.-]|$)")


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)


def _documents() -> list[Path]:
    pages = [ROOT / "README.md", ROOT / "BENCHMARKS.md"]
    for folder in ("docs", "benchmarks"):
        pages += [p for p in sorted((ROOT / folder).rglob("*")) if p.is_file()]
    return pages


def test_readme_python_blocks_run_as_written(tmp_path, monkeypatch, one_thread):
    blocks = _python_blocks(ROOT / "README.md")
    assert blocks, "the README has a Python quick start"
    monkeypatch.chdir(tmp_path)  # the blocks write their files here
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    assert (tmp_path / "sinogram.npz").is_file() and (tmp_path / "d3ip.tif").is_file()


@pytest.mark.parametrize("page", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_documents_speak_of_the_software_only(page):
    try:
        text = page.read_text(encoding="utf-8")
    except UnicodeDecodeError:  # images
        return
    found = [m.group(0) for m in DIARY.finditer(text)]
    assert not found, f"{page.relative_to(ROOT)} says {found}"


def test_result_files_are_named_by_what_they_measure():
    results = ROOT / "benchmarks" / "results"
    named = [p.name for p in results.rglob("*") if SESSION_TAG.search(p.stem)]
    assert not named, f"result files named by a session: {named}"
