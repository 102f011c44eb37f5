"""`edgeprobe run --no-broker` loads what the agent uses and nothing else: no broker stack, no report/plot/table
libraries. Run as a user runs it, in its own process, and read that process's sys.modules at exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import REPO, demo_config

_DUMP = ("import atexit, runpy, sys\n"
         "out = sys.argv.pop(1)\n"
         "atexit.register(lambda: open(out, 'w').write('\\n'.join(sorted(sys.modules))))\n"
         "sys.argv[0] = 'edgeprobe'\n"
         "runpy.run_module('edgeprobe', run_name='__main__')\n")

#: modules an agent without a broker never needs (a prefix matches the package and its submodules)
FORBIDDEN = ("paho", "ssl", "_ssl", "http.client", "urllib.request", "matplotlib", "jinja2", "rich.table",
             "rich.progress", "rich.live", "edgeprobe.cli.report", "edgeprobe.cli.junit", "edgeprobe.collector",
             "edgeprobe.agent.publisher", "sqlite_utils", "psycopg", "scipy", "PIL")


def _modules_of_run(tmp_path: Path, write_config: Any, orientation_model: Path, short_clip: Path,
                    **extra: Any) -> set[str]:
    cfg = write_config(demo_config(orientation_model, short_clip, tmp_path / "spool.db", **extra))
    out = tmp_path / "modules.txt"
    proc = subprocess.run(
        [sys.executable, "-c", _DUMP, str(out), "run", "-c", str(cfg), "--no-broker", "--max-frames", "5", "--json"],
        capture_output=True, text=True, timeout=180, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return set(out.read_text().split())


def test_run_without_broker_imports_no_broker_report_or_table_modules(
        tmp_path: Path, write_config: Any, orientation_model: Path, short_clip: Path) -> None:
    modules = _modules_of_run(tmp_path, write_config, orientation_model, short_clip)
    # the dump is real: the agent's own loop and runtime are there
    assert {"edgeprobe.agent.runner", "onnxruntime", "cv2", "sqlite3"} <= modules
    loaded = sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert loaded == [], f"`edgeprobe run --no-broker` imported {loaded}"


def test_probing_off_loads_no_random_generator(
        tmp_path: Path, write_config: Any, orientation_model: Path, short_clip: Path) -> None:
    """numpy.random is 6.5 MB of resident memory; only perturbations need it, and with probing off none run."""
    modules = _modules_of_run(tmp_path, write_config, orientation_model, short_clip, probe={"enabled": False})
    assert "edgeprobe.agent.runner" in modules and "numpy" in modules
    assert "numpy.random" not in modules
