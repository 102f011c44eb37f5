"""`pip install edgeprobe` and `edgeprobe[tflite]` need no compiler on aarch64 or x86_64: offline, on the wheels
`make arm64-wheels` (or `make arm64-smoke`) left in the cache, pip resolves today's pyproject requirements
with ``--only-binary=:all:`` for each of the six targets a board or edge box runs.

deploy/resolve-arm64.sh asks the package index; this asks nothing of the network, so it catches a dependency
added to pyproject.toml since the wheels were last fetched (and says to fetch them again). Targets whose
wheels are not cached are skipped, saying which command fetches them. The JetPack install command in the
README lists the dependencies by hand (JetPack's own OpenCV replaces the wheel): it must list these ones.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
WHEELS = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgeprobe" / "arm64-wheels"
TARGETS = [(arch, ver) for arch in ("aarch64", "x86_64") for ver in ("3.10", "3.11", "3.12")]


def requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["tflite"]]


@pytest.mark.parametrize(("arch", "ver"), TARGETS, ids=[f"{a}-cp{v}" for a, v in TARGETS])
def test_every_runtime_dependency_resolves_to_wheels_only(tmp_path: Path, arch: str, ver: str) -> None:
    nodot = ver.replace(".", "")
    found = WHEELS / f"{arch}-cp{nodot}"
    if not any(found.glob("*.whl")):
        pytest.skip(f"no {arch} cp{ver} wheels cached in {found}: `make arm64-wheels` fetches them")
    platforms = [f"manylinux_2_{m}_{arch}" for m in range(17, 36)] + [f"manylinux2014_{arch}"]
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
           "--disable-pip-version-check", "--no-index", "--find-links", str(found), "--only-binary=:all:",
           "--python-version", ver, "--implementation", "cp", "--abi", f"cp{nodot}", "--abi", "abi3",
           "--abi", "none", "--target", str(tmp_path / "site"), *(a for p in platforms for a in ("--platform", p)),
           *requirements()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "PIP_NO_INDEX": "1"})
    assert r.returncode == 0, (f"{arch} cp{ver}: a requirement has no wheel among those fetched into {found} "
                               f"(a new dependency? run `make arm64-wheels`, which names any without a wheel):\n"
                               + r.stderr[-2000:])


def test_the_jetpack_command_lists_every_dependency_but_opencv() -> None:
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"pip install --no-deps edgeprobe\n(.*?)\n/opt/edgeprobe", readme, re.S)
    listed = {re.split(r"[<>=]", r, maxsplit=1)[0]: r for r in re.findall(r"'([^']+)'", block)}
    wanted = {re.split(r"[<>=]", r, maxsplit=1)[0]: r for r in requirements() if not r.startswith("opencv")}
    assert set(listed) == set(wanted), f"README's JetPack command lists {sorted(listed)}, pyproject {sorted(wanted)}"
    for name, req in wanted.items():
        extra = ",<2" if name == "numpy" else ""  # JetPack's cv2 is built against numpy 1.x
        assert listed[name] == req + extra, (name, listed[name], req)
