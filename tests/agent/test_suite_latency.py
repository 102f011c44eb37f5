"""Suite latency samples are samples: a decode budget decodes for real on every sample, and its error rate holds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import yaml

from edgeprobe.agent.suite_runner import measure_latency
from edgeprobe.agent.suite_session import open_session
from edgeprobe.harness.budget import Budget, BudgetSampler
from edgeprobe.harness.suite import load_suite

PREPROCESS = {"resize": "center_crop", "color": "bgr", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def _suite(tmp_path: Path, model: Path, clip: Path, checks: list[dict[str, object]]) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({
        "name": "latency", "model": {"path": str(model), "threads": 1, "preprocess": PREPROCESS},
        "source": {"uri": str(clip), "frames": 6, "stride": 4}, "latency": {"samples": 400, "warmup": 2},
        "checks": checks}, sort_keys=False))
    return path


def test_a_decode_budget_times_a_real_decode_on_every_sample(tmp_path: Path, orientation_model: Path,
                                                             short_clip: Path) -> None:
    # p90 needs 30+ samples before it can be bounded: several times the 6 frames of the frame set.
    suite = _suite(tmp_path, orientation_model, short_clip,
                   [{"kind": "latency", "stage": "decode", "budget": "p90=10s"}])
    session = open_session(load_suite(suite))
    samples, results = measure_latency(session)
    decode = samples["decode"]
    assert len(decode) >= 30 and len(decode) == len(samples["inference"])
    # Re-fed reads would give at most 6 distinct values; real decodes are nanosecond timings, nearly all distinct.
    assert len(set(decode)) >= 0.9 * len(decode), (len(set(decode)), len(decode))
    assert min(decode) > 0 and results[0].n == len(decode)


def test_without_a_decode_budget_the_decode_stage_is_the_frame_sets_own_reads(tmp_path: Path,
                                                                              orientation_model: Path,
                                                                              short_clip: Path) -> None:
    suite = _suite(tmp_path, orientation_model, short_clip,
                   [{"kind": "latency", "stage": "inference", "budget": "p50=10s"}])
    session = open_session(load_suite(suite))
    samples, _ = measure_latency(session)
    assert samples["decode"] == [f.decode_ns for f in session.frames]  # one per frame, never cycled
    assert len(set(samples["inference"])) >= 0.9 * len(samples["inference"])


def _error_rates(draw: np.random.Generator, budget_ms: float, fresh: bool, trials: int) -> dict[str, float]:
    """Verdicts of a p99 budget on lognormal decode times: a fresh draw per sample, or 32 reads cycled."""
    out = {"pass": 0, "fail": 0, "inconclusive": 0}
    for _ in range(trials):
        pool = draw.lognormal(0.0, 0.25, 32) * 1e6
        sampler = BudgetSampler(Budget(budget_ms=budget_ms, stage="decode", percentile=99.0, confidence=0.95),
                                max_samples=2000)
        i = 0
        while not sampler.add(int(draw.lognormal(0.0, 0.25) * 1e6 if fresh else pool[i % 32])):
            i += 1
        out[sampler.finish().status] += 1
    return {k: v / trials for k, v in out.items()}


def test_decode_budget_error_rate_stays_within_alpha() -> None:
    """A simulation on a known decode-time distribution (lognormal, sigma 0.25, 1 ms median): the true p99 is
    exp(2.326 * 0.25) ms. A budget 3% under it must pass, and one 3% over must fail, at most alpha/2 = 2.5% of
    the time (plus three binomial standard errors); cycling 32 reads, as suites did, breaks that."""
    rng = np.random.default_rng(4)
    q99 = math.exp(2.3263 * 0.25)
    trials = 160
    slack = 3 * math.sqrt(0.025 * 0.975 / trials)
    under, over = q99 / 1.03, q99 * 1.03
    fresh_under, fresh_over = _error_rates(rng, under, True, trials), _error_rates(rng, over, True, trials)
    assert fresh_under["pass"] <= 0.025 + slack and fresh_over["fail"] <= 0.025 + slack, (fresh_under, fresh_over)
    cycled_under, cycled_over = _error_rates(rng, under, False, trials), _error_rates(rng, over, False, trials)
    assert cycled_under["pass"] + cycled_over["fail"] > 0.1, (cycled_under, cycled_over)


if __name__ == "__main__":  # the figures the README quotes: python -m tests.agent.test_suite_latency
    gen = np.random.default_rng(4)
    q = math.exp(2.3263 * 0.25)
    for fresh in (True, False):
        print("fresh" if fresh else "cycled", "budget 3% under p99:", _error_rates(gen, q / 1.03, fresh, 400),
              "3% over:", _error_rates(gen, q * 1.03, fresh, 400))
