"""Slices by brightness/contrast quintile and time of day: buckets, counts that add up, headlines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness.drift import DriftError, Row, Table
from edgeprobe.harness.slices import SliceTable, bucket_of, hour_bucket, quintile_edges


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 255), min_size=1, max_size=300), st.floats(-10, 300))
def test_bucket_of_counts_the_edges_below(values: list[float], x: float) -> None:
    edges = quintile_edges(np.asarray(values))
    assert edges == sorted(edges) and len(edges) == 4
    assert bucket_of(x, edges) == sum(1 for e in edges if x > e)  # right-closed, brute force


def test_quintiles_split_a_sample_in_fifths() -> None:
    x = np.arange(1000, dtype=float)
    edges = quintile_edges(x)
    counts = np.bincount([bucket_of(v, edges) for v in x], minlength=5)
    assert counts.tolist() == [200, 200, 200, 200, 200]
    with pytest.raises(DriftError, match="empty"):
        quintile_edges(np.array([]))


def test_time_of_day_buckets() -> None:
    assert [hour_bucket(h) for h in (0, 5.99, 6, 13.5, 18, 23.99)] == [0, 0, 1, 2, 3, 3]


def _reference(rng: np.random.Generator, n: int = 500) -> Table:
    rows = []
    for _ in range(n):
        b = float(rng.uniform(20, 220))
        rows.append(Row((b, float(rng.uniform(10, 80)), 2000.0, 1.5, 0.0, 0.0), {"0": 1}, "0", {"score": 0.8},
                        None, 14.0))
    return Table.from_rows(rows)


def test_darkest_fifth_stands_out_and_counts_add_up() -> None:
    rng = np.random.default_rng(0)
    ref = _reference(rng)
    window = SliceTable()
    window.set_reference(ref)
    run = SliceTable(window.edges)
    for _ in range(3):  # three windows, merged the way the agent pools a run
        for _ in range(200):
            b = float(rng.uniform(20, 220))
            keys = window.keys((b, 40.0, 2000.0, 1.5, 0.0, 0.0), 14.0)
            dark = b < window.edges["brightness"][0]
            label = "90" if dark and rng.random() < 0.5 else "0"
            window.add_frame(keys, label, 0.5 if dark else 0.8)
            window.add_probe(keys, 3, int(rng.random() < (0.45 if dark else 0.05)) * 3)
            window.add_pair(keys, bool(rng.random() < (0.3 if dark else 0.02)))
        run.merge(window)
        window.clear()
    s = run.summary(ref)
    overall = s["overall"]
    assert overall["frames"] == 600 and overall["probe_n"] == 1800 and overall["pairs"] == 600
    for dim in ("brightness", "contrast", "time_of_day"):
        rows = [r for r in s["buckets"] if r["dimension"] == dim]
        assert sum(r["frames"] for r in rows) == 600  # every frame in exactly one bucket per dimension
        assert sum(r["probe_unstable"] for r in rows) == overall["probe_unstable"]
        assert sum(r["flips"] for r in rows) == overall["flips"]
    darkest = next(r for r in s["buckets"] if r["dimension"] == "brightness" and r["bucket"] == 0)
    assert darkest["name"] == "darkest fifth"
    assert darkest["unstable_fraction"] > 3 * overall["unstable_fraction"] / 2
    assert darkest["class_psi"] > 1.0  # half its answers are a class the reference's dark frames never gave
    brightest = next(r for r in s["buckets"] if r["dimension"] == "brightness" and r["bucket"] == 4)
    assert brightest["class_psi"] < 0.1
    assert s["headlines"][0].startswith("unstable fraction ")
    assert "in the darkest fifth of frames vs" in s["headlines"][0]
    assert f"vs {overall['unstable_fraction']:.0%} overall" in s["headlines"][0]


def test_without_a_reference_only_time_of_day() -> None:
    t = SliceTable()
    keys = t.keys((100.0, 40.0, 1.0, 1.0, 0.0, 0.0), 3.0)
    assert keys == [("time_of_day", 0)]
    t.add_frame(keys, "0", 0.9)
    s = t.summary(None)
    assert [r["name"] for r in s["buckets"]] == ["00-06"] and "headlines" not in s
