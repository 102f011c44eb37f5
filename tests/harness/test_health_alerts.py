"""Baseline bands, alerts that fire once and clear once, and frozen/replayed streams on real video."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness.alerts import HealthAlerts, make_bands
from edgeprobe.harness.health import METRICS, FrameStats, HealthWindow
from edgeprobe.harness.replay import ReplayDetector, dhash


def _stats(brightness: float = 120, sharpness: float = 2000, motion: float | None = 1.0, **kw: float) -> FrameStats:
    return FrameStats(brightness=brightness, contrast=kw.get("contrast", 50), sharpness=sharpness,
                      clipped=kw.get("clipped", 0.0), noise=kw.get("noise", 1.5), occlusion=kw.get("occlusion", 0.0),
                      motion=motion)


def _reference(n: int = 300, seed: int = 0) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    return {"brightness": list(120 + rng.normal(0, 3, n)), "contrast": list(50 + rng.normal(0, 2, n)),
            "sharpness": list(2000 * np.exp(rng.normal(0, 0.1, n))), "noise": list(1.5 + rng.normal(0, 0.1, n)),
            "clipped": [0.0] * n, "occlusion": [0.0] * n}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 255), min_size=1, max_size=200), st.floats(0, 1))
def test_band_contains_the_reference_core_and_respects_the_minimum_width(xs: list[float], margin: float) -> None:
    band = make_bands({"brightness": xs}, margin)["brightness"]
    lo, hi = np.quantile(xs, [0.02, 0.98])
    assert band.low <= lo + 1e-9 and band.high >= hi - 1e-9
    assert band.high - band.low >= min(16.0, 255.0) - 1e-9 or band.low == 0.0 or band.high == 255.0
    assert 0.0 <= band.low <= band.high <= 255.0


def test_log_scale_bands_for_multiplicative_figures() -> None:
    band = make_bands({"sharpness": [1000.0] * 50})["sharpness"]
    # A constant baseline still gets the minimum half-width of 0.35 in log1p units: about x0.7 .. x1.42.
    assert band.low == pytest.approx(math.expm1(math.log1p(1000) - 0.35))
    assert band.high == pytest.approx(math.expm1(math.log1p(1000) + 0.35))


def test_blurry_alert_fires_once_with_the_step_time_and_clears_once() -> None:
    alerts = HealthAlerts("cam-07", make_bands(_reference()), window_frames=20, check_every=5)
    events: list[dict] = []
    t = 1_700_000_000.0
    for i in range(200):
        sharp = 2000.0 if i < 60 or i >= 140 else 150.0  # the lens fogs at frame 60 and clears at 140
        events += alerts.add(_stats(sharpness=sharp), t + i)
    types = [e["type"] for e in events]
    assert types == ["camera_blurry", "camera_blurry_cleared"]
    opened = events[0]
    assert opened["since"].startswith("2023-11-14T22:14:20")  # frame 60's wall time: the step, not the alarm
    assert "camera cam-07 went blurry at 22:14:20 UTC" in opened["message"]
    assert opened["metric"] == "sharpness" and opened["value"] < opened["band"][0]
    assert events[1]["duration_s"] > 0


def test_dark_and_overexposed_are_sides_of_one_band() -> None:
    alerts = HealthAlerts("cam-1", make_bands(_reference()), window_frames=10, check_every=1)
    seen = []
    for i in range(60):
        b = 30.0 if 10 <= i < 30 else (240.0 if i >= 40 else 120.0)
        seen += [e["type"] for e in alerts.add(_stats(brightness=b), float(i))]
    assert seen == ["camera_dark", "camera_dark_cleared", "camera_overexposed"]
    assert alerts.summary()["alerts"] == ["overexposed"]


def test_no_band_no_band_alerts_but_frozen_still_caught() -> None:
    alerts = HealthAlerts("cam-2", None, window_frames=10, check_every=1, frozen_share=0.8)
    seen = []
    for i in range(40):
        seen += [e["type"] for e in alerts.add(_stats(brightness=5.0, motion=0.0 if i >= 10 else 1.0), float(i))]
    assert seen == ["camera_frozen"]


def _frames(video: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    out = []
    while len(out) < n:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def _through_codec(frames: list[np.ndarray], path: Path, fourcc: str) -> list[np.ndarray]:
    """Write and read back a clip, as a recorder or NVR would hand it over."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return _frames(path, len(frames))


def _replay_states(frames: list[np.ndarray]) -> tuple[list[bool], list[int | None], int]:
    window, detector = HealthWindow(), ReplayDetector(buffer_frames=600, min_run=20)
    replaying, lags, frozen = [], [], 0
    for i, f in enumerate(frames):
        stats = window.add(f, i)
        assert window.thumb is not None
        s = detector.add(window.thumb, stats.motion == 0.0)
        replaying.append(s.replaying)
        lags.append(s.lag)
        frozen += s.frozen
    return replaying, lags, frozen


@pytest.fixture(scope="module")
def pedestrians(vtest_video: Path) -> list[np.ndarray]:
    return _frames(vtest_video, 400)


def test_live_video_is_neither_frozen_nor_replayed(pedestrians: list[np.ndarray]) -> None:
    replaying, _, frozen = _replay_states(pedestrians)
    assert not any(replaying) and frozen == 0


@pytest.mark.parametrize("fourcc", ["MJPG", "XVID"])
def test_a_replayed_loop_is_caught_at_full_frame_rate(pedestrians: list[np.ndarray], tmp_path: Path,
                                                      fourcc: str) -> None:
    loop = pedestrians[:90]
    clip = _through_codec(loop * 3, tmp_path / f"loop.{fourcc}.avi", fourcc)
    replaying, lags, frozen = _replay_states(clip)
    assert frozen == 0  # every frame differs from the one before: an fps or frozen-frame check sees a live camera
    assert not any(replaying[:90])  # the first pass is indistinguishable from live
    first = replaying.index(True)
    assert 90 < first <= 90 + 40  # caught within the second pass
    assert lags[first] == 90
    assert all(replaying[first:])


def test_a_frozen_stream_is_frozen_not_replayed(pedestrians: list[np.ndarray], tmp_path: Path) -> None:
    clip = _through_codec(pedestrians[:60] + [pedestrians[59]] * 40, tmp_path / "frozen.avi", "MJPG")
    replaying, _, frozen = _replay_states(clip)
    assert frozen == 40 and not any(replaying)


def test_dhash_is_64_bits_and_stable() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (12, 16), dtype=np.uint8)
    assert 0 <= dhash(img) < 2**64 and dhash(img) == dhash(img.copy())


def test_metrics_order_is_what_bands_and_rows_use() -> None:
    assert METRICS == ("brightness", "contrast", "sharpness", "noise", "clipped", "occlusion")
