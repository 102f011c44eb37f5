"""The SDK's own process: the app's interpreter runs none of edgeprobe's work, and the app is never held up.

Real parts throughout: the demo model, real video frames, a real child process and its shared-memory slots,
the spool as a real SQLite file. A stalled SDK process is a real SIGSTOP, a dead one a real SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edgeprobe
from edgeprobe.agent.sdk import SLOTS
from tests.conftest import REPO, demo_config, read_frames, spooled
from tests.e2e.util import wait_for

CLASS_OUTPUT = [np.array([[0.1, 0.7, 0.1, 0.1]], np.float32)]


def _config(model: Path, clip: Path, spool: Path, **extra: Any) -> dict[str, Any]:
    cfg = demo_config(model, clip, spool, device_id="sdk-cam", **extra)
    del cfg["source"]  # the app owns the camera
    return cfg


def _frame_loop(probe: Any, frames: list[np.ndarray], n: int) -> None:
    for i in range(n):
        probe.observe(frames[i % len(frames)], CLASS_OUTPUT, timings={"preprocess": 1000, "inference": 3000})


APP = """
import json, os, sys, threading
import numpy as np
import edgeprobe
probe = edgeprobe.attach(sys.argv[1])
frame = np.zeros((120, 160, 3), np.uint8)
for i in range(int(sys.argv[2])):
    frame[:] = i % 250
    probe.observe(frame, [np.array([[0.1, 0.7, 0.1, 0.1]], np.float32)], timings={"inference": 2000})
print(json.dumps({"threads": sorted(t.name for t in threading.enumerate()),
                  "onnxruntime": "onnxruntime" in sys.modules, "sdk_pid": probe.pid}), flush=True)
if sys.argv[3] == "exit":
    os._exit(0)  # no close(), no finalizers: as if the app crashed
if sys.argv[3] == "return":
    sys.exit(0)  # no close(): the interpreter's own exit runs the finalizers
probe.close()
print(json.dumps(probe.stats()))
"""


def _app(config: Path, frames: int, ending: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", APP, str(config), str(frames), ending], capture_output=True,
                          text=True, timeout=120, env=env)


def test_the_app_runs_no_edgeprobe_thread_and_loads_no_model_for_it(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    spool = tmp_path / "s.db"
    app = _app(write_config(_config(orientation_model, short_clip, spool)), 45, "close")
    assert app.returncode == 0, app.stderr
    inside, stats = (json.loads(line) for line in app.stdout.splitlines())
    assert inside["threads"] == ["MainThread"] and inside["onnxruntime"] is False
    assert inside["sdk_pid"] != 0 and not Path(f"/proc/{inside['sdk_pid']}").exists()  # gone after close()
    assert stats["observed"] == stats["processed"] == 45 and stats["dropped"] == 0 and stats["errors"] == 0
    kinds = [m["kind"] for m in spooled(spool)]
    assert kinds.count("latency") == 3 and kinds.count("robustness") >= 1  # windows of 20, 20, 5; probes ran
    (birth,) = (m for m in spooled(spool) if m["kind"] == "birth")
    assert birth["body"]["source"]["pid"] != inside["sdk_pid"]  # the app's pid, not the SDK process's


def test_an_app_that_ends_without_close_still_sends_what_it_measured(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    spool = tmp_path / "s.db"
    app = _app(write_config(_config(orientation_model, short_clip, spool)), 30, "exit")
    assert app.returncode == 0, app.stderr
    sdk_pid = json.loads(app.stdout.splitlines()[0])["sdk_pid"]
    assert wait_for(lambda: not Path(f"/proc/{sdk_pid}").exists(), 60)  # it finished on its own
    msgs = spooled(spool)
    latency = [m["body"] for m in msgs if m["kind"] == "latency"]
    assert [w["window"]["frames"] for w in latency] == [20, 10]  # the last, partial window too
    (death,) = (m["body"] for m in msgs if m["kind"] == "death")
    assert death == {"reason": "application exited", "frames": 30}


def test_a_stalled_sdk_process_costs_counted_drops_never_a_blocked_app(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    # health on every frame: every frame's pixels would be handed over
    cfg = _config(orientation_model, short_clip, tmp_path / "s.db", monitor={"health": {"every_n_frames": 1}},
                  windows={"frames": 50, "warmup": 0, "seconds": 3600})
    probe = edgeprobe.attach(write_config(cfg))
    frames = read_frames(short_clip, 8)
    os.kill(probe.pid, signal.SIGSTOP)
    try:
        _frame_loop(probe, frames, 200)  # would hang here if observe() waited for the SDK's process
        stalled = probe.stats()
    finally:
        os.kill(probe.pid, signal.SIGCONT)
    probe.close()
    stats = probe.stats()
    # the slots took the first frames; the rest lost their pixels but not their timings
    assert stalled["dropped"] == stats["dropped"] == 200 - SLOTS
    assert stats["observed"] == stats["processed"] == 200 and stats["errors"] == 0
    latency = [m["body"] for m in spooled(tmp_path / "s.db") if m["kind"] == "latency"]
    assert sum(w["stages"]["inference"]["count"] for w in latency) == 200


def test_a_dead_sdk_process_leaves_the_app_untouched(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    probe = edgeprobe.attach(write_config(_config(orientation_model, short_clip, tmp_path / "s.db")))
    frames = read_frames(short_clip, 4)
    _frame_loop(probe, frames, 10)
    os.kill(probe.pid, signal.SIGKILL)
    assert wait_for(lambda: Path(f"/proc/{probe.pid}/status").exists() is False
                    or "zombie" in Path(f"/proc/{probe.pid}/status").read_text(), 30)
    with caplog.at_level(logging.WARNING, logger="edgeprobe.sdk"):
        _frame_loop(probe, frames, 100)  # never raises
        probe.close()
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if "SDK process has exited" in r.message)) == 1
    assert probe.stats()["observed"] == 110 and probe.stats()["errors"] == 0


def test_cpu_share_probes_among_the_frames_handed_over(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    cfg = _config(orientation_model, short_clip, tmp_path / "s.db", monitor={"health": {"every_n_frames": 2}},
                  probe={"every_n_frames": 1, "cpu_share": 0.5, "backpressure": "wait"})
    probe = edgeprobe.attach(write_config(cfg))
    _frame_loop(probe, read_frames(short_clip, 8), 60)
    probe.close()
    robustness = [m["body"] for m in spooled(tmp_path / "s.db") if m["kind"] == "robustness"]
    assert robustness and sum(b["frames_probed"] for b in robustness) >= 1


def test_frames_observe_cannot_use_are_named_once_and_do_not_shift_the_monitor(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A rejected frame must not move the SDK's sampling off the frames whose pixels it gets: health stays
    measured (one bad call once blinded every later window and flagged the camera dark and blurry)."""
    cfg = _config(orientation_model, short_clip, tmp_path / "s.db", monitor={"health": {"every_n_frames": 5}},
                  windows={"frames": 20, "warmup": 0, "seconds": 3600})
    probe = edgeprobe.attach(write_config(cfg))
    frames = read_frames(short_clip, 8)
    bad_calls: list[tuple[Any, Any, Any]] = [
        (frames[0].tolist(), CLASS_OUTPUT, None),                    # a list, not an array
        (frames[0].astype(np.float32) / 255, CLASS_OUTPUT, None),    # float pixels
        (np.zeros((4, 4, 4), np.uint8), CLASS_OUTPUT, None),         # RGBA
        (frames[0], {"probs": CLASS_OUTPUT[0]}, None),               # a dict of outputs
        (frames[0], CLASS_OUTPUT, {"inference": -1}),                # a negative timing
        (frames[0], CLASS_OUTPUT, {"inference": 0.004}),             # seconds, not nanoseconds
    ]
    with caplog.at_level(logging.WARNING, logger="edgeprobe.sdk"):
        for i in range(60):
            if i % 10 == 3:
                for call in bad_calls:
                    probe.observe(*call)
            probe.observe(frames[i % len(frames)], CLASS_OUTPUT[0], timings={"inference": 3000})  # bare ndarray
        probe.close()
    stats = probe.stats()
    assert stats["observed"] == 60 + 6 * len(bad_calls) and stats["processed"] == 60
    assert stats["errors"] == 6 * len(bad_calls) and stats["alive"] is False
    sentences = [r.message for r in caplog.records if "skipped a frame" in r.message]
    assert any("seconds" in m for m in sentences) and any("uint8 image" in m for m in sentences)
    assert len(sentences) == 5  # each kind of problem once: type, pixel format, outputs, timings, seconds
    health = [m["body"] for m in spooled(tmp_path / "s.db") if m["kind"] == "health"]
    assert len(health) == 3
    for body in health:  # every window measured its camera: real frames are neither black nor flagged dark
        assert body["brightness"] > 0.05 and "dark" not in body.get("flags", [])
    latency = [m["body"] for m in spooled(tmp_path / "s.db") if m["kind"] == "latency"]
    assert sum(w["stages"]["inference"]["count"] for w in latency) == 60


def test_probes_still_running_at_close_land_in_the_last_window(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    """The last frame filling its window exactly used to close it before its probes came back: they were lost."""
    cfg = _config(orientation_model, short_clip, tmp_path / "s.db", probe={"every_n_frames": 5},
                  windows={"frames": 10, "warmup": 0, "seconds": 3600})
    probe = edgeprobe.attach(write_config(cfg))
    _frame_loop(probe, read_frames(short_clip, 8), 30)
    probe.close()
    msgs = spooled(tmp_path / "s.db")
    probed = sum(m["body"]["frames_probed"] for m in msgs if m["kind"] == "robustness")
    assert probed + probe.stats()["probe_dropped"] == 6  # frames 0, 5, ..., 25: each probed or counted
    assert [m["body"]["window"]["frames"] for m in msgs if m["kind"] == "latency"] == [10, 10, 10]


def test_an_app_that_exits_normally_without_close_keeps_every_frame(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    """Interpreter exit runs the finalizer: the rows not sent yet go, and the slot files stay for the SDK's
    process to read (it crashed on a slot file removed under it and lost the run)."""
    spool = tmp_path / "s.db"
    app = _app(write_config(_config(orientation_model, short_clip, spool)), 37, "return")
    assert app.returncode == 0, app.stderr
    sdk_pid = json.loads(app.stdout.splitlines()[0])["sdk_pid"]
    assert wait_for(lambda: not Path(f"/proc/{sdk_pid}").exists(), 60)
    assert "Traceback" not in app.stderr
    msgs = spooled(spool)
    assert sum(m["body"]["stages"]["inference"]["count"] for m in msgs if m["kind"] == "latency") == 37
    (death,) = (m["body"] for m in msgs if m["kind"] == "death")
    assert death == {"reason": "application exited", "frames": 37}


def test_observe_from_several_threads_counts_every_frame_once(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    import threading

    probe = edgeprobe.attach(write_config(_config(orientation_model, short_clip, tmp_path / "s.db",
                                                  windows={"frames": 100, "warmup": 0, "seconds": 3600})))
    frames = read_frames(short_clip, 4)
    threads = [threading.Thread(target=_frame_loop, args=(probe, frames, 250)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    probe.close()
    stats = probe.stats()
    assert stats["observed"] == stats["processed"] == 1000 and stats["errors"] == 0
    latency = [m["body"] for m in spooled(tmp_path / "s.db") if m["kind"] == "latency"]
    assert sum(w["stages"]["inference"]["count"] for w in latency) == 1000


def test_health_without_outputs_and_windows_without_samples_say_so(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    """An app may hand over frames without outputs: health is still measured. A window none of whose frames
    was sampled says `not_sampled`, not a dark, blurry camera (its statistics are zeros)."""
    cfg = _config(orientation_model, short_clip, tmp_path / "s.db", monitor={"health": {"every_n_frames": 30}},
                  probe={"enabled": False}, windows={"frames": 20, "warmup": 0, "seconds": 3600})
    probe = edgeprobe.attach(write_config(cfg))
    frames = read_frames(short_clip, 8)
    for i in range(60):
        probe.observe(frames[i % len(frames)], None, timings={"inference": 3000})
    probe.close()
    health = [m["body"] for m in spooled(tmp_path / "s.db") if m["kind"] == "health"]
    # frames 0 and 30 are sampled: windows 0-19 and 20-39 hold one each, 40-59 none
    assert [b["brightness"] > 0.05 for b in health] == [True, True, False]
    assert [b["flags"] for b in health][2] == ["not_sampled"]
    assert not {"dark", "blurry", "low_contrast"} & {f for b in health for f in b["flags"]}


def test_one_spool_takes_one_agent_or_attached_app(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    """Two on one spool shared its seq counter: each device's seq had gaps the collector reports as losses."""
    from edgeprobe.harness.errors import ConfigError

    config = write_config(_config(orientation_model, short_clip, tmp_path / "s.db"))
    first = edgeprobe.attach(config)
    try:
        with pytest.raises(ConfigError, match=rf"spool .*s.db is in use by pid {first.pid}; give each agent"):
            edgeprobe.attach(config)
    finally:
        first.close()
    second = edgeprobe.attach(config)  # free again once the first has closed
    second.close()
    assert second.stats()["messages"]["death"] == 1


def test_an_app_feeding_another_input_size_is_told_what_to_set_and_probing_stops(
    tmp_path: Path, short_clip: Path, write_config: Callable[..., Path], capfd: pytest.CaptureFixture[str],
) -> None:
    """A text detector with a dynamic input, run by the app at 96x96 while the config says 160x160: every probe
    would have failed comparing masks of two sizes; one sentence names both and what to set."""
    from tests.conftest import asset

    model = asset("ppocr_det.onnx")
    cfg = _config(model, short_clip, tmp_path / "s.db", probe={"every_n_frames": 1})
    cfg["model"] = {"path": str(model), "input_size": [160, 160]}
    cfg["task"] = {"kind": "segmentation", "layout": "nchw"}
    probe = edgeprobe.attach(write_config(cfg))
    frames = read_frames(short_clip, 4)
    app_mask = [np.full((1, 1, 96, 96), 0.2, np.float32)]  # what the app's own 96x96 inference gave
    for i in range(12):
        probe.observe(frames[i % 4], app_mask, timings={"inference": 3000})
    probe.close()
    err = " ".join(capfd.readouterr().err.split())
    assert err.count("the app's model outputs have shapes [(1, 1, 96, 96)] but this model gives "
                     "[(1, 1, 160, 160)] at model.input_size 160x160") == 1, err
    assert "set model.input_size to the size the app resizes to" in err and "Traceback" not in err
    stats = probe.stats()
    assert stats["processed"] == 12 and stats["errors"] == 1 and stats["probe_errors"] == 0
    kinds = [m["kind"] for m in spooled(tmp_path / "s.db")]
    assert "robustness" not in kinds and kinds.count("health") >= 1  # monitoring goes on without probes
