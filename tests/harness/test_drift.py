"""PSI, KS, mean shift and attribution against brute-force references and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness.baseline import Baseline, Recorder
from edgeprobe.harness.drift import (
    DriftError,
    Row,
    Table,
    Thresholds,
    compare,
    ks_statistic,
    mean_shift,
    psi_against_baseline,
    psi_counts,
    psi_histograms,
    psi_samples,
)
from edgeprobe.harness.health import METRICS


def psi_reference(expected: list[float], actual: list[float], eps: float = 1e-4) -> float:
    """Textbook PSI, one bin at a time."""
    te, ta = sum(expected), sum(actual)
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        pe, pa = max(e / te, eps), max(a / ta, eps)
        total += (pa - pe) * math.log(pa / pe)
    return total


def ks_reference(a: list[float], b: list[float]) -> float:
    """Largest gap between the two empirical CDFs, evaluated at every observed point."""
    best = 0.0
    for x in list(a) + list(b):
        fa = sum(1 for v in a if v <= x) / len(a)
        fb = sum(1 for v in b if v <= x) / len(b)
        best = max(best, abs(fa - fb))
    return best


counts = st.lists(st.integers(0, 1000), min_size=2, max_size=12)
samples = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(counts, st.data())
def test_psi_matches_the_textbook_formula_and_its_properties(e: list[int], data: st.DataObject) -> None:
    a = data.draw(st.lists(st.integers(0, 1000), min_size=len(e), max_size=len(e)))
    if sum(e) == 0 or sum(a) == 0:
        with pytest.raises(DriftError, match="empty"):
            psi_counts(e, a)
        return
    got = psi_counts(e, a)
    assert got == pytest.approx(psi_reference(e, a), rel=1e-9, abs=1e-12)
    assert got >= 0.0
    assert psi_counts(a, e) == pytest.approx(got, rel=1e-9, abs=1e-12)  # symmetric
    assert psi_counts(e, e) == pytest.approx(0.0, abs=1e-12)
    assert psi_counts(e, [3 * x for x in e]) == pytest.approx(0.0, abs=1e-12)  # proportions, not counts


@settings(max_examples=200, deadline=None)
@given(samples, samples)
def test_ks_is_the_largest_cdf_gap(a: list[float], b: list[float]) -> None:
    d = ks_statistic(a, b)
    assert 0.0 <= d <= 1.0
    assert d == pytest.approx(ks_reference(a, b), abs=1e-12)
    assert ks_statistic(b, a) == pytest.approx(d, abs=1e-12)
    assert ks_statistic(a, a) == 0.0


@settings(max_examples=100, deadline=None)
@given(samples)
def test_psi_of_a_sample_with_itself_is_zero(a: list[float]) -> None:
    assert psi_samples(a, a) == pytest.approx(0.0, abs=1e-12)


def test_psi_samples_bins_on_reference_quantiles() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 5000)
    same = rng.normal(0, 1, 5000)
    shifted = rng.normal(1, 1, 5000)
    assert psi_samples(ref, same) < 0.02
    assert psi_samples(ref, shifted) > 0.5
    # By hand: deciles of the reference, count both samples per decile bin, textbook PSI.
    edges = np.quantile(ref, np.linspace(0, 1, 11)[1:-1])
    e = [int(np.sum((ref > lo) & (ref <= hi))) for lo, hi in zip([-np.inf, *edges], [*edges, np.inf], strict=True)]
    a = [int(np.sum((shifted > lo) & (shifted <= hi))) for lo, hi in zip([-np.inf, *edges], [*edges, np.inf],
                                                                          strict=True)]
    assert psi_samples(ref, shifted) == pytest.approx(psi_reference(e, a), rel=1e-9)


def test_psi_histograms_aligns_classes_by_name() -> None:
    assert psi_histograms({"0": 90, "180": 10}, {"180": 10, "0": 90}) == pytest.approx(0.0, abs=1e-12)
    assert psi_histograms({"0": 90, "180": 10}, {"0": 10, "180": 90}) == pytest.approx(
        psi_reference([90, 10], [10, 90]))
    # A class only one side has counts as zero on the other (floored, finite).
    assert math.isfinite(psi_histograms({"0": 100}, {"90": 100}))


def test_mean_shift_in_units_of_the_reference_spread() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 2, (4000, 3))
    mean, var = ref.mean(axis=0), float(((ref - ref.mean(axis=0)) ** 2).sum(axis=1).mean())
    assert mean_shift(mean, var, rng.normal(0, 2, (500, 3))) < 0.1
    moved = ref[:500] + np.array([2 * math.sqrt(12), 0, 0])  # moved by twice the total spread sqrt(3 * 4)
    assert mean_shift(mean, var, moved) == pytest.approx(2.0, rel=0.05)
    with pytest.raises(DriftError, match="empty"):
        mean_shift(mean, var, np.zeros((0, 3)))
    with pytest.raises(DriftError, match="record a new baseline"):
        mean_shift(mean, var, np.zeros((5, 4)))


def test_empty_samples_are_one_clear_error() -> None:
    for call in (lambda: ks_statistic([], [1.0]), lambda: psi_samples([1.0], []),
                 lambda: Table.from_rows([]), lambda: Recorder().build("")):
        with pytest.raises(DriftError, match=r"empty|no frames"):
            call()


def _rows(rng: np.random.Generator, n: int, bright: float, p180: float, score: float) -> list[Row]:
    rows = []
    for _ in range(n):
        label = "180" if rng.random() < p180 else "0"
        probs = np.array([0.9, 0.1]) if label == "0" else np.array([0.1, 0.9])
        inputs = (bright + rng.normal(0, 3), 50 + rng.normal(0, 2), 2000 + rng.normal(0, 100), 1.4, 0.0, 0.0)
        rows.append(Row(inputs, {label: 1}, label, {"score": float(np.clip(score + rng.normal(0, 0.05), 0, 1))},
                        probs, 12.0))
    return rows


def test_attribution_camera_scene_or_none() -> None:
    rng = np.random.default_rng(2)
    ref = Table.from_rows(_rows(rng, 400, 120, 0.05, 0.8))
    th = Thresholds()
    same = compare(ref, Table.from_rows(_rows(rng, 200, 120, 0.05, 0.8)), th)
    assert same["attribution"] == "none" and not same["output_drift"] and not same["input_drift"]
    dark = compare(ref, Table.from_rows(_rows(rng, 200, 40, 0.5, 0.5)), th)
    assert dark["attribution"] == "camera" and dark["input_drift"]
    assert any(m.startswith("brightness") for m in dark["inputs_moved"])
    scene = compare(ref, Table.from_rows(_rows(rng, 200, 120, 0.9, 0.8)), th)
    assert scene["attribution"] == "scene_or_model" and scene["output_drift"] and not scene["input_drift"]
    assert "class histogram" in scene["message"] and "not the camera" in scene["message"]
    # Inputs that moved by a grey level or two are not a camera problem, however tight the reference.
    nudged = compare(ref, Table.from_rows(_rows(rng, 200, 122, 0.9, 0.8)), th)
    assert nudged["attribution"] == "scene_or_model"


def test_baseline_round_trip_and_thinning() -> None:
    rng = np.random.default_rng(3)
    rec = Recorder(max_rows=50)
    rows = _rows(rng, 230, 120, 0.2, 0.8)
    for r in rows:
        rec.add(r)
    b = rec.build("ab" * 32, model="m.onnx")
    assert b.frames == 230 and b.table.n <= 50
    assert sum(b.table.classes.values()) == 230  # exact over every frame, not the thinned rows
    vectors = np.stack([r.vector for r in rows if r.vector is not None])
    assert b.table.vector_mean is not None and np.allclose(b.table.vector_mean, vectors.mean(axis=0))
    assert b.table.vector_var_total == pytest.approx(float(((vectors - vectors.mean(0)) ** 2).sum(1).mean()))
    again = Baseline.from_dict(b.to_dict())
    assert again.model_sha256 == b.model_sha256 and again.frames == 230 and again.meta["model"] == "m.onnx"
    for m in METRICS:
        assert np.allclose(again.table.inputs[m], b.table.inputs[m], atol=1e-4)
    assert again.table.labels == b.table.labels


@pytest.mark.parametrize("data, pattern", [
    ({"format": "other"}, "not an edgeprobe baseline"),
    ({"format": "edgeprobe-baseline/1"}, "incomplete or malformed"),
    ([1, 2], "not an edgeprobe baseline"),
])
def test_broken_baselines_are_refused(data: object, pattern: str) -> None:
    with pytest.raises(DriftError, match=pattern):
        Baseline.from_dict(data)


def test_psi_against_baseline_for_suites(tmp_path: object) -> None:
    import json
    from pathlib import Path

    rng = np.random.default_rng(4)
    rec = Recorder()
    for r in _rows(rng, 100, 120, 0.1, 0.8):
        rec.add(r)
    path = Path(str(tmp_path)) / "b.json"
    path.write_text(json.dumps(rec.build("cd" * 32).to_dict()))
    same = [{"label": "0", "score": 0.8}] * 90 + [{"label": "180", "score": 0.8}] * 10
    flipped = [{"label": "180", "score": 0.8}] * 90 + [{"label": "0", "score": 0.8}] * 10
    assert psi_against_baseline(str(path), same) < 0.1
    assert psi_against_baseline(str(path), flipped) > 1.0
    with pytest.raises(DriftError, match="recorded with model sha256"):
        psi_against_baseline(str(path), same, model_sha256="ef" * 32)
    with pytest.raises(DriftError, match="empty"):
        psi_against_baseline(str(path), [])
