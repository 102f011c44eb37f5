"""The OpenCV-backed building blocks of perturbations agree with plain numpy on every shape and channel count.

OpenCV releases change how they read numbers next to multi-channel arrays (5.1 compares a 3-channel array
with (n, 0, 0, 0)); these properties hold whichever OpenCV is installed, and fail on one that breaks them.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeprobe.harness.perturbations._fast import mask_where

shapes = st.one_of(hnp.array_shapes(min_dims=1, max_dims=2, max_side=40),
                   st.tuples(st.integers(1, 30), st.integers(1, 30), st.sampled_from([1, 3, 4])))


@settings(max_examples=80, deadline=None)
@given(values=hnp.arrays(np.uint16, shapes), threshold=st.integers(0, 65536), below=st.booleans())
def test_mask_where_is_the_numpy_comparison_on_every_channel(values: np.ndarray, threshold: int,
                                                             below: bool) -> None:
    hit = values < threshold if below else values >= threshold
    got = mask_where(values, threshold, below)
    assert got.shape == values.shape and got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.where(hit, 255, 0).astype(np.uint8))
