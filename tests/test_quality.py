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
def test_mypy_is_clean_on_the_packages() -> None:
    """Plain `mypy` as configured in pyproject.toml: edgeprobe/ links every part, so all are checked."""
    proc = subprocess.run([_tool("mypy")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    checked = int(proc.stdout.rsplit(" in ", 1)[1].split()[0])
    on_disk = sum(
        1 for folder, _, files in os.walk(REPO / "edgeprobe", followlinks=True) if "__pycache__" not in folder
        for f in files if f.endswith(".py")
    )
    assert checked == on_disk, f"mypy checked {checked} of {on_disk} files"
