"""Latency statistics: exact window summaries plus mergeable histograms.

Samples are integer nanoseconds from ``time.perf_counter_ns()``. A window
summary reports the percentiles computed exactly from its raw samples, and
carries an HdrHistogram (microsecond resolution, 3 significant digits) so
that the collector can merge windows and devices exactly: averaging
percentiles across windows is statistically wrong, merging histograms is not.
The histogram is edgeprobe's own (``hdr.Histogram``: HdrHistogram's buckets and
V2 wire form, no compiled dependency, so the board install needs no compiler).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from edgeprobe.harness.bodies import LatencyBody, StageStats, Window
from edgeprobe.harness.hdr import (
    Histogram,
    merge,
)

#: Percentiles every summary reports (MLPerf-style tail, plus the median).
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 95.0, 99.0, 99.9)

#: Confidence of the per-percentile order-statistic intervals in every summary.
CI_CONFIDENCE = 0.95

#: Coefficient of variation above which a stage's figures are flagged unstable.
#: trtexec warns at 1% for GPU compute time alone; a Python-timed CPU stage on a
#: board with an OS scheduler sees more noise, so the default here is 10%.
COV_UNSTABLE = 0.10

#: the stages whose instability is raised to a run-level flag (sub-millisecond glue stages are noisy by nature)
FLAGGED_STAGES = ("inference", "e2e")

# HdrHistogram range: 1 us .. 1 h, 3 significant digits (0.1% value error).
_HDR_LOWEST_US = 1
_HDR_HIGHEST_US = 3_600_000_000
_HDR_DIGITS = 3


def new_histogram() -> Histogram:
    """An empty histogram in the layout every window uses (1 us .. 1 h, 3 significant digits)."""
    return Histogram(_HDR_LOWEST_US, _HDR_HIGHEST_US, _HDR_DIGITS)


def _to_us(ns: int) -> int:
    return max(_HDR_LOWEST_US, min(_HDR_HIGHEST_US, round(ns / 1000)))


#: the window layout's bucket arithmetic, for encoding a window without filling a histogram (never recorded into)
_LAYOUT = new_histogram()


def _us_of_ns(samples_ns: np.ndarray | Sequence[int]) -> np.ndarray:
    """Each sample rounded to the nearest microsecond and clamped into the histogram's range (as ``_to_us``)."""
    us = np.clip(np.rint(np.asarray(samples_ns, dtype=np.float64) / 1000.0), _HDR_LOWEST_US, _HDR_HIGHEST_US)
    return us.astype(np.int64)


def histogram_of_ns(samples_ns: np.ndarray) -> Histogram:
    """A histogram (microseconds) of nanosecond samples, filled in one vectorised pass.

    The same samples always give the same buckets and the same encoding (see ``_us_of_ns``).
    """
    hist = new_histogram()
    hist.record_values(_us_of_ns(samples_ns))
    return hist


def encoded_histogram_of_ns(samples_ns: np.ndarray | Sequence[int]) -> str:
    """``histogram_of_ns(samples_ns).encode()`` as text, from the samples' buckets alone (no 188 kB counts array
    filled and dropped per stage and window): the same string."""
    return _LAYOUT.sparse_values(_us_of_ns(samples_ns)).encode().decode("ascii")


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
    min: float = 0.0
    #: "p99" -> (low, high) ms, distribution-free (order statistics); None where n cannot bound that side
    ci: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    ci_confidence: float = CI_CONFIDENCE
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["ci"] = {k: list(v) for k, v in self.ci.items()}
        d["warnings"] = list(self.warnings)
        return d

    def stats(self) -> StageStats:
        """This stage as it travels in a ``latency`` body."""
        return StageStats(count=self.count, p50=self.p50, p90=self.p90, p95=self.p95, p99=self.p99, max=self.max,
                          mean=self.mean, stdev=self.stdev, hdr=self.hdr, p99_9=self.p99_9, cov=self.cov,
                          min=self.min, ci=dict(self.ci), ci_confidence=self.ci_confidence,
                          warnings=list(self.warnings))


def percentile_key(p: float) -> str:
    """50.0 -> "p50", 99.9 -> "p99_9" (the field names used in messages)."""
    return "p" + (f"{p:g}").replace(".", "_")


def summarize_ns(samples_ns: Sequence[int] | np.ndarray, with_histogram: bool = True,
                 with_intervals: bool = True) -> StageSummary:
    """Exact summary of raw samples (nanoseconds in, milliseconds out).

    Percentiles use numpy's default linear interpolation between order
    statistics; stdev is the sample standard deviation (ddof=1). With
    ``with_intervals`` each percentile gets a distribution-free 95% interval
    and the summary says when there are too few samples to trust a tail.
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
        hdr = encoded_histogram_of_ns(arr)
    cov = stdev / mean if mean > 0 else 0.0
    ci: dict[str, tuple[float | None, float | None]] = {}
    warnings: list[str] = []
    if with_intervals:
        from edgeprobe.harness.budget import order_statistic_ranks  # budget imports this module

        # budget.percentile_ci's bounds, read off one sorted copy instead of sorting again per percentile
        ordered = np.sort(ms).tolist()
        n = len(ordered)
        for p in PERCENTILES:
            low, high = order_statistic_ranks(n, p, CI_CONFIDENCE)
            lo = ordered[low - 1] if low >= 1 else math.inf
            hi = ordered[high - 1] if high <= n else math.inf
            ci[percentile_key(p)] = (lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None)
        warnings = sample_warnings(n, cov)
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
        cov=cov,
        hdr=hdr,
        min=float(ms.min()),
        ci=ci,
        warnings=warnings,
    )


def warm(frames: int) -> None:
    """Pay before the first frame what the first window's summary would otherwise pay inside the run: numpy's
    lazy import of ``numpy.ma`` (its percentile calls ``np.unique``, which imports it on first use: ~10 ms),
    budget's import, and the cached interval ranks of a full window of ``frames`` samples."""
    summarize_ns(np.arange(1, max(2, frames) + 1, dtype=np.int64) * 1000)


def sample_warnings(n: int, cov: float) -> list[str]:
    """What a reader must know before trusting the tail of a summary of ``n`` samples."""
    out: list[str] = []
    for p in (99.0, 99.9):
        need = mlperf_min_samples(p)
        if n < need:
            out.append(f"p{p:g} from {n} samples: MLPerf LoadGen would need {need}")
            break  # the p99.9 shortfall is implied by the p99 one
    if cov > COV_UNSTABLE:
        out.append(f"unstable: coefficient of variation {cov:.1%} > {COV_UNSTABLE:.0%}")
    return out


def merge_histograms(encoded: Iterable[str]) -> Histogram:
    """Merge encoded window histograms into one (exact up to bucket resolution).

    Reads the HdrHistogram V2 form that every edgeprobe version has sent (``hdr.decode``); a malformed one
    raises ``hdr.HistogramDecodeError`` (a ``ValueError``) saying what is wrong.
    """
    return merge(encoded, new_histogram())


def histogram_summary_without_mean(hist: Histogram) -> dict[str, float | int]:
    out = histogram_summary(hist)
    out.pop("mean", None)
    return out


def histogram_summary(hist: Histogram) -> dict[str, float | int]:
    """Percentiles (ms) and count of a merged histogram."""
    count = int(hist.get_total_count())
    if count == 0:
        return {"count": 0}
    out: dict[str, float | int] = {"count": count}
    for p in PERCENTILES:
        out[percentile_key(p)] = hist.get_value_at_percentile(p) / 1000.0
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

    def summary(self, with_intervals: bool = True) -> dict[str, StageSummary]:
        return {stage: summarize_ns(v, with_intervals=with_intervals) for stage, v in self.samples.items() if v}

    def clear(self) -> None:
        self.samples.clear()

    def body(self, window: Window) -> LatencyBody | None:
        """The window's ``latency`` body (None when no stage was timed); the caller adds run-level fields."""
        stages = {stage: s.stats() for stage, s in self.summary().items()}
        return LatencyBody(window=window, warmup_runs=self.warmup_runs, stages=stages) if stages else None

    def reset(self) -> None:
        """Start the next window: no samples, no warm-up runs."""
        self.samples.clear()
        self.warmup_runs = 0


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


def mlperf_min_samples(percentile: float) -> int:
    """MLPerf LoadGen's sample count for a percentile claim: 99% confidence, margin (1 - p) / 20.

    That margin reproduces LoadGen's table (p90: 0.5%, p95: 0.25%, p99: 0.05%
    giving about 23,886 / 50,425 / 262,742 before LoadGen rounds them up).
    """
    p = percentile / 100.0
    return min_samples_for_percentile(percentile, confidence=0.99, margin=(1.0 - p) / 20.0)
