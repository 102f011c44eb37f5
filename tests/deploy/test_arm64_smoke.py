"""The reduced arm64 smoke: imports, --version and a handful of frames of the demo config on emulated aarch64.

The full `make arm64-smoke` (golden outputs of three models compared across architectures) takes minutes under
emulation and is not part of `make test`. This reduced form runs only where the emulated environment is
already cached (a previous `make arm64-smoke` built the Debian root and the aarch64 site): building it from
nothing costs about 3 minutes of downloads and unpacking, more than this suite's budget for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgeprobe" / "arm64"


def _missing() -> str | None:
    if shutil.which("qemu-aarch64-static") is None:
        return "qemu-aarch64-static is not installed (make arm64-tools installs it as root)"
    if not (CACHE / "root" / ".edgeprobe-ready").is_file():
        return f"no emulated aarch64 root in {CACHE}/root yet: `make arm64-smoke` builds it (~3 min)"
    if not any(p.is_dir() and (p / ".edgeprobe-ready").is_file() for p in CACHE.glob("site-*")):
        return f"no aarch64 dependency site in {CACHE} yet: `make arm64-smoke` installs it"
    return None


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_reduced_smoke_runs_the_agent_on_emulated_aarch64(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "ARM64_REDUCED": "1", "ARM64_SMOKE_FRAMES": "3",
           "ARM64_OUT": str(tmp_path)}
    r = subprocess.run(["bash", str(ROOT / "deploy" / "arm64" / "smoke.sh")], env=env, capture_output=True,
                       text=True, timeout=280)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "aarch64 CPython 3.11" in r.stdout and "edgeprobe 0.1.0" in r.stdout
    run = json.loads((tmp_path / "results" / "run-aarch64.json").read_text())
    assert run["frames"] == 3 and run["messages"]["latency"] == 1
    assert "arm64-smoke: PASS" in r.stdout


def _compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "deploy" / "arm64" / "compare.py"), *args],
                          capture_output=True, text=True, timeout=60)


def _result(machine: str, golden_status: str, agreement: float, decoded_differently: int = 1) -> dict[str, object]:
    inputs = {"frames": 4, "decoded_differently": decoded_differently, "max_pixel_diff": 38 if decoded_differently
              else None, "preprocess_differ": decoded_differently, "max_tensor_diff": 0.0118 if decoded_differently
              else None, "answers_differ_on_local_pipeline": decoded_differently, "left_out": 0}
    details = {"frames": 4, "tolerance": 0.0, "max_abs_output_diff": 0.5, "fed": "recorded input tensors",
               "frames_decoded_differently": decoded_differently, "inputs": inputs}
    if decoded_differently:
        details["input_warning"] = "golden m.npz: this host decodes v.avi differently (38 of 255)"
    return {"suite": "s", "provenance": {"device": {"machine": machine}, "model_path": "/m/model.onnx",
                                         "runtime": f"onnxruntime ({machine})"},
            "checks": [{"kind": "golden", "name": "golden m.npz", "status": golden_status, "figure": agreement,
                        "details": details},
                       {"kind": "robustness", "name": "gaussian_noise@3", "figure": 0.25}]}


def _results(tmp_path: Path, arm_status: str = "pass", arm_machine: str = "aarch64", decoded_differently: int = 1,
             agreement: float = 0.75) -> Path:
    import numpy as np

    results, golden = tmp_path / "results", tmp_path / "golden"
    results.mkdir()
    golden.mkdir()
    # the stored frame and tensor are not outputs: the relative delta is of the largest output, 2.0
    np.savez(golden / "m.npz", f0_o0=np.array([[-2.0, 1.0]]), f0_in=np.full((2, 2, 3), 255, np.uint8),
             f0_x=np.full((1, 3, 2, 2), 9.0, np.float32), meta=np.zeros(3, np.uint8))
    (results / "s-x86_64.json").write_text(json.dumps(_result("x86_64", "pass", 1.0, 0)))
    (results / "s-aarch64.json").write_text(json.dumps(_result(arm_machine, arm_status, agreement,
                                                               decoded_differently)))
    (tmp_path / "run.json").write_text(json.dumps({"frames": 12, "probed_frames": 2, "messages": {"latency": 1}}))
    return results


def test_compare_reports_the_golden_deltas_and_fails_on_a_mismatch(tmp_path: Path) -> None:
    results = _results(tmp_path, arm_status="fail")
    r = _compare("--run", str(tmp_path / "run.json"), "--frames", "12", "--results", str(results),
                 "--markdown", str(tmp_path / "d.md"), "s")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "golden FAIL, 75% of 4 frames agree" in r.stdout and "max |output diff| 0.5 (0.25 of the largest" in r.stdout
    assert "same model fed the recorded input tensors: golden FAIL" in r.stdout
    assert "x86_64 0.25 / aarch64 0.25" in r.stdout
    assert "| model.onnx |" in (tmp_path / "d.md").read_text() and "arm64-smoke: FAILED" in r.stdout


@pytest.mark.parametrize("decoded_differently", [0, 3])
def test_a_decoder_difference_is_its_own_warning_and_never_fails_the_smoke(tmp_path: Path,
                                                                         decoded_differently: int) -> None:
    results = _results(tmp_path, decoded_differently=decoded_differently, agreement=1.0)
    r = _compare("--run", str(tmp_path / "run.json"), "--frames", "12", "--results", str(results),
                 "--markdown", str(tmp_path / "d.md"), "s")
    assert r.returncode == 0 and "golden PASS, 100% of 4 frames agree" in r.stdout, r.stdout + r.stderr
    (decoder,) = [ln for ln in r.stdout.splitlines() if ln.strip().startswith("inputs:")]
    table = (tmp_path / "d.md").read_text()
    if decoded_differently:
        assert "WARNING (not a model difference)" in decoder and "38 of 255" in decoder
        assert "| 3 of 4 (38/255) | 3 of 4 (0.0118) | 3 of 4 |" in table
    else:
        assert "decoded all 4 frames into the same pixels" in decoder
        assert "| 0 of 4 (identical) | 0 of 4 | 0 of 4 |" in table


def test_compare_refuses_a_result_that_is_missing_or_not_from_aarch64(tmp_path: Path) -> None:
    results = _results(tmp_path, arm_machine="x86_64")
    r = _compare("--run", str(tmp_path / "run.json"), "--frames", "12", "--results", str(results), "s")
    assert r.returncode != 0 and "ran on x86_64, not aarch64" in r.stderr
    r = _compare("--run", str(tmp_path / "nope.json"), "--frames", "12")
    assert r.returncode != 0 and "nope.json is missing or not JSON" in r.stderr
    r = _compare("--run", str(tmp_path / "run.json"), "--frames", "30")  # the run stopped short
    assert r.returncode == 1 and "12 of 30 frames" in r.stdout and "FAILED" in r.stdout
