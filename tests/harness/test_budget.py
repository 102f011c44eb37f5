"""Budgets: parsing, order-statistic intervals against brute force, coverage, verdicts, early stopping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness.budget import (
    Budget,
    BudgetDriver,
    BudgetSampler,
    evaluate_budget,
    look_confidence,
    min_samples_for_bounds,
    order_statistic_ranks,
    parse_budget,
    percentile_ci,
)
from edgeprobe.harness.errors import ConfigError


@pytest.mark.parametrize(("text", "pct", "ms"), [
    ("p99=30ms", 99.0, 30.0), ("p99.9=0.5s", 99.9, 500.0), ("p50=12.5ms", 50.0, 12.5),
    ("P95 <= 250us", 95.0, 0.25), ("p90:2000000ns", 90.0, 2.0),
])
def test_parse_budget_accepts_the_documented_forms(text: str, pct: float, ms: float) -> None:
    b = parse_budget(text, stage="inference")
    assert (b.percentile, b.stage, b.confidence) == (pct, "inference", 0.95)
    assert b.budget_ms == pytest.approx(ms)


@pytest.mark.parametrize(("text", "pattern"), [
    ("p99=thirty", r"does not parse"), ("p100=3ms", r"strictly between 0 and 100"),
    ("p0=3ms", r"strictly between 0 and 100"), ("p99=30", r"has no unit"), ("99=30ms", r"does not parse"),
    ("p99=0ms", r"must be positive"), ("", r"does not parse"),
])
def test_parse_budget_refuses_with_one_sentence(text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern) as err:
        parse_budget(text)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("fields", [
    {"budget_ms": 3, "percentile": 101}, {"budget_ms": 3, "percentile": 0}, {"budget_ms": -1},
    {"budget_ms": float("nan")}, {"budget_ms": 3, "confidence": 1.0}, {"budget_ms": 3, "stage": ""},
])
def test_budget_refuses_impossible_fields_in_one_sentence(fields: dict[str, object]) -> None:
    with pytest.raises(ConfigError) as err:
        Budget(**fields)  # type: ignore[arg-type]
    assert "\n" not in str(err.value)


def _brute_force_coverage(n: int, p: float, low: int, high: int) -> float:
    """P(x_(low) <= q_p <= x_(high)) = P(low <= B <= high - 1), B ~ Binomial(n, p), summed exactly."""
    return sum(math.comb(n, k) * p**k * (1 - p) ** (n - k) for k in range(low, high))


@pytest.mark.parametrize(("n", "pct", "conf"), [(20, 50, 0.95), (100, 90, 0.95), (400, 99, 0.95), (60, 75, 0.8)])
def test_ranks_match_brute_force_binomial_sums(n: int, pct: float, conf: float) -> None:
    low, high = order_statistic_ranks(n, pct, conf)
    p = pct / 100
    assert 1 <= low < high <= n
    alpha = (1 - conf) / 2
    # each tail within alpha, and neither rank could move inwards without breaking that
    assert _brute_force_coverage(n, p, 0, low) <= alpha + 1e-12
    assert _brute_force_coverage(n, p, high, n + 1) <= alpha + 1e-12
    assert _brute_force_coverage(n, p, 0, low + 1) > alpha
    assert _brute_force_coverage(n, p, high - 1, n + 1) > alpha
    assert _brute_force_coverage(n, p, low, high) >= conf - 1e-12


def test_too_few_samples_give_infinite_bounds() -> None:
    need = min_samples_for_bounds(99, 0.95)
    assert need == 368  # 0.99**368 <= 0.025 < 0.99**367
    x = np.arange(1, need)
    assert percentile_ci(x, 99, 0.95)[1] == math.inf
    lo, hi = percentile_ci(np.arange(1, need + 1), 99, 0.95)
    assert math.isfinite(lo) and hi == need
    assert percentile_ci([], 50, 0.95) == (-math.inf, math.inf)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.01, 1e4), min_size=1, max_size=400), st.floats(1, 99), st.floats(0.5, 0.99))
def test_interval_bounds_are_samples_and_widen_with_confidence(values: list[float], pct: float, conf: float) -> None:
    lo, hi = percentile_ci(values, pct, conf)
    lo2, hi2 = percentile_ci(values, pct, min(0.999, conf + 0.009))
    assert lo2 <= lo <= hi <= hi2
    for bound in (lo, hi):
        assert not math.isfinite(bound) or bound in values


@pytest.mark.parametrize(("pct", "n", "conf"), [(50, 51, 0.9), (90, 300, 0.95), (99, 1000, 0.95)])
def test_intervals_cover_the_true_percentile_at_the_stated_rate(pct: float, n: int, conf: float) -> None:
    rng = np.random.default_rng(1234)
    trials = 600
    true_q = -math.log(1 - pct / 100)  # exponential(1) quantile
    covered = 0
    for _ in range(trials):
        lo, hi = percentile_ci(rng.exponential(size=n), pct, conf)
        covered += lo <= true_q <= hi
    rate = covered / trials
    # Order-statistic intervals are exact-or-conservative: at least the stated rate, up to Monte Carlo noise
    # (3 standard errors), and not absurdly wide.
    se = math.sqrt(conf * (1 - conf) / trials)
    assert conf - 3 * se <= rate <= min(1.0, conf + 0.05 + 3 * se), rate


def test_verdicts_pass_fail_and_inconclusive() -> None:
    rng = np.random.default_rng(5)
    ns = (rng.lognormal(mean=math.log(10e6), sigma=0.2, size=2000)).astype(np.int64)  # ~10 ms
    ok = evaluate_budget(ns, parse_budget("p99=100ms"))
    assert ok.status == "pass" and ok.passed and ok.ci_high_ms <= 100 and ok.n == 2000
    bad = evaluate_budget(ns, parse_budget("p99=1us"))
    assert bad.status == "fail" and bad.ci_low_ms > 0.001
    p99 = float(np.percentile(ns / 1e6, 99))
    edge = evaluate_budget(ns, Budget(budget_ms=p99))
    assert edge.status == "inconclusive" and edge.ci_low_ms <= p99 <= edge.ci_high_ms
    few = evaluate_budget(ns[:50], parse_budget("p99=100ms"))
    assert few.status == "inconclusive" and few.ci_high_ms == math.inf
    assert any("cannot bound" in w for w in few.warnings)
    assert not ok.enough_samples and ok.mlperf_min_samples == 262_742
    d = few.as_dict()
    assert d["ci_high_ms"] is None and d["budget"]["percentile"] == 99.0 and d["status"] == "inconclusive"
    assert evaluate_budget([], parse_budget("p99=1ms")).status == "inconclusive"


def test_alpha_spending_keeps_the_total_error_rate() -> None:
    alpha = 0.05
    spent = sum(1 - look_confidence(1 - alpha, k) for k in range(1, 10_000))
    assert spent <= alpha
    assert 0.95 < look_confidence(0.95, 1) < look_confidence(0.95, 2) < 1


def test_early_stopping_settles_fast_when_far_and_keeps_error_rates_at_the_edge() -> None:
    rng = np.random.default_rng(9)
    far = BudgetSampler(parse_budget("p99=1s"), max_samples=50_000)
    while not far.add(int(rng.exponential(1e6))):
        pass
    verdict = far.finish()
    assert verdict.status == "pass" and len(far.samples) < 1000 and verdict.looks >= 1
    assert far.stopped_by == "settled"
    # The true p99 of exponential(1 ms) is 4.605 ms: a budget exactly there must rarely pass or fail.
    edge = Budget(budget_ms=-math.log(0.01))
    outcomes = {"pass": 0, "fail": 0, "inconclusive": 0}
    trials = 150
    for _ in range(trials):
        draws = iter((rng.exponential(1e6, size=3000)).astype(np.int64))
        sampler = BudgetSampler(edge, max_samples=3000)
        while not sampler.add(next(draws)):
            pass
        outcomes[sampler.finish().status] += 1
    assert outcomes["pass"] / trials <= 0.06 and outcomes["fail"] / trials <= 0.06, outcomes


def test_budget_driver_stops_on_its_own_limits_and_ignores_stages_it_does_not_judge() -> None:
    ticks = iter(range(10_000))
    driver = BudgetDriver([parse_budget("p99=1ms", stage="inference"), parse_budget("p50=1s")], max_samples=10_000,
                          max_seconds=50.0, clock=lambda: float(next(ticks)))
    n = 0
    while not driver.feed({"e2e": 5, "preprocess": 10**12}):  # no inference samples: that budget never settles
        n += 1
    assert driver.reason == "max_seconds" and driver.runs == n + 1 == 50
    inference, e2e = driver.results()
    assert inference.status == "inconclusive" and inference.n == 0 and e2e.status == "pass"
    capped = BudgetDriver([parse_budget("p99=1ms")], max_samples=7, max_seconds=math.inf)
    assert [capped.feed({"e2e": 10**9}) for _ in range(7)][-1] and capped.reason == "max_samples"
    assert BudgetDriver([], max_samples=3, max_seconds=math.inf).feed({}) is False
