"""Every stability and drift figure again, by input-statistic bucket.

A model that is fine on average can fail on the darkest fifth of frames; a
report that says "unstable fraction 41% in the darkest fifth of frames vs 6%
overall" tells a user where to look. Frames are bucketed by brightness and
contrast quintiles and by time of day. Quintile edges come from the
reference (the recorded or learned baseline), so buckets mean the same thing
in every window and on every device reporting against that baseline, and
every bucket carries plain counts so windows can be added up at the
collector.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprobe.harness.drift import DriftError, Table, ks_statistic, psi_histograms
from edgeprobe.harness.health import METRICS
from edgeprobe.harness.stability import wilson_interval

QUINTILE_DIMS = ("brightness", "contrast")
NAMES = {
    "brightness": ("darkest fifth", "second-darkest fifth", "middle fifth", "second-brightest fifth",
                   "brightest fifth"),
    "contrast": ("lowest-contrast fifth", "second-lowest-contrast fifth", "middle-contrast fifth",
                 "second-highest-contrast fifth", "highest-contrast fifth"),
    "time_of_day": ("00-06", "06-12", "12-18", "18-24"),
}
#: fewest samples behind a bucket's figure before it is compared in a headline or against the reference
MIN_SAMPLES = 10


def quintile_edges(values: np.ndarray) -> list[float]:
    """The 20/40/60/80th percentiles: four inner edges, five buckets."""
    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise DriftError("quintile edges need at least one frame; the sample is empty")
    return [float(v) for v in np.quantile(x, [0.2, 0.4, 0.6, 0.8])]


def bucket_of(value: float, edges: list[float]) -> int:
    """Index 0..len(edges) of the bucket (right-closed, like the edges' quantiles)."""
    return int(np.searchsorted(edges, value, side="left"))


def hour_bucket(hour: float) -> int:
    return min(3, max(0, int(hour // 6)))


@dataclass
class _Cell:
    frames: int = 0
    probe_n: int = 0
    probe_unstable: int = 0
    pairs: int = 0
    flips: int = 0
    score_sum: float = 0.0
    score_n: int = 0
    scores: list[float] = field(default_factory=list)
    classes: Counter[str] = field(default_factory=Counter)

    def add(self, other: _Cell) -> None:
        self.frames += other.frames
        self.probe_n += other.probe_n
        self.probe_unstable += other.probe_unstable
        self.pairs += other.pairs
        self.flips += other.flips
        self.score_sum += other.score_sum
        self.score_n += other.score_n
        self.scores.extend(other.scores)
        self.classes.update(other.classes)


Key = tuple[str, int]


class SliceTable:
    """Counters per (dimension, bucket) for one window (or a whole run, by adding windows)."""

    def __init__(self, edges: dict[str, list[float]] | None = None, keep_scores: int = 500):
        self.edges: dict[str, list[float]] = dict(edges or {})
        self.cells: dict[Key, _Cell] = {}
        self.overall = _Cell()
        self.keep_scores = keep_scores

    def set_reference(self, reference: Table) -> None:
        self.edges = {d: quintile_edges(reference.inputs[d]) for d in QUINTILE_DIMS}

    def keys(self, inputs: tuple[float, ...], hour: float) -> list[Key]:
        """The buckets a frame with these input statistics, seen at this local hour, falls in."""
        keys: list[Key] = [("time_of_day", hour_bucket(hour))]
        for dim in QUINTILE_DIMS:
            if dim in self.edges:
                keys.append((dim, bucket_of(inputs[METRICS.index(dim)], self.edges[dim])))
        return keys

    def _each(self, keys: Iterable[Key]) -> Iterable[_Cell]:
        yield self.overall
        for k in keys:
            yield self.cells.setdefault(k, _Cell())

    def add_frame(self, keys: list[Key], label: str | None, score: float | None) -> None:
        for c in self._each(keys):
            c.frames += 1
            if label is not None:
                c.classes[label] += 1
            if score is not None and np.isfinite(score):
                c.score_sum += score
                c.score_n += 1
                if len(c.scores) < self.keep_scores:
                    c.scores.append(score)

    def add_probe(self, keys: list[Key], n: int, unstable: int) -> None:
        for c in self._each(keys):
            c.probe_n += n
            c.probe_unstable += unstable

    def add_pair(self, keys: list[Key], flipped: bool) -> None:
        for c in self._each(keys):
            c.pairs += 1
            c.flips += int(flipped)

    def merge(self, other: SliceTable) -> None:
        self.edges = other.edges or self.edges
        self.overall.add(other.overall)
        for k, c in other.cells.items():
            self.cells.setdefault(k, _Cell()).add(c)

    def clear(self) -> None:
        self.cells.clear()
        self.overall = _Cell()

    def summary(self, reference: Table | None = None) -> dict[str, Any]:
        """Rows per bucket with counts, fractions, and drift against the same bucket of the reference."""
        rows = []
        for (dim, idx), cell in sorted(self.cells.items()):
            row = {"dimension": dim, "bucket": idx, "name": NAMES[dim][idx], **_figures(cell)}
            if reference is not None:
                row.update(_bucket_drift(cell, _reference_subset(reference, dim, idx, self.edges)))
            rows.append(row)
        out: dict[str, Any] = {"edges": self.edges, "overall": _figures(self.overall), "buckets": rows}
        headline = headlines(out)
        if headline:
            out["headlines"] = headline
        return out


def _figures(c: _Cell) -> dict[str, Any]:
    out: dict[str, Any] = {"frames": c.frames, "probe_n": c.probe_n, "probe_unstable": c.probe_unstable,
                           "pairs": c.pairs, "flips": c.flips}
    if c.probe_n:
        lo, hi = wilson_interval(c.probe_unstable, c.probe_n)
        out.update(unstable_fraction=c.probe_unstable / c.probe_n, unstable_ci=[lo, hi])
    if c.pairs:
        out["flip_rate"] = c.flips / c.pairs
    if c.score_n:
        out["score_mean"] = c.score_sum / c.score_n
    if c.classes:
        out["classes"] = dict(c.classes)
    return out


def _reference_subset(reference: Table, dim: str, idx: int, edges: dict[str, list[float]]) -> Table | None:
    if dim == "time_of_day":
        mask = np.array([hour_bucket(h) == idx for h in reference.hours], bool)
    elif dim in edges:
        x = reference.inputs[dim]
        mask = np.searchsorted(edges[dim], x, side="left") == idx
    else:
        return None
    return reference.subset(mask) if mask.sum() >= MIN_SAMPLES else None


def _bucket_drift(cell: _Cell, ref: Table | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if ref is None or cell.frames < MIN_SAMPLES:
        return out
    if ref.classes and cell.classes:
        out["class_psi"] = psi_histograms(ref.classes, cell.classes)
    score = ref.values.get("score")
    if score is not None and np.isfinite(score).any() and cell.scores:
        out["score_ks"] = ks_statistic(score[np.isfinite(score)], cell.scores)
    return out


def headlines(summary: dict[str, Any]) -> list[str]:
    """Sentences for the buckets that stand out most from the overall figure, e.g. the darkest fifth."""
    overall = summary["overall"]
    out = []
    for figure, what, n_key in (("unstable_fraction", "unstable fraction", "probe_n"),
                                ("flip_rate", "flip rate", "pairs")):
        if figure not in overall:
            continue
        rows = [r for r in summary["buckets"] if figure in r and r[n_key] >= MIN_SAMPLES
                and r["dimension"] != "time_of_day"]
        if not rows:
            continue
        worst = max(rows, key=lambda r: r[figure])
        if worst[figure] > overall[figure]:
            out.append(f"{what} {worst[figure]:.0%} in the {worst['name']} of frames vs {overall[figure]:.0%} overall "
                       f"(n={worst[n_key]})")
    return out
