"""Live sources against real streams on 127.0.0.1: MJPEG over HTTP, RTSP, and bad input."""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeprobe.agent.sources import LiveSource, open_source, redact
from edgeprobe.agent.sources.backoff import Backoff
from edgeprobe.harness.errors import SourceError
from tests.streams.helpers import free_port, rtsp_unavailable, start_mjpeg, start_rtsp, stop

SECRET = st.text(alphabet=st.characters(blacklist_characters="/@?#& \t\n\r", blacklist_categories=("Cs",)),
                 min_size=3, max_size=20).filter(lambda s: s.strip() == s and "***" not in s)


@given(user=SECRET, password=SECRET, scheme=st.sampled_from(["rtsp", "http", "https", "rtmp"]))
def test_redact_hides_user_and_password(user: str, password: str, scheme: str) -> None:
    url = f"{scheme}://{user}:{password}@10.0.0.7:554/stream1"
    out = redact(f"cannot open {url} now")
    assert password not in out.replace("10.0.0.7:554/stream1", "") and user not in out.split("@")[0]
    assert out == f"cannot open {scheme}://***@10.0.0.7:554/stream1 now"


def test_redact_hides_query_tokens_and_keeps_plain_urls() -> None:
    assert redact("http://cam/video.mjpg?user=admin&pwd=hunter2&res=hd") == "http://cam/video.mjpg?user=***&pwd=***&res=hd"
    assert redact("rtsp://10.0.0.7/stream1") == "rtsp://10.0.0.7/stream1"


@given(initial=st.floats(0.01, 5), cap=st.floats(0.1, 60), seed=st.integers(0, 2**32))
def test_backoff_grows_within_its_cap(initial: float, cap: float, seed: int) -> None:
    b = Backoff(initial, cap, rng=random.Random(seed))
    delays = [b.next_delay() for _ in range(12)]
    for i, d in enumerate(delays):
        bound = min(cap, initial * 2 ** i)
        assert bound / 2 <= d <= bound
    b.reset()
    assert b.next_delay() <= initial


def test_nonexistent_camera_index_is_one_sentence() -> None:
    with pytest.raises(SourceError, match=r"camera 63 does not exist"):
        open_source("63", fail_fast=True)
    with pytest.raises(SourceError, match=r"/dev/video63 does not exist"):
        open_source("/dev/video63", fail_fast=True)


def test_gstreamer_pipeline_without_gstreamer_says_so() -> None:
    with pytest.raises(SourceError, match="no GStreamer"):
        open_source("nvarguscamerasrc ! video/x-raw(memory:NVMM) ! nvvidconv ! appsink", fail_fast=True)


def test_unresolvable_and_refused_urls_never_leak_credentials() -> None:
    with pytest.raises(SourceError, match="does not resolve") as err:
        open_source("rtsp://admin:s3cret@camera.invalid/stream1", fail_fast=True, open_timeout_s=2)
    assert "s3cret" not in str(err.value) and "admin" not in str(err.value)
    with pytest.raises(SourceError, match="refused the connection") as err:
        open_source(f"http://admin:s3cret@127.0.0.1:{free_port()}/video", fail_fast=True, open_timeout_s=2)
    assert "s3cret" not in str(err.value)


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(SourceError, match="scheme edgeprobe cannot read"):
        open_source("ftp://u:p@host/x")


def test_refused_url_retries_instead_of_exiting() -> None:
    events: list[dict[str, Any]] = []
    src = open_source(f"http://u:pw@127.0.0.1:{free_port()}/video", on_event=events.append, open_timeout_s=1,
                      backoff_initial_s=0.05, backoff_max_s=0.1)
    assert isinstance(src, LiveSource) and src.offline
    src.on_idle = lambda: True  # hand back at once: nothing to yield
    assert list(src) == []
    src.close()
    assert events[0]["type"] == "source_offline" and "refused" in events[0]["message"]
    assert "pw" not in str(events)


@pytest.fixture
def mjpeg(vtest_video: Path) -> Any:
    port = free_port()
    proc = start_mjpeg(vtest_video, port, "--fps", "25")
    yield port
    stop(proc)


def test_wrong_credentials_are_named(vtest_video: Path) -> None:
    port = free_port()
    proc = start_mjpeg(vtest_video, port, "--auth", "viewer:right")
    try:
        with pytest.raises(SourceError, match="rejected the credentials") as err:
            open_source(f"http://viewer:wrong@127.0.0.1:{port}/video", fail_fast=True, open_timeout_s=3)
        assert "wrong" not in str(err.value)
    finally:
        stop(proc)


def test_mjpeg_latest_frame_drops_under_a_slow_consumer(mjpeg: int) -> None:
    src = open_source(f"http://127.0.0.1:{mjpeg}/video", read_timeout_s=3)
    deadline = time.monotonic() + 20
    src.on_idle = lambda: time.monotonic() > deadline
    frames = []
    for frame in src:
        frames.append(frame)
        time.sleep(0.2)  # a model five times slower than the 25 fps camera
        if len(frames) == 6:
            break
    status = src.status()
    src.close()
    assert frames[0].image.shape == (576, 768, 3)
    assert [f.index for f in frames] == list(range(6))
    assert all(b.t_capture_ns > a.t_capture_ns for a, b in itertools.pairwise(frames))
    assert status["source_dropped"] > 0 and status["source_frames"] >= status["source_dropped"] + 6 - 1
    assert not status["source_offline"]


def test_resolution_change_mid_stream_keeps_frames_coming(vtest_video: Path) -> None:
    """OpenCV's FFMPEG backend rescales to the size it opened with; sizes that do reach us are reported."""
    port = free_port()
    proc = start_mjpeg(vtest_video, port, "--switch-size-after", "10")
    events: list[dict[str, Any]] = []
    src = open_source(f"http://127.0.0.1:{port}/video", on_event=events.append, read_timeout_s=3)
    deadline = time.monotonic() + 20
    src.on_idle = lambda: time.monotonic() > deadline
    try:
        shapes = [frame.image.shape for _, frame in zip(range(25), src, strict=False)]
        assert isinstance(src, LiveSource)
        frames_small = np.zeros((288, 384, 3), np.uint8)
        src._deliver(frames_small, time.perf_counter_ns(), 0)
    finally:
        src.close()
        stop(proc)
    assert len(shapes) == 25 and set(shapes) == {(576, 768, 3)} and frames_small.shape == (288, 384, 3)
    change = [e for e in events if e["type"] == "source_resolution_changed"]
    assert len(change) == 1 and change[0]["old"] == [768, 576] and change[0]["new"] == [384, 288]
    assert src.describe()["width"] == 384


def test_rtsp_stream_from_gstreamer_server(vtest_video: Path) -> None:
    reason = rtsp_unavailable()
    if reason:
        pytest.skip(reason)
    port = free_port()
    proc = start_rtsp(vtest_video, port)
    try:
        src = open_source(f"rtsp://127.0.0.1:{port}/cam", open_timeout_s=10, read_timeout_s=5, fail_fast=True)
        deadline = time.monotonic() + 20
        src.on_idle = lambda: time.monotonic() > deadline
        frames = []
        for frame in src:
            frames.append(frame)
            if len(frames) == 5:
                break
        src.close()
    finally:
        stop(proc)
    assert frames[0].image.shape == (576, 768, 3)
    assert src.describe()["kind"] == "url"


def test_cli_missing_camera_with_fail_fast_exits_2(tmp_path: Path, orientation_model: Path,
                                                   write_config: Any) -> None:
    from tests.conftest import demo_config, run_cli

    cfg = demo_config(orientation_model, Path("x"), tmp_path / "spool.db")
    cfg["source"] = {"uri": "/dev/video63", "fail_fast": True}
    result = run_cli("run", "-c", str(write_config(cfg)), "--no-broker", "--max-frames", "5")
    assert result.returncode == 2, result.stderr
    assert "/dev/video63 does not exist" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
