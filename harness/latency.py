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
import struct
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from edgeprobe.harness.bodies import LatencyBody, StageStats, Window
from edgeprobe.harness.hdr import (
    Grouped,
    Histogram,
    Sparse,
    layout_counts_len,
    merge,
    merge_grouped,
    merge_groups,
    sparse_of,
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


def histogram_of_ns(samples_ns: np.ndarray) -> Histogram:
    """A histogram (microseconds) of nanosecond samples, filled in one vectorised pass.

    Each sample is rounded to the nearest microsecond and clamped into the histogram's range (as ``_to_us``),
    so the same samples always give the same buckets and the same encoding.
    """
    hist = new_histogram()
    us = np.clip(np.rint(np.asarray(samples_ns, dtype=np.float64) / 1000.0), _HDR_LOWEST_US, _HDR_HIGHEST_US)
    hist.record_values(us.astype(np.int64))
    return hist


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
        hdr = histogram_of_ns(arr).encode().decode("ascii")
    cov = stdev / mean if mean > 0 else 0.0
    ci: dict[str, tuple[float | None, float | None]] = {}
    warnings: list[str] = []
    if with_intervals:
        from edgeprobe.harness.budget import percentile_ci  # budget imports this module

        ordered = np.sort(ms)
        for p in PERCENTILES:
            lo, hi = percentile_ci(ordered, p, CI_CONFIDENCE)
            ci[percentile_key(p)] = (lo if math.isfinite(lo) else None, hi if math.isfinite(hi) else None)
        warnings = sample_warnings(int(ms.size), cov)
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


#: the collector's stored form of a rollup histogram: magic, layout, then the non-empty buckets.
#: EPH1 (zlib'd, 2-byte gaps and 8-byte counts) is still read; EPH2 is written.
_PACK_MAGIC = b"EPH1"
_PACK_HEADER = struct.Struct("<4sqqBI")
_PACK2_MAGIC = b"EPH2"
_PACK2_HEADER = struct.Struct("<4sqqBIBB")
_WIDTHS = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}


def pack_histogram(hist: Histogram) -> bytes:
    """A histogram as its layout and non-empty buckets: index gaps and counts, each in the fewest bytes
    (1, 2, 4 or 8) that hold its largest value.

    The collector's rollup form, read and written with numpy. The collector rewrites one rollup histogram
    per device, hour and stage in every batch it commits, so this costs what a copy costs: zlib (EPH1)
    took 30-70 us for an hour's ~700 buckets, about half of merging a window into its hour; dropping it
    stores an hour's buckets in ~3 bytes each instead of ~2.2.
    """
    return _pack_sparse(sparse_of(hist))


def _width(values: np.ndarray) -> int:
    top = int(values.max()) if values.size else 0
    return 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8


def _pack_sparse(s: Sparse) -> bytes:
    gaps = np.diff(s.buckets, prepend=0)
    gw, cw = _width(gaps), _width(s.counts)
    header = _PACK2_HEADER.pack(_PACK2_MAGIC, s.lowest, s.highest, s.digits, s.buckets.size, gw, cw)
    return header + gaps.astype(_WIDTHS[gw]).tobytes() + s.counts.astype(_WIDTHS[cw]).tobytes()


def _unpack_sparse(blob: bytes) -> tuple[tuple[int, int, int], np.ndarray, np.ndarray]:
    """(layout, bucket indices, counts) of a packed histogram, without expanding it to every bucket."""
    blob = bytes(blob)
    if blob[:4] == _PACK2_MAGIC and len(blob) >= _PACK2_HEADER.size:
        _, lowest, highest, digits, n, gw, cw = _PACK2_HEADER.unpack_from(blob)
        if gw not in _WIDTHS or cw not in _WIDTHS or len(blob) != _PACK2_HEADER.size + n * (gw + cw):
            raise ValueError("packed histogram's size does not match its header")
        at = _PACK2_HEADER.size
        index = np.cumsum(np.frombuffer(blob, _WIDTHS[gw], n, at).astype(np.int64))
        counts = np.frombuffer(blob, _WIDTHS[cw], n, at + gw * n).astype(np.int64)
        return (int(lowest), int(highest), int(digits)), index, counts
    try:
        raw = zlib.decompress(blob)
    except (zlib.error, TypeError) as exc:
        raise ValueError(f"packed histogram does not inflate: {exc}") from None
    if len(raw) < _PACK_HEADER.size:
        raise ValueError("packed histogram is too short for its header")
    magic, lowest, highest, digits, n = _PACK_HEADER.unpack_from(raw)
    if magic != _PACK_MAGIC or len(raw) != _PACK_HEADER.size + 10 * n:
        raise ValueError("not a packed edgeprobe histogram")
    at = _PACK_HEADER.size
    index = np.cumsum(np.frombuffer(raw, "<u2", n, at).astype(np.int64))
    counts = np.frombuffer(raw, "<u8", n, at + 2 * n).astype(np.int64)
    return (int(lowest), int(highest), int(digits)), index, counts


def unpack_histogram(blob: bytes) -> Histogram:
    """The histogram :func:`pack_histogram` packed; ValueError saying why for anything else."""
    layout, index, counts = _unpack_sparse(blob)
    hist = Histogram(*layout)
    if index.size and int(index[-1]) >= hist.counts_len:
        raise ValueError("packed histogram has buckets outside its own range")
    hist.counts[index] = counts
    hist.total_count = int(hist.counts.sum())
    return hist


#: the empty rollup a device's first window of an hour is merged into
_EMPTY = sparse_of(new_histogram())


def _stored_sparse(packed: bytes | None) -> Sparse:
    if packed is None:
        return _EMPTY
    layout, index, counts = _unpack_sparse(packed)
    if index.size and int(index[-1]) >= layout_counts_len(*layout):
        raise ValueError("packed histogram has buckets outside its own range")
    keep = counts != 0  # never packed, but a zero bucket must not survive the merge either
    return Sparse(*layout, index[keep], counts[keep])


def merge_into_packed(packed: bytes | None, encoded: Iterable[str]) -> bytes:
    """Add encoded window histograms (V2, as agents send them) to a packed rollup histogram."""
    return merge_many_into_packed([(packed, list(encoded))])[0]


def merge_many_into_packed(rows: Sequence[tuple[bytes | None, Sequence[str]]]) -> list[bytes]:
    """For each (stored rollup or None, encoded windows), the rollup with those windows added.

    One call per committed batch for all of its device x hour x stage rollups: unpacked, merged
    (``hdr.merge_grouped``) and packed in a few numpy calls for the whole batch, only non-empty buckets
    ever touched. Anything that pass does not take (an old EPH1 rollup, another layout, a malformed
    window) goes rollup by rollup, which gives the same bytes, or raises the first error in order.
    """
    grouped = _unpack_many([packed for packed, _ in rows])
    if grouped is not None:
        merged = merge_grouped(grouped, [windows for _, windows in rows])
        if merged is not None:
            return _pack_many(merged)
    return [_pack_sparse(m) for m in merge_groups([(_stored_sparse(p), w) for p, w in rows])]


def _unpack_many(blobs: Sequence[bytes | None]) -> Grouped | None:
    """EPH2 rollups (None: an empty one) as one ``Grouped``; None unless every blob is a sound EPH2 in one
    layout (the rollup-by-rollup path then reads or refuses each)."""
    layout = (_EMPTY.lowest, _EMPTY.highest, _EMPTY.digits)
    sizes: list[int] = []
    parts: dict[tuple[str, int], list[tuple[int, bytes]]] = {}
    for i, blob in enumerate(blobs):
        if blob is None:
            sizes.append(0)
            continue
        blob = bytes(blob)
        if blob[:4] != _PACK2_MAGIC or len(blob) < _PACK2_HEADER.size:
            return None
        _, lowest, highest, digits, n, gw, cw = _PACK2_HEADER.unpack_from(blob)
        if (lowest, highest, digits) != layout or gw not in _WIDTHS or cw not in _WIDTHS or \
                len(blob) != _PACK2_HEADER.size + n * (gw + cw):
            return None
        at = _PACK2_HEADER.size
        parts.setdefault(("gaps", gw), []).append((i, blob[at:at + gw * n]))
        parts.setdefault(("counts", cw), []).append((i, blob[at + gw * n:]))
        sizes.append(n)
    n_of = np.asarray(sizes, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(n_of)))
    total = int(starts[-1])
    arrays = {"gaps": np.zeros(total, dtype=np.int64), "counts": np.zeros(total, dtype=np.int64)}
    for (name, width), members in parts.items():  # one frombuffer per array and width, whatever the count
        which = np.asarray([i for i, _ in members], dtype=np.int64)
        values = np.frombuffer(b"".join(b for _, b in members), dtype=_WIDTHS[width]).astype(np.int64)
        lens = n_of[which]
        place = np.repeat(starts[which] - (np.cumsum(lens) - lens), lens) + np.arange(values.size)
        arrays[name][place] = values
    gaps, counts = arrays["gaps"], arrays["counts"]
    running = np.cumsum(gaps)
    base = np.zeros(len(sizes), dtype=np.int64)
    nonempty = n_of > 0
    base[nonempty] = (running - gaps)[starts[:-1][nonempty]]
    buckets = running - np.repeat(base, n_of)
    later = np.ones(total, dtype=bool)
    later[starts[:-1][nonempty]] = False
    if total and (int(buckets.max()) >= layout_counts_len(*layout) or not counts.all() or (gaps[later] <= 0).any()):
        return None
    return Grouped(*layout, starts, buckets, counts)


def _pack_many(g: Grouped) -> list[bytes]:
    """``_pack_sparse`` of every group, byte for byte, with numpy calls per batch rather than per rollup."""
    sizes = np.diff(g.starts)
    nonempty = sizes > 0
    firsts = g.starts[:-1][nonempty]
    prev = np.concatenate(([0], g.buckets[:-1]))
    prev[firsts] = 0
    gaps = g.buckets - prev
    widths = {}
    for name, values in (("gaps", gaps), ("counts", g.counts)):
        top = np.zeros(sizes.size, dtype=np.int64)
        if values.size:
            top[nonempty] = np.maximum.reduceat(values, firsts)
        widths[name] = np.where(top < 1 << 8, 1, np.where(top < 1 << 16, 2, np.where(top < 1 << 32, 4, 8))).tolist()
    typed = {(name, w): values.astype(_WIDTHS[w])
             for name, values in (("gaps", gaps), ("counts", g.counts)) for w in set(widths[name])}
    out = []
    bounds = g.starts.tolist()
    for k, (gw, cw) in enumerate(zip(widths["gaps"], widths["counts"], strict=True)):
        a, b = bounds[k], bounds[k + 1]
        out.append(_PACK2_HEADER.pack(_PACK2_MAGIC, g.lowest, g.highest, g.digits, b - a, gw, cw)
                   + typed["gaps", gw][a:b].tobytes() + typed["counts", cw][a:b].tobytes())
    return out


def summary_of_packed(packed: Iterable[bytes]) -> dict[str, float | int]:
    """Count, percentiles and max (ms) over packed rollup histograms (hours of one device and stage, say).

    HdrHistogram's definitions (``Histogram.get_value_at_percentile``/``get_max_value``) evaluated on the
    non-empty buckets only: a fleet status asks this once per device, and a cumulative sum over all 23,552
    buckets per percentile was most of its time. No mean: the histogram's is a bucket-midpoint estimate, and
    the collector keeps the exact sum of the windows' samples beside each rollup.
    """
    parts = [_unpack_sparse(b) for b in packed]
    parts = [p for p in parts if p[1].size]
    if not parts:
        return {"count": 0}
    if len({p[0] for p in parts}) > 1:  # several layouts: re-bucket through the full histograms
        hist = new_histogram()
        for layout, index, counts in parts:
            one = Histogram(*layout)
            one.counts[index] = counts
            one.total_count = int(counts.sum())
            hist.add(one)
        return histogram_summary_without_mean(hist)
    hist = Histogram(*parts[0][0])
    index, inverse = np.unique(np.concatenate([p[1] for p in parts]), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate([p[2] for p in parts]).astype(np.float64)).astype(np.int64)
    if int(index[-1]) >= hist.counts_len:
        raise ValueError("packed histogram has buckets outside its own range")
    cum = np.cumsum(counts)
    total = int(cum[-1])
    out: dict[str, float | int] = {"count": total}
    for p in PERCENTILES:
        target = max(int(min(p, 100.0) * total / 100 + 0.5), 1)
        value = hist.value_from_index(int(index[int(np.searchsorted(cum, target, side="left"))]))
        out[percentile_key(p)] = (hist.highest_equivalent(value) if p else hist.lowest_equivalent(value)) / 1000.0
    out["max"] = hist.highest_equivalent(hist.value_from_index(int(index[-1]))) / 1000.0
    return out


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
