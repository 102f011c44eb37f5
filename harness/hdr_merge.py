"""Merging many HdrHistograms at once, as the collector does for every batch it commits.

``harness/hdr`` is one histogram: its bucket layout, the V2 wire form, one decode and one merge. A batch
from a large fleet touches thousands of hourly rollups with a few windows each, and one numpy call per
rollup was most of the collector's CPU, so this module lays many sparse histograms end to end
(``Grouped``) and merges all of a batch's windows into them in one vectorised pass, with the rollup by
rollup merge (``merge_sparse``) as the reference it must equal and the fallback for what the pass refuses.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from edgeprobe.harness.hdr import (
    Histogram,
    HistogramDecodeError,
    Sparse,
    decode_sparse,
    layout_counts_len,
    payload_of,
    sparse_of,
)


def sum_sparse(parts: Sequence[Sparse]) -> Sparse:
    """The bucket-by-bucket sum of sparse histograms of one layout (int64 counts, as ``Histogram.add``)."""
    layout = {(p.lowest, p.highest, p.digits) for p in parts}
    if len(layout) != 1:
        raise ValueError(f"sum_sparse needs one layout, got {sorted(layout)}")
    lowest, highest, digits = layout.pop()
    if len(parts) == 1:
        return parts[0]
    index = np.concatenate([p.buckets for p in parts])
    counts = np.concatenate([p.counts for p in parts])
    order = np.argsort(index, kind="stable")
    index, counts = index[order], counts[order]
    if not index.size:
        return Sparse(lowest, highest, digits, index, counts)
    first = np.flatnonzero(np.concatenate(([True], index[1:] != index[:-1])))
    summed = np.add.reduceat(counts, first)
    keep = summed != 0  # only int64 wrap-around can make a sum of positive counts 0
    return Sparse(lowest, highest, digits, index[first][keep], summed[keep])


def merge_sparse(encoded: Iterable[str | bytes], into: Sparse) -> Sparse:
    """``merge`` on sparse histograms: every encoded one (empty strings skipped) added into ``into``'s layout.

    Windows in ``into``'s layout (every edgeprobe agent's) are summed bucket by bucket without ever building
    a full counts array; one in another layout is re-bucketed by value through ``Histogram.add``.
    """
    layout = (into.lowest, into.highest, into.digits)
    parts = [into]
    for enc in encoded:
        if enc:
            part = decode_sparse(enc)
            if (part.lowest, part.highest, part.digits) != layout:
                rebucketed = Histogram(*layout)
                rebucketed.add(part.histogram())
                part = sparse_of(rebucketed)
            parts.append(part)
    return sum_sparse(parts)



class Grouped(NamedTuple):
    """Many sparse histograms of one layout laid end to end: group ``g`` holds entries
    ``starts[g]:starts[g + 1]`` of ``buckets`` (ascending within a group) and ``counts`` (all > 0).

    How the collector holds one batch's rollups: a handful of numpy calls cover all of them, where one
    ``Sparse`` per rollup cost a dozen calls each (a batch from a large fleet touches thousands of rollups,
    each once).
    """

    lowest: int
    highest: int
    digits: int
    starts: np.ndarray
    buckets: np.ndarray
    counts: np.ndarray

    @classmethod
    def of(cls, parts: Sequence[Sparse], layout: tuple[int, int, int]) -> Grouped:
        sizes = np.fromiter((p.buckets.size for p in parts), dtype=np.int64, count=len(parts))
        empty = np.zeros(0, dtype=np.int64)
        return cls(*layout, np.concatenate(([0], np.cumsum(sizes))),
                   np.concatenate([empty, *(p.buckets for p in parts)]),
                   np.concatenate([empty, *(p.counts for p in parts)]))

    def parts(self) -> list[Sparse]:
        bounds = self.starts.tolist()
        return [Sparse(self.lowest, self.highest, self.digits, self.buckets[a:b], self.counts[a:b])
                for a, b in itertools.pairwise(bounds)]


def merge_groups(groups: Sequence[tuple[Sparse, Sequence[str | bytes]]]) -> list[Sparse]:
    """``merge_sparse(windows, into)`` for every (into, windows) pair, in one vectorised pass over them all
    (``merge_grouped``), or pair by pair where that pass does not apply; the results are the same."""
    if groups:
        first = groups[0][0]
        layout = (first.lowest, first.highest, first.digits)
        if all((into.lowest, into.highest, into.digits) == layout for into, _ in groups):
            merged = merge_grouped(Grouped.of([into for into, _ in groups], layout), [w for _, w in groups])
            if merged is not None:
                return merged.parts()
    return [merge_sparse(windows, into) for into, windows in groups]


def merge_grouped(into: Grouped, windows: Sequence[Sequence[str | bytes]]) -> Grouped | None:
    """Every group's windows added to it, all groups in one vectorised pass; None where the pass does not
    apply (a window in another layout, a 9-byte number, any malformed window): then ``merge_sparse`` pair
    by pair gives the same results and raises the first error in order, as it always did.

    The counts bodies of all windows are decoded together (numbers end at their first byte below 0x80;
    7 bits a byte summed by ``reduceat``), the windows' few buckets are sorted and summed, then merged into
    the groups' already-sorted buckets by binary search: no sort of the stored rollups.
    """
    layout = (into.lowest, into.highest, into.digits)
    counts_len = layout_counts_len(*layout)
    bodies: list[bytes] = []
    body_group: list[int] = []
    try:
        for g, encs in enumerate(windows):
            for enc in encs:
                if enc:
                    lowest, highest, digits, _, body = payload_of(enc)
                    if (lowest, highest, digits) != layout:
                        return None
                    bodies.append(body)
                    body_group.append(g)
    except HistogramDecodeError:
        return None
    raw = np.frombuffer(b"".join(bodies), dtype=np.uint8)
    lengths = np.fromiter(map(len, bodies), dtype=np.int64, count=len(bodies))
    body_start = np.cumsum(lengths) - lengths
    if raw.size and ((lengths > 0) & (raw[np.maximum(body_start + lengths - 1, 0)] >= 0x80)).any():
        return None  # a body ending inside a number
    ends = np.flatnonzero(raw < 0x80)  # so every number ends inside its own body
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    if ends.size and int((ends - starts).max()) >= 8:
        return None  # a 9-byte number
    keys = np.zeros(0, dtype=np.int64)
    add = np.zeros(0, dtype=np.int64)
    if ends.size:
        position = (np.arange(raw.size, dtype=np.int64) - np.repeat(starts, ends - starts + 1)).astype(np.uint64)
        n = np.add.reduceat((raw & 0x7F).astype(np.uint64) << (np.uint64(7) * position), starts)
        odd = (n & np.uint64(1)).astype(bool)  # ZigZag: odd numbers are runs of empty buckets
        # a run's step capped at counts_len + 1 (past the end is past the end): the running index cannot overflow
        step = np.where(odd, np.minimum((n >> np.uint64(1)) + np.uint64(1), np.uint64(counts_len + 1)),
                        np.uint64(1)).astype(np.int64)
        before = np.cumsum(step) - step
        number_body = np.searchsorted(body_start, starts, side="right") - 1
        first_number = np.minimum(np.searchsorted(starts, body_start), starts.size - 1)
        index = (before - before[first_number][number_body])[~odd]  # each body's index starts at 0
        if index.size and int(index.max()) >= counts_len:
            return None  # past the range
        keys = np.asarray(body_group, dtype=np.int64)[number_body[~odd]] * counts_len + index
        add = (n[~odd] >> np.uint64(1)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        keys, add = keys[order], add[order]
        if keys.size:
            head = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
            keys, add = keys[head], np.add.reduceat(add, head)
    groups = into.starts.size - 1
    stored = np.repeat(np.arange(groups, dtype=np.int64), np.diff(into.starts)) * counts_len + into.buckets
    counts = into.counts.copy()
    at = np.searchsorted(stored, keys)
    found = at < stored.size
    found[found] = stored[at[found]] == keys[found]
    counts[at[found]] += add[found]  # keys are distinct, so are their places
    stored = np.insert(stored, at[~found], keys[~found])
    counts = np.insert(counts, at[~found], add[~found])
    nonzero = counts != 0  # lone zeros, and int64 wrap-around as in Histogram.add
    stored, counts = stored[nonzero], counts[nonzero]
    group_of = stored // counts_len
    return Grouped(*layout, np.searchsorted(group_of, np.arange(groups + 1)), stored - group_of * counts_len,
                   counts)
