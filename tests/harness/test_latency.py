from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness.budget import percentile_ci
from edgeprobe.harness.latency import (
    PERCENTILES,
    LatencyWindow,
    encoded_histogram_of_ns,
    histogram_of_ns,
    histogram_summary,
    merge_histograms,
    min_samples_for_percentile,
    percentile_key,
    summarize_ns,
)

samples_ns = st.lists(st.integers(min_value=1_000, max_value=5_000_000_000), min_size=1, max_size=300)


def test_summary_matches_numpy_reference() -> None:
    rng = np.random.default_rng(0)
    ns = rng.lognormal(mean=15, sigma=0.5, size=1000).astype(np.int64)
    s = summarize_ns(ns)
    ms = ns / 1e6
    assert s.count == 1000
    assert s.p50 == pytest.approx(np.percentile(ms, 50))
    assert s.p99 == pytest.approx(np.percentile(ms, 99))
    assert s.p99_9 == pytest.approx(np.percentile(ms, 99.9))
    assert s.max == pytest.approx(ms.max())
    assert s.mean == pytest.approx(ms.mean())
    assert s.stdev == pytest.approx(ms.std(ddof=1))
    assert s.cov == pytest.approx(ms.std(ddof=1) / ms.mean())


def test_single_sample_has_zero_spread_and_empty_is_refused() -> None:
    s = summarize_ns([2_000_000])
    assert (s.count, s.p50, s.max, s.stdev) == (1, 2.0, 2.0, 0.0)
    with pytest.raises(ValueError):
        summarize_ns([])


@settings(max_examples=60, deadline=None)
@given(samples_ns, samples_ns)
def test_merging_histograms_equals_histogram_of_concatenation(a: list[int], b: list[int]) -> None:
    merged = histogram_summary(merge_histograms([summarize_ns(a).hdr, summarize_ns(b).hdr]))
    together = histogram_summary(merge_histograms([summarize_ns(a + b).hdr]))
    assert merged == together
    assert merged["count"] == len(a) + len(b)


@settings(max_examples=60, deadline=None)
@given(samples_ns)
def test_histogram_percentiles_within_resolution_of_exact(values: list[int]) -> None:
    hist = histogram_summary(merge_histograms([summarize_ns(values).hdr]))
    exact_max = max(values) / 1e6
    # 3 significant digits plus the 1 us unit the histogram records in
    assert hist["max"] == pytest.approx(exact_max, rel=2e-3, abs=1e-3)


def test_window_keeps_stages_apart_and_clears() -> None:
    w = LatencyWindow()
    w.add_frame({"inference": 3_000_000, "e2e": 5_000_000})
    w.add_frame({"inference": 4_000_000, "e2e": 6_000_000})
    s = w.summary()
    assert s["inference"].count == 2 and s["inference"].max == 4.0
    assert s["e2e"].p50 == pytest.approx(5.5)
    w.clear()
    assert w.summary() == {}


def test_mlperf_sample_count_rule() -> None:
    # MLPerf LoadGen: p99 at 99% confidence and 0.05% margin needs ~262k queries (rounded up to 270,336).
    n = min_samples_for_percentile(99, confidence=0.99, margin=0.0005)
    assert 262_000 < n < 263_500
    assert min_samples_for_percentile(90, 0.99, 0.0005) > min_samples_for_percentile(50, 0.99, 0.005)
    with pytest.raises(ValueError):
        min_samples_for_percentile(100)


def test_summary_carries_order_statistic_intervals_and_warnings() -> None:
    from edgeprobe.harness.latency import mlperf_min_samples

    rng = np.random.default_rng(3)
    ns = rng.lognormal(mean=15, sigma=0.5, size=500).astype(np.int64)
    s = summarize_ns(ns)
    ms = np.sort(ns / 1e6)
    assert s.min == pytest.approx(ms[0])
    assert set(s.ci) == {"p50", "p90", "p95", "p99", "p99_9"}
    lo, hi = s.ci["p50"]
    assert (lo, hi) == pytest.approx(percentile_ci(ms, 50, 0.95))
    assert lo is not None and hi is not None and lo <= s.p50 <= hi
    assert s.ci["p99_9"][1] is None  # 500 samples cannot bound p99.9 from above
    assert any("MLPerf LoadGen would need 262742" in w for w in s.warnings)
    assert any(w.startswith("unstable") for w in s.warnings)  # sigma 0.5 lognormal: CoV ~ 53%
    steady = summarize_ns(np.full(400_000, 5_000_000), with_histogram=False)
    # enough for p99, not for p99.9 (2.65 million); no spread, so no instability warning
    assert len(steady.warnings) == 1 and steady.warnings[0].startswith("p99.9 from 400000") and steady.cov == 0.0
    assert (mlperf_min_samples(90), mlperf_min_samples(99)) == (23_886, 262_742)  # LoadGen's table
    d = s.as_dict()
    assert d["ci"]["p99_9"][1] is None and isinstance(d["ci"]["p50"], list)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**13), max_size=400))
def test_a_window_encodes_as_the_histogram_it_would_fill(values: list[int]) -> None:
    """The window's encoding comes from its samples' buckets alone (no counts array filled): the same string as
    the filled histogram's, zero, clamped and repeated samples included."""
    arr = np.asarray(values, dtype=np.int64)
    assert encoded_histogram_of_ns(arr) == histogram_of_ns(arr).encode().decode("ascii")


@settings(max_examples=80, deadline=None)
@given(samples_ns)
def test_summary_intervals_are_budgets_order_statistic_intervals(values: list[int]) -> None:
    """Read off one sorted copy, the intervals are exactly what budget.percentile_ci gives (None for an infinite
    side)."""
    s = summarize_ns(values)
    ms = np.asarray(values, dtype=np.float64) / 1e6
    for p in PERCENTILES:
        lo, hi = percentile_ci(ms, p, 0.95)
        assert s.ci[percentile_key(p)] == (lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None)
