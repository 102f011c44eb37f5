"""edgeprobe's own HdrHistogram: the wire form old agents sent still decodes, the new one is the same form."""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness import hdr, hdr_merge, schema
from edgeprobe.harness.latency import _to_us, histogram_of_ns, histogram_summary, merge_histograms, new_histogram
from edgeprobe.harness.rollup_form import merge_into_packed, merge_many_into_packed, pack_histogram, unpack_histogram

# Written by hdrhistogram 0.10.8 (the dependency edgeprobe used before its own histogram): HdrHistogram(1,
# 3_600_000_000, 3) recording 200 lognormal(9, 0.6) values (numpy default_rng(7), rounded, clipped to
# 1..3.6e9) and then 1, 1, 2047, 2048, 3_599_999_999, 7_654_321, one record_value each.
OLD_WIRE = (
    "HISTFAAAASx4nC2PQUoDQRBFp153GIYwBAlhCGMYggSRICGIBBERERFXrkRERFy4EPEIKgHBlYIEb+AFPIeIO7deQXDhUn93Ms1U9a9f"
    "/X/V/N2kmST2mEw/N8sWwufkJdn8nhX8b8mfgw/jllVq3BvHjI2CM8YwR8azMTEcu/TZIVAtTmjSo821smPbF3rcELfOInX1NVSvvBIb"
    "HFJKeJmclKAzkGZNKk51Wa+ge5vCB1aGU++MkWxYQtgY+gEdWbigmKvQoisfi+19/TmV5ilRcqKknyHRPJ56jB21RYs8zmzqCbBS7KmF"
    "PRGlwEigpoZU6ErINMSCcsZ+5Av03gTDCfumUfpUsdBupTZdo+szXsN4B1wyVD4i9edSLdiSnnEhlzfjx/Pk+brh/cH4B+fVJRE="
)
#: what hdrhistogram 0.10.8 answered for it: count, p50/p90/p95/p99/p99.9, max, mean, min (microseconds)
OLD_FIGURES = (206, [7439, 15239, 18319, 31167, 3600809983], 3600809983, 17520065.86893204, 1)
OLD_EMPTY = "HISTFAAAABx4nJNpmSzMgADMUJoRRFybvITB/gNEAABQ2gSH"


def _old_values() -> list[int]:
    rng = np.random.default_rng(7)
    body = np.clip(np.rint(rng.lognormal(9, 0.6, 200)), 1, 3_600_000_000).astype(np.int64).tolist()
    return [*body, 1, 1, 2047, 2048, 3_599_999_999, 7_654_321]


def test_what_hdrhistogram_sent_decodes_to_the_same_figures() -> None:
    h = hdr.decode(OLD_WIRE)
    count, pcts, mx, mean, mn = OLD_FIGURES
    assert h.get_total_count() == count
    assert [h.get_value_at_percentile(p) for p in (50, 90, 95, 99, 99.9)] == pcts
    assert (h.get_max_value(), h.get_min_value()) == (mx, mn)
    assert h.get_mean_value() == pytest.approx(mean, rel=1e-12)
    assert hdr.decode(OLD_EMPTY).get_total_count() == 0


def test_the_same_values_encode_to_the_same_bytes_hdrhistogram_wrote() -> None:
    fresh = new_histogram()
    fresh.record_values(np.asarray(_old_values()))
    assert fresh.encode().decode("ascii") == OLD_WIRE  # the wire form did not change
    assert new_histogram().encode().decode("ascii") == OLD_EMPTY
    assert (hdr.decode(OLD_WIRE).counts == fresh.counts).all()


def test_a_stored_latency_message_from_an_old_agent_still_merges() -> None:
    stage = {"count": 206, "p50": 7.4, "p90": 15.2, "p95": 18.3, "p99": 31.2, "max": 3600.8, "mean": 17.5,
             "stdev": 1.0, "hdr": OLD_WIRE}
    body = {"window": {"start_ts": "2026-01-01T00:00:00Z", "end_ts": "2026-01-01T00:00:01Z", "first_frame": 0,
                       "last_frame": 205, "frames": 206}, "warmup_runs": 0, "stages": {"e2e": stage}}
    msg = schema.make_envelope(kind="latency", device_id="d", fleet="f", session_id="s", seq=0, body=body,
                               model_sha256="a" * 64, config_sha256="b" * 64)
    _, typed = schema.decode_message(schema.encode(msg))
    assert isinstance(typed, schema.LatencyBody)
    new_window = histogram_of_ns(np.asarray(_old_values()) * 1000).encode().decode("ascii")
    merged = histogram_summary(merge_histograms([typed.stages["e2e"].hdr, new_window]))
    assert merged["count"] == 412 and merged["p50"] == 7.439  # old and new windows merge as one distribution


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**11), max_size=400))
def test_vectorised_fill_equals_recording_each_sample(samples_ns: list[int]) -> None:
    one_by_one = new_histogram()
    for v in samples_ns:
        one_by_one.record_value(_to_us(v))
    fast = histogram_of_ns(np.asarray(samples_ns, dtype=np.int64))
    assert fast.get_total_count() == one_by_one.get_total_count() == len(samples_ns)
    assert fast.encode() == one_by_one.encode()
    assert (fast.get_min_value(), fast.get_max_value()) == (one_by_one.get_min_value(), one_by_one.get_max_value())


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.integers(min_value=0, max_value=23_551), st.integers(min_value=1, max_value=2**56),
                       max_size=60))
def test_any_counts_round_trip_through_the_wire_form(cells: dict[int, int]) -> None:
    """Counts from 2**55 on need the 9-byte varint; runs of empty buckets collapse to one number."""
    h = new_histogram()
    for i, c in cells.items():
        h.counts[i] = c
    h.total_count = sum(cells.values())
    back = hdr.decode(h.encode())
    assert (back.counts == h.counts).all() and back.get_total_count() == h.get_total_count()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=3_600_000_000), min_size=1, max_size=300))
def test_hdrhistogram_reads_what_we_write_and_agrees(values: list[int]) -> None:
    """Cross-check against the hdrhistogram package where it installs (x86_64 dev installs: it has no
    aarch64 wheel), a reference implementation sharing no code with ours."""
    hdrh = pytest.importorskip("hdrh.histogram", reason="hdrhistogram is not installed (no aarch64 wheel)")
    ref = hdrh.HdrHistogram(1, 3_600_000_000, 3)
    for v in values:
        ref.record_value(v)
    ours = new_histogram()
    ours.record_values(np.asarray(values))
    assert ours.encode() == ref.encode()
    theirs = hdrh.HdrHistogram.decode(ours.encode())
    for p in (0.0, 50.0, 90.0, 99.0, 99.9, 100.0):
        assert ours.get_value_at_percentile(p) == theirs.get_value_at_percentile(p) == ref.get_value_at_percentile(p)
    assert ours.get_max_value() == ref.get_max_value()
    assert ours.get_mean_value() == pytest.approx(ref.get_mean_value(), rel=1e-12)


def test_a_different_layout_is_merged_by_value() -> None:
    coarse = hdr.Histogram(1, 10**6, 2)
    coarse.record_values(np.asarray([5, 5, 900, 123_456]))
    merged = merge_histograms([coarse.encode().decode("ascii")])
    assert merged.get_total_count() == 4 and merged.get_value_at_percentile(50) == 5


def _wire(inner: bytes, cookie: int = hdr.COMPRESSION_COOKIE) -> bytes:
    packed = zlib.compress(inner)
    return base64.b64encode(struct.pack(">II", cookie, len(packed)) + packed)


def _payload(body: bytes, *, cookie: int = hdr.ENCODING_COOKIE, highest: int = 3_600_000_000, digits: int = 3,
             length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return struct.pack(">IIIIqqd", cookie, n, 0, digits, 1, highest, 1.0) + body


@pytest.mark.parametrize(
    ("encoded", "reason"),
    [
        (b"not base64 at all!", "not base64"),
        (base64.b64encode(b"abc"), "too short"),
        (_wire(_payload(b"\x02"), cookie=0x1C849302), "not HdrHistogram V2 compressed"),
        (base64.b64encode(struct.pack(">II", hdr.COMPRESSION_COOKIE, 99) + b"xx"), "says 99 bytes"),
        (base64.b64encode(struct.pack(">II", hdr.COMPRESSION_COOKIE, 4) + b"junk"), "does not inflate"),
        (_wire(b"\x00" * (5 * 1024 * 1024)), "beyond any histogram"),
        (_wire(b"short"), "too short for its header"),
        (_wire(_payload(b"\x02", cookie=0x1C849301)), "not HdrHistogram V2"),
        (_wire(_payload(b"\x02", length=7)), "says 7 bytes"),
        (_wire(_payload(b"\x02", digits=9)), "range is invalid"),
        (_wire(_payload(b"\x02", highest=2**62, digits=5)), "range is invalid"),
        (_wire(_payload(b"\x80")), "end inside a number"),
        (_wire(_payload(b"\xff\xef\x02" + b"\x02")), "more buckets"),  # skip 23,552 empty buckets, then a count
    ],
)
def test_malformed_histograms_are_refused_with_a_reason(encoded: bytes, reason: str) -> None:
    with pytest.raises(hdr.HistogramDecodeError, match=reason):
        hdr.decode(encoded)
    with pytest.raises(ValueError, match=reason):  # what the collector's queries see
        merge_histograms([encoded.decode("latin-1")])


def test_recording_outside_the_range_is_refused() -> None:
    h = new_histogram()
    with pytest.raises(ValueError, match="non-negative"):
        h.record_values(np.asarray([-1]))
    with pytest.raises(ValueError, match="beyond"):
        h.record_values(np.asarray([2**45]))
    assert h.get_total_count() == 0 and h.encode().decode("ascii") == OLD_EMPTY


def _decoded_or_error(decode: object, body: bytes) -> tuple[list[int], list[int]] | str:
    try:
        index, counts = decode(body, 23_552)  # type: ignore[operator]
    except hdr.HistogramDecodeError as exc:
        return str(exc)
    return index.tolist(), counts.tolist()


_NUMBER = st.one_of(st.integers(min_value=-30_000, max_value=2**20),
                    st.integers(min_value=-(2**63), max_value=2**63 - 1))


def _varints(values: list[int]) -> bytes:
    out = bytearray()
    for v in values:
        hdr._zigzag_leb128(v, out)
    return bytes(out)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=64), st.lists(_NUMBER, max_size=80).map(_varints),
                 st.tuples(st.lists(_NUMBER, max_size=20).map(_varints), st.binary(max_size=9)).map(b"".join)))
def test_vectorised_counts_decoding_reads_every_body_as_the_loop_does(body: bytes) -> None:
    """Any bytes at all (hostile bodies, 9-byte numbers, runs past the end, numbers cut short): the same
    buckets and counts as the number-by-number reference, or the same error."""
    assert _decoded_or_error(hdr._decode_counts, body) == _decoded_or_error(hdr._decode_counts_loop, body)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(st.integers(min_value=0, max_value=10**10), max_size=60), max_size=6),
       st.lists(st.integers(min_value=0, max_value=10**10), max_size=60))
def test_the_sparse_rollup_merge_packs_what_the_full_merge_packs(windows: list[list[int]], earlier: list[int]) -> None:
    """The collector's hour merge (sparse) against merging full histograms, byte for byte, starting from
    no rollup and from a stored one."""
    encoded = [histogram_of_ns(np.asarray(w, dtype=np.int64)).encode().decode("ascii") if w else "" for w in windows]
    stored = pack_histogram(histogram_of_ns(np.asarray(earlier, dtype=np.int64)))
    assert merge_into_packed(None, encoded) == pack_histogram(merge_histograms(encoded))
    full = merge_histograms(encoded)
    full.add(unpack_histogram(stored))
    assert merge_into_packed(stored, encoded) == pack_histogram(full)
    coarse = hdr.Histogram(1, 10**6, 2)  # a window in another layout is re-bucketed by value, as before
    coarse.record_values(np.asarray([5, 900, 123_456]))
    mixed = [*encoded, coarse.encode().decode("ascii")]
    assert merge_into_packed(stored, mixed) == pack_histogram(hdr.merge(mixed, unpack_histogram(stored)))


def _sparse_lists(parts: list[hdr.Sparse]) -> list[tuple[int, int, int, list[int], list[int]]]:
    return [(p.lowest, p.highest, p.digits, p.buckets.tolist(), p.counts.tolist()) for p in parts]


_WINDOW = st.one_of(
    st.lists(st.integers(min_value=0, max_value=10**10), max_size=40).map(
        lambda w: histogram_of_ns(np.asarray(w, dtype=np.int64)).encode().decode("ascii") if w else ""),
    st.sampled_from([OLD_WIRE, OLD_EMPTY]),
    st.just("lone zeros").map(lambda _: _wire(_payload(b"\x00\x04\x00\x01\x02")).decode("ascii")),  # 0, 2, 0, run, 1
    st.dictionaries(st.integers(min_value=0, max_value=23_551), st.integers(min_value=1, max_value=2**58),
                    max_size=5).map(lambda cells: _hist_of_cells(cells).encode().decode("ascii")),
)


def _hist_of_cells(cells: dict[int, int]) -> hdr.Histogram:
    h = new_histogram()
    for i, c in cells.items():
        h.counts[i] = c
    return h


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(min_value=0, max_value=10**9), max_size=30),
                          st.lists(_WINDOW, max_size=4)), max_size=8),
       st.sampled_from([None, "coarse", "malformed"]))
def test_a_whole_batch_merged_at_once_equals_merging_each_rollup(groups: list[tuple[list[int], list[str]]],
                                                                  odd_one: str | None) -> None:
    """The collector's one-pass merge of a batch against rollup-by-rollup merging: the same buckets and
    counts (empty windows, old agents' windows, 9-byte counts, a window in another layout), or the same
    error for a malformed window."""
    pairs = [(hdr.sparse_of(histogram_of_ns(np.asarray(s, dtype=np.int64))), list(w)) for s, w in groups]
    if odd_one and pairs:
        coarse = hdr.Histogram(1, 10**6, 2)
        coarse.record_values(np.asarray([5, 900]))
        odd = coarse.encode().decode("ascii") if odd_one == "coarse" else _wire(_payload(b"\x80")).decode("ascii")
        pairs[-1][1].append(odd)
    try:
        expected: object = _sparse_lists([hdr_merge.merge_sparse(w, into) for into, w in pairs])
    except hdr.HistogramDecodeError as exc:
        expected = str(exc)
    try:
        got: object = _sparse_lists(hdr_merge.merge_groups(pairs))
    except hdr.HistogramDecodeError as exc:
        got = str(exc)
    assert got == expected


def _eph1(hist: hdr.Histogram) -> bytes:
    """The rollup form collectors wrote before EPH2 (zlib'd 2-byte gaps and 8-byte counts)."""
    index = np.flatnonzero(hist.counts != 0)
    header = struct.pack("<4sqqBI", b"EPH1", hist.lowest, hist.highest, hist.digits, index.size)
    gaps = np.diff(index, prepend=0).astype("<u2").tobytes()
    return zlib.compress(header + gaps + hist.counts[index].astype("<u8").tobytes(), 1)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.integers(min_value=0, max_value=23_551),
                       st.one_of(st.integers(min_value=1, max_value=300), st.integers(min_value=1, max_value=2**62)),
                       max_size=60))
def test_rollups_pack_in_the_fewest_bytes_and_old_rollups_still_read(cells: dict[int, int]) -> None:
    h = _hist_of_cells(cells)
    packed = pack_histogram(h)
    assert (unpack_histogram(packed).counts == h.counts).all()
    assert (unpack_histogram(_eph1(h)).counts == h.counts).all()  # what older collectors stored
    widest = max(cells.values(), default=0)
    assert len(packed) <= 30 + len(cells) * (2 + (1 if widest < 256 else 2 if widest < 65536 else 8))
    window = histogram_of_ns(np.asarray([1_000_000, 2_000_000])).encode().decode("ascii")
    assert merge_into_packed(_eph1(h), [window]) == merge_into_packed(packed, [window])


@pytest.mark.parametrize("blob", [b"EPH2" + b"\x00" * 10, pack_histogram(new_histogram()) + b"\x00", b"junk"])
def test_a_damaged_rollup_is_refused_with_a_reason(blob: bytes) -> None:
    with pytest.raises(ValueError, match=r"size does not match|does not inflate"):
        unpack_histogram(blob)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.none(), st.dictionaries(st.integers(min_value=0, max_value=23_551),
                                                                 st.integers(min_value=1, max_value=2**40),
                                                                 max_size=30)),
                          st.booleans(),
                          st.lists(st.lists(st.integers(min_value=0, max_value=10**10), max_size=30), max_size=3)),
                max_size=8))
def test_a_batch_of_rollups_packs_what_merging_each_in_full_packs(
        rows: list[tuple[dict[int, int] | None, bool, list[list[int]]]]) -> None:
    """The collector's call: many stored rollups (none yet, EPH2 of any widths, an old EPH1) and their
    windows at once, each result byte for byte what merging that rollup's full histogram gives."""
    batch: list[tuple[bytes | None, list[str]]] = []
    expected = []
    for cells, old_form, windows in rows:
        encoded = [histogram_of_ns(np.asarray(w, dtype=np.int64)).encode().decode("ascii") for w in windows]
        full = merge_histograms(encoded)
        stored = None
        if cells is not None:
            hist = _hist_of_cells(cells)
            stored = _eph1(hist) if old_form else pack_histogram(hist)
            full.add(hist)
        batch.append((stored, encoded))
        expected.append(pack_histogram(full))
    assert merge_many_into_packed(batch) == expected
