"""The centre crop resizes only the part of the frame it keeps: the same pixels as resizing the whole frame."""

from __future__ import annotations

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.agent.backends.buffers import ALIGN, aligned_empty
from edgeprobe.agent.backends.resize import FrameResizer, ResizePlan, part_is_exact, plan


def _whole(image: np.ndarray, p: ResizePlan) -> np.ndarray:
    assert p.dsize is not None and p.crop is not None
    return cv2.resize(image, p.dsize, interpolation=cv2.INTER_LINEAR)[p.crop]


@settings(max_examples=300, deadline=None)
@given(h=st.integers(4, 400), w=st.integers(4, 400), th=st.integers(2, 160), tw=st.integers(2, 160),
       grey=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_the_part_plan_gives_the_whole_frames_crop(h: int, w: int, th: int, tw: int, grey: bool, seed: int) -> None:
    """The geometry itself is right, not only rescued by the one-time check: every part plan is exact here."""
    p = plan(h, w, th, tw, "center_crop")
    shape = (h, w) if grey else (h, w, 3)
    if p.part is not None:
        assert p.part[0] <= h and p.part[1] <= w and p.part != (h, w)
        assert part_is_exact(shape, np.dtype(np.uint8), p)
    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    got = FrameResizer(shape, np.dtype(np.uint8), th, tw, "center_crop")(image)
    assert got.shape[:2] == (th, tw)
    assert np.array_equal(got.reshape(_whole(image, p).shape), _whole(image, p))


def test_the_demo_frame_reads_only_the_columns_its_crop_keeps() -> None:
    """768x576 -> 299x224 -> the centre 224x224: 671 source columns and 261 output columns instead of 768, 299."""
    r = FrameResizer((576, 768, 3), np.dtype(np.uint8), 224, 224, "center_crop")
    assert r.plan.part == (576, 671) and r.plan.out_hw == (224, 261)
    image = np.random.default_rng(7).integers(0, 256, (576, 768, 3), dtype=np.uint8)
    first = r(image)
    assert np.array_equal(first, _whole(image, r.plan))
    assert r(image[::-1].copy()) is first  # the same buffer every frame


def test_the_check_refuses_a_part_that_changes_pixels() -> None:
    """A part one column too narrow, or a scale factor that is not the whole frame's, is caught and not used."""
    good = plan(576, 768, 224, 224, "center_crop")
    assert good.part is not None
    narrow = ResizePlan(good.dsize, good.out_hw, (576, 668), good.crop, None, good.fx, good.fy)
    assert not part_is_exact((576, 768, 3), np.dtype(np.uint8), narrow)
    shifted = ResizePlan(good.dsize, good.out_hw, good.part, good.crop, None, good.fx * 1.001, good.fy)
    assert not part_is_exact((576, 768, 3), np.dtype(np.uint8), shifted)


def test_stretch_and_letterbox_resize_the_whole_frame() -> None:
    assert plan(576, 768, 224, 224, "stretch").part is None
    assert plan(576, 768, 224, 224, "letterbox").part is None
    assert plan(224, 224, 224, 224, "stretch").dsize is None  # already the model's size: no resize at all


@given(shape=st.tuples(st.integers(1, 50), st.integers(1, 50)), kind=st.sampled_from(["u1", "f4", "i1", "f8"]))
def test_aligned_buffers_start_on_a_cache_line(shape: tuple[int, int], kind: str) -> None:
    a = aligned_empty(shape, np.dtype(kind))
    assert a.ctypes.data % ALIGN == 0 and a.shape == shape and a.flags.c_contiguous and a.dtype == np.dtype(kind)
