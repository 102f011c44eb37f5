"""A mergeable latency histogram that reads and writes the HdrHistogram V2 wire form.

Why our own: the ``hdrhistogram`` package ships no aarch64 wheel, so ``pip install edgeprobe`` on a
Raspberry Pi or Jetson needed gcc and python3-dev. This module keeps exactly what edgeprobe used from it:
the log-linear bucket layout of HdrHistogram (Gil Tene's design: sub-buckets of 2 * 10**digits values per
power of two, so every recorded value keeps ``digits`` significant decimal digits) and its standard
"V2 compressed" encoding (big-endian header, ZigZag LEB128 counts with zero runs, zlib, base64). Because
the bucket layout and the encoding are the published HdrHistogram ones, histograms already sent by
agents that used ``hdrhistogram`` decode here unchanged, and what this module encodes decodes with any
HdrHistogram implementation (Java, C, Go, Python).

Counts live in one numpy array, so recording a window of samples and merging many windows are vectorised.
Percentile, min, max and mean follow HdrHistogram's definitions (a percentile is the highest value
equivalent to the bucket where the cumulative count reaches ``round(p% of n)``), so figures the collector
reports stay what they were.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

#: HdrHistogram V2 cookies with the word-size nibble (0x10) every V2 encoder sets.
ENCODING_COOKIE = 0x1C849313
COMPRESSION_COOKIE = 0x1C849314
_COOKIE_BASE_MASK = ~0xF0
_V2_ENCODING_BASE = 0x1C849303
_V2_COMPRESSION_BASE = 0x1C849304

#: cookie, payload length, normalizing index offset, significant digits, lowest, highest, int-to-double ratio
_PAYLOAD_HEADER = struct.Struct(">IIIIqqd")
_OUTER_HEADER = struct.Struct(">II")
#: refuse to inflate a hostile payload beyond this (a 3-digit, 1 us .. 1 h histogram encodes in < 220 kB)
_MAX_DECOMPRESSED = 4 * 1024 * 1024
#: nor to allocate more buckets than this for a decoded one (1 us .. 1 h at 3 digits has 23,552)
_MAX_DECODED_BUCKETS = 1 << 20
#: counts_len of each (lowest, highest, digits) decoded so far
_COUNTS_LEN: dict[tuple[int, int, int], int] = {}


class HistogramDecodeError(ValueError):
    """An encoded histogram that is not HdrHistogram V2 compressed base64, or does not fit this layout."""


class Histogram:
    """Counts of integer values in HdrHistogram's log-linear buckets (``digits`` significant digits)."""

    def __init__(self, lowest: int, highest: int, digits: int, max_counts_len: int | None = None) -> None:
        if not 1 <= digits <= 5:
            raise ValueError(f"significant digits must be 1..5, got {digits}")
        if lowest < 1 or highest < 2 * lowest:
            raise ValueError(f"need 1 <= lowest and highest >= 2 * lowest, got {lowest}..{highest}")
        self.lowest = int(lowest)
        self.highest = int(highest)
        self.digits = int(digits)
        self.unit_magnitude = self.lowest.bit_length() - 1  # floor(log2(lowest))
        sub_bucket_count_magnitude = max((2 * 10**self.digits - 1).bit_length(), 1)  # ceil(log2(2 * 10**d))
        self.sub_bucket_half_count_magnitude = max(sub_bucket_count_magnitude - 1, 0)
        self.sub_bucket_count = 1 << (self.sub_bucket_half_count_magnitude + 1)
        self.sub_bucket_half_count = self.sub_bucket_count // 2
        self.sub_bucket_mask = (self.sub_bucket_count - 1) << self.unit_magnitude
        buckets, smallest_untrackable = 1, self.sub_bucket_count << self.unit_magnitude
        while smallest_untrackable <= self.highest:
            smallest_untrackable <<= 1
            buckets += 1
        self.bucket_count = buckets
        self.counts_len = (self.bucket_count + 1) * self.sub_bucket_half_count
        if max_counts_len is not None and self.counts_len > max_counts_len:
            raise ValueError(f"{self.counts_len} buckets is more than {max_counts_len}")
        self.counts = np.zeros(self.counts_len, dtype=np.int64)
        self.total_count = 0

    # --- bucket arithmetic -------------------------------------------------------------------------------

    def _index_of(self, values: np.ndarray) -> np.ndarray:
        """Counts-array index of each value (int64 array, every value in 0 .. 2**53)."""
        # bit_length via frexp: exact for integers below 2**53
        bit_length = np.frexp((values | self.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
        bucket = bit_length - self.unit_magnitude - (self.sub_bucket_half_count_magnitude + 1)
        sub_bucket = values >> (bucket + self.unit_magnitude)
        return ((bucket + 1) << self.sub_bucket_half_count_magnitude) + (sub_bucket - self.sub_bucket_half_count)

    def _bucket_of(self, value: int) -> tuple[int, int]:
        bucket = (value | self.sub_bucket_mask).bit_length() - self.unit_magnitude - (
            self.sub_bucket_half_count_magnitude + 1)
        return bucket, value >> (bucket + self.unit_magnitude)

    def value_from_index(self, index: int) -> int:
        """The lowest value the bucket at ``index`` holds."""
        bucket = (index >> self.sub_bucket_half_count_magnitude) - 1
        sub_bucket = (index & (self.sub_bucket_half_count - 1)) + self.sub_bucket_half_count
        if bucket < 0:
            sub_bucket -= self.sub_bucket_half_count
            bucket = 0
        return sub_bucket << (bucket + self.unit_magnitude)

    def lowest_equivalent(self, value: int) -> int:
        bucket, sub_bucket = self._bucket_of(value)
        return sub_bucket << (bucket + self.unit_magnitude)

    def _range_size(self, value: int) -> int:
        bucket, sub_bucket = self._bucket_of(value)
        if sub_bucket >= self.sub_bucket_count:
            bucket += 1
        return 1 << (self.unit_magnitude + bucket)

    def highest_equivalent(self, value: int) -> int:
        return self.lowest_equivalent(value) + self._range_size(value) - 1

    def median_equivalent(self, value: int) -> int:
        return self.lowest_equivalent(value) + (self._range_size(value) >> 1)

    # --- recording and merging ---------------------------------------------------------------------------

    def record_values(self, values: np.ndarray) -> None:
        """Add integer values (vectorised); a value past the histogram's range is refused."""
        v = np.asarray(values, dtype=np.int64)
        if v.size == 0:
            return
        if int(v.min()) < 0:
            raise ValueError("a histogram records non-negative values only")
        index = self._index_of(v)
        if int(index.max()) >= self.counts_len:
            raise ValueError(f"value {int(v.max())} is beyond this histogram's highest value {self.highest}")
        self.counts += np.bincount(index, minlength=self.counts_len)
        self.total_count += int(v.size)

    def sparse_values(self, values: np.ndarray) -> Sparse:
        """The non-empty buckets ``values`` fill in this layout, as a Sparse, without touching the counts.

        A latency window encodes its ~100 samples once: sorting their bucket indices is cheaper than filling
        (and zeroing) the 23,552-bucket array, and the buckets are the same, so is the encoding
        (``Sparse.encode``). The same checks as :meth:`record_values`.
        """
        v = np.asarray(values, dtype=np.int64)
        if v.size == 0:
            return Sparse(self.lowest, self.highest, self.digits, np.zeros(0, np.int64), np.zeros(0, np.int64))
        if int(v.min()) < 0:
            raise ValueError("a histogram records non-negative values only")
        index = np.sort(self._index_of(v))
        if int(index[-1]) >= self.counts_len:
            raise ValueError(f"value {int(v.max())} is beyond this histogram's highest value {self.highest}")
        first = np.flatnonzero(np.diff(index, prepend=-1))  # where each run of one bucket starts
        counts = np.diff(first, append=index.size)
        return Sparse(self.lowest, self.highest, self.digits, index[first], counts)

    def record_value(self, value: int, count: int = 1) -> None:
        self.record_values(np.full(count, value, dtype=np.int64))

    def add(self, other: Histogram) -> None:
        """Add another histogram's counts (re-bucketed by value when its layout differs)."""
        if other.layout() == self.layout():
            self.counts += other.counts
            self.total_count += other.total_count
            return
        nonzero = np.flatnonzero(other.counts != 0)
        values = np.array([other.value_from_index(int(i)) for i in nonzero], dtype=np.int64)
        self.record_values(np.repeat(values, other.counts[nonzero]))

    def layout(self) -> tuple[int, int, int]:
        return (self.unit_magnitude, self.sub_bucket_count, self.bucket_count)

    def decode_and_add(self, encoded: str | bytes) -> None:
        self.add(decode(encoded))

    # --- queries (HdrHistogram's definitions) ------------------------------------------------------------

    def get_total_count(self) -> int:
        return self.total_count

    def get_value_at_percentile(self, percentile: float) -> int:
        if self.total_count == 0:
            return 0
        target = max(int(min(percentile, 100.0) * self.total_count / 100 + 0.5), 1)
        index = int(np.searchsorted(np.cumsum(self.counts), target, side="left"))
        value = self.value_from_index(index)
        return self.highest_equivalent(value) if percentile else self.lowest_equivalent(value)

    def get_max_value(self) -> int:
        nonzero = np.flatnonzero(self.counts != 0)
        return self.highest_equivalent(self.value_from_index(int(nonzero[-1]))) if nonzero.size else 0

    def get_min_value(self) -> int:
        nonzero = np.flatnonzero(self.counts != 0)
        return self.value_from_index(int(nonzero[0])) if nonzero.size else 0

    def get_mean_value(self) -> float:
        if self.total_count == 0:
            return 0.0
        nonzero = np.flatnonzero(self.counts != 0)
        total = sum(int(self.counts[i]) * self.median_equivalent(self.value_from_index(int(i))) for i in nonzero)
        return total / self.total_count

    # --- wire form ---------------------------------------------------------------------------------------

    def encode(self) -> bytes:
        """HdrHistogram V2 compressed, base64 (ASCII bytes); counts up to the highest non-empty bucket."""
        nonzero = np.flatnonzero(self.counts != 0)
        return _encode(self.lowest, self.highest, self.digits, nonzero, self.counts[nonzero])


def _encode(lowest: int, highest: int, digits: int, buckets: np.ndarray, counts: np.ndarray) -> bytes:
    """The V2 compressed base64 form of the non-empty ``buckets`` (ascending) and their ``counts``: the counts
    array up to the highest non-empty bucket, as HdrHistogram writes it."""
    body = _encode_pairs(buckets, counts)
    header = _PAYLOAD_HEADER.pack(ENCODING_COOKIE, len(body), 0, digits, lowest, highest, 1.0)
    compressed = zlib.compress(header + body)
    return base64.b64encode(_OUTER_HEADER.pack(COMPRESSION_COOKIE, len(compressed)) + compressed)


def _zigzag_leb128(value: int, out: bytearray) -> None:
    """HdrHistogram's ZigZag LEB128: 7 bits a byte for 8 bytes, then the last 8 bits whole."""
    n = ((value << 1) ^ (value >> 63)) & 0xFFFF_FFFF_FFFF_FFFF
    for _ in range(8):
        if n < 0x80:
            out.append(n)
            return
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n & 0xFF)


def _encode_pairs(buckets: np.ndarray, counts: np.ndarray) -> bytes:
    """The counts body from the non-empty buckets alone (ascending indices, counts > 0): each count as ZigZag
    LEB128, each run of empty buckets as its negative length (a lone zero too, as hdrhistogram's encoder wrote
    it; decoders also read a plain 0 as one empty bucket).

    Walks only the non-empty buckets: a window of 100 samples touches ~100 of the 23,552. A number below 64
    (a count, or a run of up to 64 empty buckets) is one byte, written in place: most of a window's numbers.
    """
    out = bytearray()
    append = out.append
    previous = -1
    for index, count in zip(buckets.tolist(), counts.tolist(), strict=True):
        gap = index - previous - 1
        if gap:  # ZigZag of -gap is 2 * gap - 1
            if gap <= 64:
                append(2 * gap - 1)
            else:
                _zigzag_leb128(-gap, out)
        if 0 <= count < 64:  # ZigZag of count is 2 * count
            append(2 * count)
        else:
            _zigzag_leb128(count, out)
        previous = index
    return bytes(out)


def _decode_counts(body: bytes, counts_len: int) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices, counts) of the non-empty buckets a V2 counts body holds, vectorised.

    The collector decodes every latency window of every device: the per-byte Python loop this replaced was
    most of its CPU per message. Each number ends at its first byte below 0x80, so the numbers are found by
    one comparison and summed 7 bits a byte with ``reduceat``; a body holding a 9-byte number (a count or a
    run of 2**55 or more, which only a hostile sender writes) is read by the plain loop instead. Errors are
    the loop's, checked in the order it would meet them.
    """
    raw = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(raw < 0x80)
    starts = np.concatenate(([0], ends[:-1] + 1)) if ends.size else ends
    tail = raw.size - (int(ends[-1]) + 1 if ends.size else 0)
    if tail > 8 or (ends.size and int((ends - starts).max()) >= 8):
        return _decode_counts_loop(body, counts_len)
    position = np.arange(raw.size - tail, dtype=np.uint64) - np.repeat(starts, ends - starts + 1).astype(np.uint64)
    n = np.add.reduceat((raw[:raw.size - tail] & 0x7F).astype(np.uint64) << (np.uint64(7) * position), starts) \
        if ends.size else np.zeros(0, dtype=np.uint64)
    odd = (n & np.uint64(1)).astype(bool)  # ZigZag: odd numbers are negative, a run of that many empty buckets
    # each step at most counts_len + 1 (past the end is past the end), so the running index cannot overflow
    step = np.where(odd, np.minimum((n >> np.uint64(1)) + np.uint64(1), np.uint64(counts_len + 1)), np.uint64(1))
    index = np.cumsum(step.astype(np.int64)) - step.astype(np.int64)
    index, counts = index[~odd], (n[~odd] >> np.uint64(1)).astype(np.int64)
    if index.size and int(index[-1]) >= counts_len:
        raise HistogramDecodeError("encoded histogram has more buckets than its own range allows")
    if tail:
        raise HistogramDecodeError("encoded histogram's counts end inside a number")
    keep = counts != 0  # a lone zero is an empty bucket, as in the loop
    return index[keep], counts[keep]


def _decode_counts_loop(body: bytes, counts_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The counts body read number by number: the reference form, and the reader of 9-byte numbers."""
    indices: list[int] = []
    counts: list[int] = []
    index, pos, end = 0, 0, len(body)
    while pos < end:
        n, shift = 0, 0
        for k in range(9):
            if pos >= end:
                raise HistogramDecodeError("encoded histogram's counts end inside a number")
            b = body[pos]
            pos += 1
            if k == 8:
                n |= b << 56
                break
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        value = (n >> 1) ^ -(n & 1)
        if value < 0:
            index += -value
            continue
        if index >= counts_len:
            raise HistogramDecodeError("encoded histogram has more buckets than its own range allows")
        if value:
            indices.append(index)
            counts.append(value)
        index += 1
    return np.asarray(indices, dtype=np.int64), np.asarray(counts, dtype=np.int64)


class Sparse(NamedTuple):
    """A decoded histogram as its layout and non-empty buckets only (ascending indices, counts > 0).

    What the collector merges: building the full 23,552-bucket array of every window it decodes (a fresh
    188 kB allocation each, page faults and all) cost more than the decoding itself.
    """

    lowest: int
    highest: int
    digits: int
    buckets: np.ndarray
    counts: np.ndarray

    def encode(self) -> bytes:
        """The same bytes as the full histogram's :meth:`Histogram.encode`."""
        return _encode(self.lowest, self.highest, self.digits, self.buckets, self.counts)

    def histogram(self) -> Histogram:
        hist = Histogram(self.lowest, self.highest, self.digits)
        if self.buckets.size and int(self.buckets[-1]) >= hist.counts_len:
            raise ValueError("histogram has buckets outside its own range")
        hist.counts[self.buckets] = self.counts
        hist.total_count = sum(self.counts.tolist())  # Python ints: no int64 overflow in the total
        return hist


def sparse_of(hist: Histogram) -> Sparse:
    index = np.flatnonzero(hist.counts != 0)
    return Sparse(hist.lowest, hist.highest, hist.digits, index, hist.counts[index])


def decode(encoded: str | bytes) -> Histogram:
    """A histogram from its HdrHistogram V2 compressed base64 form (as ``Histogram.encode`` or hdrhistogram
    wrote it); anything else raises ``HistogramDecodeError`` saying what is wrong."""
    return decode_sparse(encoded).histogram()


def decode_sparse(encoded: str | bytes) -> Sparse:
    """``decode``, keeping only the non-empty buckets (what merging needs); the same checks and errors."""
    lowest, highest, digits, counts_len, body = payload_of(encoded)
    return Sparse(lowest, highest, digits, *_decode_counts(body, counts_len))


def payload_of(encoded: str | bytes) -> tuple[int, int, int, int, bytes]:
    """(lowest, highest, digits, counts_len, counts body) of an encoded histogram, every header checked."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise HistogramDecodeError(f"encoded histogram is not base64: {exc}") from None
    if len(raw) < _OUTER_HEADER.size:
        raise HistogramDecodeError("encoded histogram is too short for its header")
    cookie, length = _OUTER_HEADER.unpack_from(raw)
    if cookie & _COOKIE_BASE_MASK != _V2_COMPRESSION_BASE:
        raise HistogramDecodeError(f"encoded histogram has cookie {cookie:#x}, not HdrHistogram V2 compressed")
    if length != len(raw) - _OUTER_HEADER.size:
        raise HistogramDecodeError(f"encoded histogram says {length} bytes but carries {len(raw) - 8}")
    inflater = zlib.decompressobj()
    try:
        payload = inflater.decompress(raw[_OUTER_HEADER.size:], _MAX_DECOMPRESSED)
    except zlib.error as exc:
        raise HistogramDecodeError(f"encoded histogram does not inflate: {exc}") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise HistogramDecodeError("encoded histogram inflates beyond any histogram's size")
    if len(payload) < _PAYLOAD_HEADER.size:
        raise HistogramDecodeError("encoded histogram's payload is too short for its header")
    cookie, body_len, _offset, digits, lowest, highest, _ratio = _PAYLOAD_HEADER.unpack_from(payload)
    if cookie & _COOKIE_BASE_MASK != _V2_ENCODING_BASE:
        raise HistogramDecodeError(f"encoded histogram's payload has cookie {cookie:#x}, not HdrHistogram V2")
    body = payload[_PAYLOAD_HEADER.size:]
    if body_len != len(body):
        raise HistogramDecodeError(f"encoded histogram's payload says {body_len} bytes but carries {len(body)}")
    try:
        counts_len = layout_counts_len(lowest, highest, digits)
    except ValueError as exc:
        raise HistogramDecodeError(f"encoded histogram's range is invalid: {exc}") from None
    return lowest, highest, digits, counts_len, body


def layout_counts_len(lowest: int, highest: int, digits: int) -> int:
    """How many buckets a histogram of this layout has (ValueError past ``_MAX_DECODED_BUCKETS``), without
    allocating them: remembered for the few layouts seen, since the collector asks for every window."""
    layout = (lowest, highest, digits)
    counts_len = _COUNTS_LEN.get(layout)
    if counts_len is None:
        counts_len = Histogram(lowest, highest, digits, max_counts_len=_MAX_DECODED_BUCKETS).counts_len
        if len(_COUNTS_LEN) < 64:  # layouts seen in practice are one or two; a hostile sender fills no memory
            _COUNTS_LEN[layout] = counts_len
    return counts_len


def merge(encoded: Iterable[str | bytes], into: Histogram) -> Histogram:
    """Add every encoded histogram (empty strings skipped) into ``into`` and return it."""
    for enc in encoded:
        if enc:
            part = decode_sparse(enc)
            if (part.lowest, part.highest, part.digits) == (into.lowest, into.highest, into.digits):
                into.counts[part.buckets] += part.counts  # indices are distinct within one histogram
                into.total_count += sum(part.counts.tolist())
            else:
                into.add(part.histogram())
    return into
