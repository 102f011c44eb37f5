"""`edgeprobe bench` through the real CLI: exit codes a CI job can gate on, and bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli
from tests.scalable_model import matmul_chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return matmul_chain(tmp_path_factory.mktemp("cli-models") / "chain.onnx", depth=8)



def test_generous_budget_passes_with_json(chain: Path, short_clip: Path) -> None:
    proc = run_cli("bench", str(chain), "--source", str(short_clip), "--budget", "p99=10s", "--budget", "p50=5s",
                   "--threads", "1", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["verdict"] == "pass" and [b["status"] for b in d["budgets"]] == ["pass", "pass"]
    b = d["budgets"][0]
    assert b["budget"] == {"budget_ms": 10_000.0, "stage": "e2e", "percentile": 99.0, "confidence": 0.95}
    assert b["ci_low_ms"] <= b["estimate_ms"] <= b["ci_high_ms"] <= 10_000 and b["n"] >= 368
    e2e = d["stages"]["e2e"]
    assert e2e["count"] >= b["n"] and set(e2e["ci"]) >= {"p50", "p99"} and e2e["cov"] >= 0
    assert d["threads"] == 1 and d["providers"] == ["CPUExecutionProvider"]


def test_microsecond_budget_fails_with_exit_1_and_prints_counts_and_intervals(chain: Path, short_clip: Path) -> None:
    proc = run_cli("bench", str(chain), "--source", str(short_clip), "--budget", "p99=1us", "--stage", "inference")
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert re.search(r"inference p99 <= 0\.001 ms: FAIL \(p99 = [\d.]+ ms, [\d.]+% CI \[[\d.]+, [\d.]+\] ms, n=\d+",
                     out), out
    assert re.search(r"^inference\s+\d+\s+[\d.]+\s+\[[\d.]+, [\d.]+\]", out, re.MULTILINE), out
    assert "cold start: session" in out and "guards:" in out and "memory: model load added" in out


def test_too_short_to_decide_is_inconclusive_exit_3(chain: Path, short_clip: Path) -> None:
    proc = run_cli("bench", str(chain), "--source", str(short_clip), "--budget", "p99.9=10s", "--max-samples", "50",
                   "--max-seconds", "3600",
                   "--json")
    assert proc.returncode == 3, proc.stderr
    d = json.loads(proc.stdout)
    assert d["verdict"] == "inconclusive" and d["budgets"][0]["ci_high_ms"] is None and d["stopped_by"] == "max_samples"


@pytest.mark.parametrize(("budget", "pattern"), [
    ("p99=thirty", r"latency budget 'p99=thirty' does not parse; write it as"),
    ("p100=30ms", r"percentile 100 must lie strictly between 0 and 100"),
    ("p0=30ms", r"percentile 0 must lie strictly between 0 and 100"),
    ("p99=30", r"has no unit"),
])
def test_bad_budgets(chain: Path, short_clip: Path, budget: str, pattern: str) -> None:
    assert_clean_error(run_cli("bench", str(chain), "--source", str(short_clip), "--budget", budget), pattern)


def test_unavailable_execution_provider_names_the_available_ones(chain: Path, short_clip: Path) -> None:
    proc = run_cli("bench", str(chain), "--source", str(short_clip), "--provider", "TensorrtExecutionProviderX")
    assert_clean_error(proc, r"TensorrtExecutionProviderX not available .*available: .*CPUExecutionProvider")


def test_model_inputs_the_source_cannot_provide(tmp_path: Path, short_clip: Path) -> None:
    flat = matmul_chain(tmp_path / "flat.onnx", depth=1, input_shape=[1, 64])
    assert_clean_error(run_cli("bench", str(flat), "--source", str(short_clip)), r"needs a 4-D")
    batch8 = matmul_chain(tmp_path / "b8.onnx", depth=1, batch=8)
    assert_clean_error(run_cli("bench", str(batch8), "--source", str(short_clip)), r"fixed batch of 8")


def test_other_usage_errors(chain: Path, short_clip: Path, tmp_path: Path) -> None:
    assert_clean_error(run_cli("bench", str(chain), "--source", str(short_clip), "--mode", "burst"), r"mode 'burst'")
    assert_clean_error(run_cli("bench", str(chain), "--source", str(short_clip), "--budget", "p99=1s", "--mode",
                       "throughput"), r"stage 'e2e' is not measured in throughput mode")
    assert_clean_error(run_cli("bench", str(tmp_path / "none.onnx"), "--source", str(short_clip)), r"does not exist")


def test_without_a_source_bench_runs_on_generated_frames_of_the_models_shape(chain: Path,
                                                                            orientation_model: Path) -> None:
    """As onnxruntime_perf_test and trtexec: no clip needed; the output says what the frames were."""
    proc = run_cli("bench", str(orientation_model), "--budget", "p50=10s", "--max-samples", "40", "--threads", "1",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    src = d["source"]
    assert src["kind"] == "generated" and src["fill"] == "noise" and (src["width"], src["height"]) == (224, 224)
    assert src["frames"] == 32 and "noise" in src["note"] and "input size 224x224" in src["note"]
    n = d["budgets"][0]["n"]
    assert "decode" not in d["stages"] and 0 < n <= 40 and d["stages"]["inference"]["count"] == n
    text = run_cli("bench", str(orientation_model), "--generate", "constant", "--max-samples", "20")
    assert text.returncode == 0, text.stderr
    assert "input: constant mid-grey (128) at the model's input size 224x224" in text.stdout


@pytest.mark.parametrize(("args", "pattern"), [
    (["--generate", "zeros"], r"--generate 'zeros' is not a kind of generated input; use noise or constant"),
    (["--generate", "noise", "--source", "clip.mp4"], r"pass --source or --generate, not both"),
    (["--mode", "paced"], r"source generated:noise has no frame rate; pass --fps"),
])
def test_generated_input_bad_usage(orientation_model: Path, args: list[str], pattern: str) -> None:
    assert_clean_error(run_cli("bench", str(orientation_model), *args, "--max-samples", "5"), pattern)
