"""The bench engine on a scalable onnx.helper model and real video frames."""

from __future__ import annotations

import math
from pathlib import Path

import onnxruntime as ort
import pytest

from edgeprobe.agent.bench import BenchConfig, run_bench
from edgeprobe.agent.config import ModelConfig
from edgeprobe.harness.budget import parse_budget
from edgeprobe.harness.errors import ConfigError, ModelError
from tests.scalable_model import matmul_chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return matmul_chain(tmp_path_factory.mktemp("models") / "chain.onnx", depth=8)


def _cfg(model: Path, source: Path, **kw: object) -> BenchConfig:
    # max_seconds far above what any run here needs: on a loaded machine the samples or the budgets still end
    # the run, so stopped_by and the counts do not depend on the machine's pace
    return BenchConfig(model=ModelConfig(path=str(model), threads=1), source=str(source), frames=8,
                       max_seconds=kw.pop("max_seconds", 3600.0), **kw)  # type: ignore[arg-type]


def test_generous_budget_passes_and_a_microsecond_budget_fails(chain: Path, short_clip: Path) -> None:
    # The model takes ~0.1-1 ms here: 10 s is 4 orders of magnitude above, 1 us 2 below; noise cannot flip them.
    result = run_bench(_cfg(chain, short_clip, budgets=[parse_budget("p99=10s"), parse_budget("p50=1us")]))
    ok, bad = result.budgets
    assert (ok.status, bad.status, result.verdict) == ("pass", "fail", "fail")
    assert result.stopped_by == "settled" and ok.ci_high_ms <= 10_000 and bad.ci_low_ms > 0.001
    d = result.as_dict()
    stages = d["stages"]
    assert {"preprocess", "inference", "postprocess", "e2e", "decode"} <= set(stages)
    n = stages["inference"]["count"]
    assert n == stages["e2e"]["count"] >= 400 and stages["decode"]["count"] == 8
    assert stages["e2e"]["p50"] >= stages["inference"]["p50"]
    for s in stages.values():
        assert s["p50"] <= s["p90"] <= s["p99"] <= s["p99_9"] <= s["max"] and s["count"] > 0
    assert d["cold_start"]["warmup_runs"] == 10 and d["cold_start"]["session_ms"] > 0
    assert d["memory"]["peak_rss_mb"] >= d["memory"]["rss_end_mb"] > 0
    assert d["providers"] == ["CPUExecutionProvider"] and "governors" in d["guards"]


def test_more_work_takes_longer(tmp_path: Path, short_clip: Path) -> None:
    light = run_bench(_cfg(matmul_chain(tmp_path / "a.onnx", depth=1, size=32), short_clip, max_samples=300))
    heavy = run_bench(_cfg(matmul_chain(tmp_path / "b.onnx", depth=20, size=256), short_clip, max_samples=20))
    # 20 MatMuls of 256^3 against one of 32^3: ~10,000x the arithmetic, measured side by side; a 5x margin
    # survives load, which slows the heavy model at least as much as the light one
    assert heavy.stages["inference"]["p50"] > 5 * light.stages["inference"]["p50"]
    assert heavy.stopped_by == light.stopped_by == "max_samples"
    assert (heavy.stages["inference"]["count"], light.stages["inference"]["count"]) == (20, 300)


def test_paced_mode_counts_deadline_misses_and_dropped_frames(chain: Path, short_clip: Path) -> None:
    # At 20,000 fps (50 us period) no frame can make its deadline, and frames overtake each other; load only makes
    # frames later, so this holds however busy the machine is.
    r = run_bench(_cfg(chain, short_clip, mode="paced", fps=20_000.0, max_samples=100))
    f = r.mode_figures
    assert f["frames_processed"] == 100 and f["deadline_misses"] == 100 and f["frames_dropped"] > 0
    assert f["frames_issued"] == f["frames_processed"] + f["frames_dropped"]
    assert "capture_wait" in r.stages
    # At 10 fps (100 ms period) the sub-millisecond model is early: frames are waited for, as from a camera. Only
    # the shape and the accounting are asserted (a preemption of 100 ms on a loaded machine may drop a frame),
    # and that most frames were waited for, which load would have to delay by over 100 ms each to undo.
    slow = run_bench(_cfg(chain, short_clip, mode="paced", fps=10.0, max_samples=8))
    s = slow.mode_figures
    assert s["frames_processed"] == slow.stages["capture_wait"]["count"] == 8 and slow.stopped_by == "max_samples"
    assert s["frames_issued"] == s["frames_processed"] + s["frames_dropped"]
    assert slow.stages["capture_wait"]["p50"] > 0


def test_throughput_mode_batches_and_threads(tmp_path: Path, short_clip: Path) -> None:
    model = matmul_chain(tmp_path / "dyn.onnx", depth=4, batch="N")
    r = run_bench(_cfg(model, short_clip, mode="throughput", batch=4, concurrency=2, max_samples=200))
    f = r.mode_figures
    assert f["runs"] == r.stages["inference"]["count"] >= 200 and r.stopped_by == "max_samples"
    assert f["samples_per_s"] == pytest.approx(4 * f["inferences_per_s"])
    judged = run_bench(_cfg(model, short_clip, mode="throughput", batch=2, budgets=[
        parse_budget("p90=10s", stage="inference")]))
    assert judged.verdict == "pass" and judged.stopped_by == "settled"


def test_warmup_until_stable_is_bounded_and_reported(chain: Path, short_clip: Path) -> None:
    r = run_bench(_cfg(chain, short_clip, warmup=5, warmup_stable=True, warmup_max=200, max_samples=50))
    c = r.cold_start
    assert c["warmup_mode"] == "until_stable" and 20 <= c["warmup_runs"] <= 200
    assert c["warmup_stable"] or c["warmup_runs"] == 200
    assert r.stages["inference"]["count"] == 50  # warm-up never enters the figures


def test_inputs_the_bench_cannot_feed_are_refused(tmp_path: Path, short_clip: Path) -> None:
    fixed4 = matmul_chain(tmp_path / "b4.onnx", depth=1, batch=4)
    with pytest.raises(ModelError, match=r"fixed batch of 4 .* --mode throughput --batch 4"):
        run_bench(_cfg(fixed4, short_clip))
    flat = matmul_chain(tmp_path / "flat.onnx", depth=1, input_shape=[1, 64])
    with pytest.raises(ModelError, match=r"needs a 4-D"):
        run_bench(_cfg(flat, short_clip))
    with pytest.raises(ConfigError, match=r"not measured in throughput mode"):
        run_bench(_cfg(fixed4, short_clip, mode="throughput", batch=4, budgets=[parse_budget("p99=1s")]))
    with pytest.raises(ConfigError, match=r"--mode throughput"):
        _cfg(fixed4, short_clip, batch=2)


def test_cuda_or_tensorrt_are_used_and_reported_when_present(chain: Path, short_clip: Path) -> None:
    gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in ort.get_available_providers()]
    if not gpu:
        pytest.skip("this onnxruntime build has no CUDA/TensorRT provider (CPU-only wheel)")
    cfg = BenchConfig(model=ModelConfig(path=str(chain), providers=[gpu[-1], "CPUExecutionProvider"]),
                      source=str(short_clip), frames=4, max_samples=50)
    r = run_bench(cfg)
    assert r.model["providers"][0] == gpu[-1] and math.isfinite(r.stages["inference"]["p50"])

