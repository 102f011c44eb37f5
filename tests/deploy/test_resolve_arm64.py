"""deploy/resolve-arm64.sh (`make arm64-wheels`) names every dependency that would need a compiler on a board.

Run offline against a local package folder, so the test needs no index: one pure wheel, one sdist-only
package (what hdrhistogram was on aarch64), and one wheel that depends on the sdist-only one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "resolve-arm64.sh"


def _wheel(folder: Path, name: str, requires: tuple[str, ...] = ()) -> None:
    dist = f"{name}-1.0.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    wheel = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as z:
        z.writestr(f"{name}/__init__.py", "")
        z.writestr(f"{dist}/METADATA", meta)
        z.writestr(f"{dist}/WHEEL", wheel)
        z.writestr(f"{dist}/RECORD", "")


def _sdist(folder: Path, name: str) -> None:
    import io
    import tarfile

    with tarfile.open(folder / f"{name}-1.0.tar.gz", "w:gz") as t:
        data = f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode()
        info = tarfile.TarInfo(f"{name}-1.0/PKG-INFO")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))


def _run(tmp_path: Path, requirements: str, targets: str) -> subprocess.CompletedProcess[str]:
    index = tmp_path / "index"
    index.mkdir(exist_ok=True)
    _wheel(index, "okpkg")
    _wheel(index, "wantsgcc", ("needsgcc",))
    _sdist(index, "needsgcc")
    env = {**os.environ, "PYTHON": sys.executable, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index),
           "ARM64_WHEELS": str(tmp_path / "wheels"), "ARM64_TARGETS": targets,
           "ARM64_REQUIREMENTS": requirements}
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=240)


def test_every_dependency_without_a_wheel_is_named_for_each_target(tmp_path: Path) -> None:
    r = _run(tmp_path, "okpkg needsgcc wantsgcc", "aarch64:3.10")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "no wheel for" in ln]
    assert len(lines) == 1 and lines[0].startswith("aarch64 cp3.10")
    assert " needsgcc" in lines[0] and "wantsgcc (needs needsgcc)" in lines[0] and "okpkg" not in lines[0]
    assert "would need a compiler" in r.stderr


def test_wheels_only_passes_and_keeps_the_wheels_per_target(tmp_path: Path) -> None:
    r = _run(tmp_path, "okpkg", "x86_64:3.12")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "x86_64 cp3.12: every dependency is a wheel (1 wheels)" in r.stdout
    assert (tmp_path / "wheels" / "x86_64-cp312" / "okpkg-1.0-py3-none-any.whl").is_file()
