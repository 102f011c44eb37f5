"""Per-frame camera-health figures: noise, occlusion, frozen frames, motion, on synthetic and real frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness.health import (
    HealthWindow,
    box_shrink,
    frame_difference,
    frame_stats,
    health_flags,
    noise_patch,
    noise_sigma,
    thumbnail,
    uniform_share,
)
from edgeprobe.harness.health import _box_sums_shrink as _box_sums_shrink  # the fast path itself


def _first_frames(video: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    for _ in range(n):
        ok, f = cap.read()
        assert ok
        frames.append(f)
    cap.release()
    return frames


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_noise_estimate_recovers_known_gaussian_noise_on_a_smooth_image(sigma: float) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:128]
    smooth = 80 + 0.5 * xx + 0.3 * yy  # a ramp: Immerkaer's kernel cancels it exactly
    noisy = np.clip(smooth + rng.normal(0, sigma, smooth.shape), 0, 255).astype(np.uint8)
    assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.15)
    assert noise_sigma(np.round(smooth).astype(np.uint8)) < 0.5


def test_noise_rises_with_sensor_noise_on_real_video(vtest_video: Path) -> None:
    frame = _first_frames(vtest_video, 1)[0]
    rng = np.random.default_rng(1)
    levels = [noise_sigma(noise_patch(np.clip(frame + rng.normal(0, s, frame.shape), 0, 255).astype(np.uint8)))
              for s in (0, 5, 15)]
    assert levels[0] < levels[1] < levels[2]
    assert levels[2] > 3 * levels[0]


def test_occlusion_is_the_uniform_share_of_the_frame(vtest_video: Path) -> None:
    frame = _first_frames(vtest_video, 1)[0]
    assert uniform_share(thumbnail(frame)) < 0.05
    covered = frame.copy()
    covered[:, : frame.shape[1] // 2] = 40  # tape over the left half
    share = uniform_share(thumbnail(covered))
    assert 0.4 <= share <= 0.6
    cap = np.full_like(frame, 5)  # lens cap
    assert uniform_share(thumbnail(cap)) == 1.0
    stats = frame_stats(thumbnail(cap), noise_patch(cap))
    assert "occluded" in health_flags({"frames": 1, "occlusion": stats.occlusion, "brightness": stats.brightness})


def test_frozen_frames_and_motion_on_real_video(vtest_video: Path) -> None:
    frames = _first_frames(vtest_video, 20)
    window = HealthWindow()
    motions = [window.add(f, i).motion for i, f in enumerate(frames[:10] + [frames[9]] * 5)]
    assert motions[0] is None
    assert all(m is not None and 0 < m < 5 for m in motions[1:10])  # a walking crowd at 10 fps
    assert motions[10:] == [0.0] * 5
    summary = window.summary()
    assert summary["frozen_frames"] == 5 and summary["frames"] == 15
    assert summary["noise"] > 0 and 0 <= summary["occlusion"] <= 1


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_frame_difference_is_the_mean_absolute_difference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (23, 31), dtype=np.uint8)
    b = rng.integers(0, 256, (23, 31), dtype=np.uint8)
    assert frame_difference(a, b) == pytest.approx(np.abs(a.astype(int) - b.astype(int)).mean())
    assert frame_difference(a, a) == 0.0


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(16, 200), st.integers(16, 200))
def test_uniform_share_matches_a_brute_force_cell_std(seed: int, w: int, h: int) -> None:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    img[: h // 2] = rng.integers(0, 256)  # a uniform top half
    gw, gh = 8, 6
    ch, cw = h // gh, w // gw
    if ch < 2 or cw < 2:
        assert uniform_share(img) == 0.0
        return
    cells = [img[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw].astype(np.float64) for r in range(gh) for c in range(gw)]
    expected = sum(cell.std() < 3.0 for cell in cells) / len(cells)
    assert uniform_share(img) == pytest.approx(expected)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 26), st.integers(1, 12), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_box_shrink_is_opencvs_area_resize_pixel_for_pixel(k: int, rows: int, cols: int, seed: int) -> None:
    """The thumbnail's box sums give what cv2.resize(INTER_AREA) gives, on noise and on saturated boxes (the
    largest sums), for every factor (2 takes OpenCV's own kernel)."""
    rng = np.random.default_rng(seed)
    shape = (rows * k, cols * k)
    for grey in (rng.integers(0, 256, shape, dtype=np.uint8), np.full(shape, 255, np.uint8),
                 (rng.random(shape) < 0.5) * np.uint8(255)):
        expected = cv2.resize(grey, (cols, rows), interpolation=cv2.INTER_AREA)
        assert np.array_equal(box_shrink(grey, k), expected)
        if k > 2:  # the sums themselves, not OpenCV's resize kept after a failed check
            assert np.array_equal(_box_sums_shrink(grey, k), expected)


def test_thumbnail_of_real_frames_is_the_area_resize_of_their_grey(vtest_video: Path) -> None:
    for frame in _first_frames(vtest_video, 5):
        grey = cv2.cvtColor(frame[:575, :765], cv2.COLOR_BGR2GRAY)  # 768x576: factor 5, the boxes' pixels only
        assert np.array_equal(thumbnail(frame), cv2.resize(grey, (153, 115), interpolation=cv2.INTER_AREA))
