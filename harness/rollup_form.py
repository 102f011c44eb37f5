"""The collector's stored form of an hourly rollup histogram, and merging a batch of windows into rollups.

Agents send HdrHistogram V2 (``harness/hdr``), which is compact on the wire but costs zlib and LEB128
work to read. The collector rewrites one rollup per device, hour and stage in every batch it commits, so
it keeps rollups in a form numpy reads and writes in a few calls: the layout and the non-empty buckets
(index gaps and counts, each in the fewest bytes that hold it). Window summaries and what agents measure
live in ``harness/latency``; this module is only the collector's side.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

from edgeprobe.harness.hdr import Histogram, Sparse, layout_counts_len, sparse_of
from edgeprobe.harness.hdr_merge import Grouped, merge_grouped, merge_groups
from edgeprobe.harness.latency import PERCENTILES, histogram_summary_without_mean, new_histogram, percentile_key

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
    (``hdr_merge.merge_grouped``) and packed in a few numpy calls for the whole batch, only non-empty buckets
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
