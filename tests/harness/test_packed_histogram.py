"""The collector's packed rollup histograms hold exactly the buckets of the HdrHistograms merged into them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness.latency import histogram_of_ns, histogram_summary, merge_histograms
from edgeprobe.harness.rollup_form import merge_into_packed, pack_histogram, summary_of_packed, unpack_histogram

windows = st.lists(st.lists(st.integers(1_000, 3_000_000_000_000), min_size=1, max_size=60), min_size=1,
                   max_size=6)


@settings(max_examples=40, deadline=None)
@given(windows)
def test_packed_merge_equals_hdr_merge(samples: list[list[int]]) -> None:
    encoded = [histogram_of_ns(np.array(s, dtype=np.int64)).encode().decode("ascii") for s in samples]
    packed = None
    for enc in encoded:  # one window per batch, as the collector folds them
        packed = merge_into_packed(packed, [enc])
    assert packed is not None
    merged = merge_histograms(encoded)
    assert np.array_equal(unpack_histogram(packed).counts, merged.counts)
    exact = histogram_summary(merged)
    exact.pop("mean")
    assert summary_of_packed([packed]) == exact
    # hours of a range merge the same way
    half = len(encoded) // 2
    if half:
        a, b = merge_into_packed(None, encoded[:half]), merge_into_packed(None, encoded[half:])
        assert summary_of_packed([a, b]) == exact


def test_pack_round_trip_and_bad_blobs() -> None:
    hist = histogram_of_ns(np.array([5_000, 7_000_000, 9_000_000_000], dtype=np.int64))
    assert np.array_equal(unpack_histogram(pack_histogram(hist)).counts, hist.counts)
    assert summary_of_packed([]) == {"count": 0}
    for bad in (b"", b"not zlib", __import__("zlib").compress(b"EPH1 too short")):
        with pytest.raises(ValueError):
            unpack_histogram(bad)
