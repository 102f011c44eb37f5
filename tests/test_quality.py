"""ruff and mypy as tests, so lint or type errors fail `make test` like any other bug."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        found = shutil.which(name)
        if not found:
            pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
        return found
    return str(path)


def test_ruff_is_clean() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "--quiet", "."], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(600)
def test_mypy_is_clean_on_the_packages(tmp_path: Path) -> None:
    """mypy cannot follow setuptools' package-dir mapping, so check a symlinked copy of the namespace."""
    mypy = _tool("mypy")
    ns = tmp_path / "edgeprobe"
    ns.mkdir()
    for entry in (REPO / "edgeprobe").iterdir():
        if entry.name != "__pycache__":
            os.symlink(entry, ns / entry.name)
    for folder in ("harness", "agent", "collector"):
        os.symlink(REPO / folder, ns / folder)
    cache = REPO / ".mypy_cache"
    proc = subprocess.run(
        [mypy, "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(cache), "-p", "edgeprobe"],
        cwd=tmp_path, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
