"""observe()'s input checks: the fast path for the common case decides exactly as the rules say, for any input.

The rules are written out again here, plainly, as the reference: a uint8 HxW, HxWx1 or HxWx3 frame; outputs a
list of arrays (or one bare array); timings integer nanoseconds >= 0, a float in (0, 1) being seconds by mistake.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edgeprobe.agent.sdk import ObserveError, _checked_frame, _checked_outputs, _checked_timings


def _outcome(check: Any, value: Any) -> tuple[str, Any]:
    try:
        return "ok", check(value)
    except ObserveError as exc:
        return "refused", exc.kind


def _reference_frame(frame: Any) -> tuple[str, Any]:
    if not isinstance(frame, np.ndarray):
        return "refused", "frame"
    good = frame.dtype == np.uint8 and frame.size > 0 and (
        frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3)))
    return ("ok", frame) if good else ("refused", "pixels")


def _reference_timings(timings: Any) -> tuple[str, Any]:
    if not timings:
        return "ok", {}
    if not isinstance(timings, Mapping):
        return "refused", "timings"
    out = {}
    for stage, value in timings.items():
        number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if not number or not math.isfinite(value) or value < 0:
            return "refused", "timings"
        if isinstance(value, (float, np.floating)) and 0 < value < 1:
            return "refused", "seconds"
        out[str(stage)] = int(value)
    return "ok", out


def _reference_outputs(outputs: Any) -> tuple[str, Any]:
    if outputs is None:
        return "ok", None
    if isinstance(outputs, np.ndarray):
        return "ok", [outputs]
    if isinstance(outputs, Mapping) or not isinstance(outputs, Sequence):
        return "refused", "outputs"
    return "ok", [np.asarray(o) for o in outputs]


frames = st.one_of(
    hnp.arrays(st.sampled_from([np.uint8, np.float32, np.int16, np.uint16]),
               hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=4)),
    st.sampled_from([None, [[1, 2]], "frame", 3]),
)
values = st.one_of(st.integers(-5, 10**12), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                   st.integers(0, 10**9).map(np.int64), st.floats(0, 1).map(np.float32), st.just("5"))
timings = st.one_of(st.dictionaries(st.one_of(st.text(max_size=8), st.integers(0, 3)), values, max_size=5),
                    st.sampled_from([None, [], (1, 2), "e2e"]))
arrays = hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=3))
outputs = st.one_of(st.none(), arrays, st.lists(st.one_of(arrays, st.lists(st.integers(), max_size=3)), max_size=3),
                    st.tuples(arrays), st.dictionaries(st.text(max_size=3), arrays, max_size=2), st.integers())


@settings(max_examples=400, deadline=None)
@given(frames)
def test_frames_are_taken_or_refused_as_the_rules_say(frame: Any) -> None:
    got, want = _outcome(_checked_frame, frame), _reference_frame(frame)
    assert got[0] == want[0] and (got[1] is want[1] if got[0] == "ok" else got[1] == want[1])


@settings(max_examples=400, deadline=None)
@given(timings)
def test_timings_are_taken_or_refused_as_the_rules_say(value: Any) -> None:
    got = _outcome(_checked_timings, value)
    assert got == _reference_timings(value)
    if got[0] == "ok" and isinstance(value, dict) and value:
        assert got[1] is not value  # a copy: the app may reuse its dict for the next frame
        assert all(type(v) is int for v in got[1].values())


@settings(max_examples=400, deadline=None)
@given(outputs)
def test_outputs_are_taken_or_refused_as_the_rules_say(value: Any) -> None:
    got, want = _outcome(_checked_outputs, value), _reference_outputs(value)
    assert got[0] == want[0]
    if got[0] == "ok" and want[1] is not None:
        assert len(got[1]) == len(want[1])
        for a, b in zip(got[1], want[1], strict=True):
            np.testing.assert_array_equal(a, b)
    else:
        assert got[1] == want[1]
