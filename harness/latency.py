"""Latency statistics: exact window summaries plus mergeable histograms.

Samples are integer nanoseconds from ``time.perf_counter_ns()``. A window
summary reports the percentiles computed exactly from its raw samples, and
carries an HdrHistogram (microsecond resolution, 3 significant digits) so
that the collector can merge windows and devices exactly: averaging
percentiles across windows is statistically wrong, merging histograms is not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
from hdrh.histogram import HdrHistogram

#: Percentiles every summary reports (MLPerf-style tail, plus the median).
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)

# HdrHistogram range: 1 us .. 1 h, 3 significant digits (0.1% value error).
_HDR_LOWEST_US = 1
_HDR_HIGHEST_US = 3_600_000_000
_HDR_DIGITS = 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(_HDR_LOWEST_US, _HDR_HIGHEST_US, _HDR_DIGITS)


def _to_us(ns: int) -> int:
    return max(_HDR_LOWEST_US, min(_HDR_HIGHEST_US, round(ns / 1000)))


@dataclass
class StageSummary:
    """Summary of one stage; times in milliseconds."""

    count: int
    p50: float
    p90: float
    p95: float
    p99: float
    p99_9: float
    max: float
    mean: float
    stdev: float
    cov: float
    hdr: str = ""

    def as_dict(self) -> dict[str, float | int | str]:
        return dict(self.__dict__)


def summarize_ns(samples_ns: Sequence[int] | np.ndarray, with_histogram: bool = True) -> StageSummary:
    """Exact summary of raw samples (nanoseconds in, milliseconds out).

    Percentiles use numpy's default linear interpolation between order
    statistics; stdev is the sample standard deviation (ddof=1).
    """
    arr = np.asarray(samples_ns, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("cannot summarise an empty sample")
    ms = arr / 1e6
    pcts = np.percentile(ms, PERCENTILES)
    mean = float(ms.mean())
    stdev = float(ms.std(ddof=1)) if ms.size > 1 else 0.0
    hdr = ""
    if with_histogram:
        hist = new_histogram()
        for v in arr:
            hist.record_value(_to_us(int(v)))
        hdr = hist.encode().decode("ascii")
    return StageSummary(
        count=int(ms.size),
        p50=float(pcts[0]),
        p90=float(pcts[1]),
        p95=float(pcts[2]),
        p99=float(pcts[3]),
        p99_9=float(pcts[4]),
        max=float(ms.max()),
        mean=mean,
        stdev=stdev,
        cov=stdev / mean if mean > 0 else 0.0,
        hdr=hdr,
    )


def merge_histograms(encoded: Iterable[str]) -> HdrHistogram:
    """Merge encoded window histograms into one (exact up to bucket resolution)."""
    merged = new_histogram()
    for enc in encoded:
        if enc:
            merged.decode_and_add(enc.encode("ascii") if isinstance(enc, str) else enc)
    return merged


def histogram_summary(hist: HdrHistogram) -> dict[str, float | int]:
    """Percentiles (ms) and count of a merged histogram."""
    count = int(hist.get_total_count())
    if count == 0:
        return {"count": 0}
    out: dict[str, float | int] = {"count": count}
    for p in PERCENTILES:
        key = "p" + (str(p).rstrip("0").rstrip(".")).replace(".", "_")
        out[key] = hist.get_value_at_percentile(p) / 1000.0
    out["max"] = hist.get_max_value() / 1000.0
    out["mean"] = hist.get_mean_value() / 1000.0
    return out


@dataclass
class LatencyWindow:
    """Collects per-stage samples for one reporting window.

    Warm-up runs are counted but never recorded: the first inferences pay
    for lazy allocation and cache misses and would inflate the tail.
    """

    warmup_runs: int = 0
    samples: dict[str, list[int]] = field(default_factory=dict)

    def add(self, stage: str, duration_ns: int) -> None:
        self.samples.setdefault(stage, []).append(int(duration_ns))

    def add_frame(self, durations_ns: dict[str, int]) -> None:
        for stage, ns in durations_ns.items():
            self.add(stage, ns)

    def summary(self) -> dict[str, StageSummary]:
        return {stage: summarize_ns(v) for stage, v in self.samples.items() if v}

    def clear(self) -> None:
        self.samples.clear()


def min_samples_for_percentile(percentile: float, confidence: float = 0.99, margin: float = 0.0005) -> int:
    """Samples needed before a percentile claim is meaningful.

    Uses the normal approximation to the binomial that MLPerf LoadGen uses to
    size its runs: n = z^2 * p(1-p) / margin^2 (e.g. p99 at 99% confidence and
    0.05% margin needs 262,742 samples; LoadGen rounds up to 270,336).
    """
    p = percentile / 100.0
    if not 0 < p < 1:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    return math.ceil(z * z * p * (1 - p) / (margin * margin))
