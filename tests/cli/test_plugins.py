"""A plugin package installed with pip adds a task adapter and a perturbation that `check` uses.

The plugin (tests/data/plugin_demo) is installed, offline, into a fresh virtual
environment layered over this one (``site.addsitedir``), so the project's own
environment never holds it and nothing needs uninstalling from it; the real
``edgeprobe`` entry point then runs there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

PLUGIN = REPO / "tests" / "data" / "plugin_demo"


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("plugin-venv")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site_packages = Path(subprocess.run([str(python), "-c", purelib], capture_output=True, text=True,
                                        check=True).stdout.strip())
    # see this environment's packages (edgeprobe, numpy, ...) with their .pth files processed
    (site_packages / "_edgeprobe_base.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    src = root / "plugin_demo"
    shutil.copytree(PLUGIN, src)  # build in a scratch copy: the build leaves files beside the sources
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-build-isolation", "--no-index", "-q", str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    yield python
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "uninstall", "-y", "-q",
                    "edgeprobe-plugin-demo"], capture_output=True, check=False)


def _edgeprobe(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-m", "edgeprobe", *args], capture_output=True, text=True, timeout=300)


def test_listings_show_the_plugin_with_its_origin(plugin_python: Path) -> None:
    tasks = json.loads(_edgeprobe(plugin_python, "tasks", "--json").stdout)
    plugin = [a for a in tasks["adapters"] if a["kind"] == "score_margin"]
    assert plugin and plugin[0]["origin"] == "plugin edgeprobe-plugin-demo"
    assert plugin[0]["layouts"][0]["accepts"] == "one (1, C) score vector, C >= 2"
    perts = json.loads(_edgeprobe(plugin_python, "perturbations", "--json").stdout)["perturbations"]
    invert = [p for p in perts if p["name"] == "invert"]
    assert invert and invert[0]["origin"] == "plugin edgeprobe-plugin-demo"
    # the project's own environment does not have it
    from edgeprobe.harness.tasks import ADAPTERS

    assert "score_margin" not in ADAPTERS


def test_check_runs_the_plugin_adapter_and_perturbation(plugin_python: Path, tmp_path: Path,
                                                        orientation_model: Path, short_clip: Path) -> None:
    suite = {
        "name": "plugin", "model": {"path": str(orientation_model),
                                    "preprocess": {"resize": "center_crop", "color": "bgr"}},
        "source": {"uri": str(short_clip), "frames": 4},
        "task": {"kind": "score_margin", "threshold": 0.2},
        "latency": {"samples": 20, "max_seconds": 600},  # the samples, not the pace, end the timing
        "checks": [{"kind": "robustness", "perturbation": "invert", "severity": 5, "max_unstable": 1.0},
                   {"kind": "robustness", "perturbation": "invert", "severity": 0, "max_unstable": 0.0}],
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    proc = _edgeprobe(plugin_python, "check", str(path), "--json")
    assert proc.returncode in (0, 1, 3), proc.stderr  # a verdict (pass, fail, inconclusive), not exit 2
    result = json.loads(proc.stdout)
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["invert @ severity 0"]["figure"] == 0.0  # identity: the plugin's decode is deterministic
    assert set(checks) == {"invert @ severity 5", "invert @ severity 0"}
    # a wrong head for the model is the plugin's own one sentence, exit 2
    suite["model"]["path"] = str(tmp_path / "pose.tflite")
    from tests.conftest import asset

    shutil.copy(asset("pose_detection.tflite"), suite["model"]["path"])
    path.write_text(yaml.safe_dump(suite))
    bad = _edgeprobe(plugin_python, "check", str(path))
    assert bad.returncode == 2 and "but score_margin expects one (1, C) score vector" in bad.stderr
    assert "layouts that fit: ssd_anchors/pose" in bad.stderr.replace("\n", " ")
