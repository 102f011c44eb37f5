"""GStreamer sources for real, on a board-style install with numpy 1.x.

`make gst-venv` builds .venv-gst the way boards run edgeprobe: Debian's python3-opencv (GStreamer on,
compiled against Debian's numpy 1.24) through --system-site-packages, edgeprobe installed beside it
without replacing either (deploy/board-venv.sh; the Jetson image does the same with JetPack's OpenCV).
The agent runs there as a subprocess, on a `videotestsrc ... ! appsink` and an
`rtspsrc ... ! decodebin ! appsink` pipeline against the RTSP test server on 127.0.0.1, through an
end of stream and a server killed and restarted; its spool is read back here with the collector's
decoder. Progress is read from an emulated systemd notify socket, never from elapsed time.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgeprobe.harness import schema
from tests.conftest import REPO, demo_config
from tests.sdnotify_socket import NotifySocket, frames_in
from tests.streams.helpers import free_port, rtsp_unavailable, start_rtsp, stop, stop_agent

GST_VENV = REPO / ".venv-gst"
GST_EDGEPROBE = GST_VENV / "bin" / "edgeprobe"


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    """What the board venv imports; skips, saying why, where there is none or its OpenCV lacks GStreamer.

    A fixture rather than an import-time probe: on a loaded machine importing cv2 and the agent in a
    fresh interpreter took over a minute, and an import-time timeout broke collection of the whole run.
    """
    if not GST_EDGEPROBE.exists():
        pytest.skip("no .venv-gst: `make gst-venv` makes it from Debian's python3-opencv (needs apt as root and "
                    "the package index)")
    code = ("import json, cv2, numpy, edgeprobe.agent.runner; print(json.dumps({'cv2': cv2.__file__, "
            "'cv2_version': cv2.__version__, 'numpy': numpy.__version__, 'numpy_file': numpy.__file__, "
            "'gstreamer': 'GStreamer:                   YES' in cv2.getBuildInformation()}))")
    proc = subprocess.run([str(GST_VENV / "bin" / "python"), "-c", code], capture_output=True, text=True, timeout=280)
    if proc.returncode:
        pytest.skip(f".venv-gst cannot import the agent: {proc.stderr.strip().splitlines()[-1:]}")
    found: dict[str, Any] = json.loads(proc.stdout)
    if not found["gstreamer"]:
        pytest.skip(f"the OpenCV in .venv-gst ({found['cv2']}) has no GStreamer")
    return found


def _config(tmp_path: Path, model: Path, uri: str) -> dict[str, Any]:
    cfg = demo_config(model, Path(uri), tmp_path / "spool.db")
    cfg["source"] = {"uri": uri, "read_timeout_s": 1.0, "open_timeout_s": 2.0, "backoff_initial_s": 0.1,
                     "backoff_max_s": 0.5}
    cfg["probe"]["every_n_frames"] = 10
    cfg["windows"]["frames"] = 20
    return cfg


def _spooled(spool: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(spool) as db:
        msgs = [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox ORDER BY id")]
    for m in msgs:  # every message the numpy-1.x agent wrote is one the collector accepts
        schema.decode_message(schema.encode(m), schema.topic_for(m["fleet"], m["device_id"], m["kind"]))
    return msgs


def test_board_venv_keeps_the_systems_opencv_and_numpy_1x(board: dict[str, Any]) -> None:
    assert board["cv2"].startswith("/usr/lib/python3/dist-packages/"), board  # Debian's, not a pip wheel
    major, minor = (int(x) for x in board["numpy"].split(".")[:2])
    assert (1, 24) <= (major, minor) < (2, 0) and board["numpy_file"].startswith("/usr/lib/python3/"), board
    pip = subprocess.run([str(GST_VENV / "bin" / "python"), "-m", "pip", "list", "--local", "--format", "json"],
                         capture_output=True, text=True, timeout=60)
    local = {p["name"].lower() for p in json.loads(pip.stdout)}
    assert not local & {"numpy", "opencv-python", "opencv-python-headless"}, local


def test_videotestsrc_pipeline_with_end_of_stream_and_reconnect_on_numpy_1x(
        board: dict[str, Any], tmp_path: Path, orientation_model: Path, write_config: Callable[..., Path]) -> None:
    # 30 buffers, then end of stream: 70 measured frames need the agent to reopen the pipeline twice.
    uri = ("videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 "
           "! videoconvert ! appsink")
    cfg = write_config(_config(tmp_path, orientation_model, uri))
    proc = subprocess.run([str(GST_EDGEPROBE), "run", "-c", str(cfg), "--max-frames", "70", "--json"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["frames"] == 70 and stats["probed_frames"] >= 6
    msgs = _spooled(tmp_path / "spool.db")
    kinds = [m["kind"] for m in msgs]
    assert {"latency", "robustness", "health", "drift"} <= set(kinds)
    events = [m["body"]["type"] for m in msgs if m["kind"] == "event"]
    assert events.count("source_offline") >= 2 and events.count("source_outage") >= 2, events
    latency = [m["body"] for m in msgs if m["kind"] == "latency"]
    assert sum(b["window"]["frames"] for b in latency) == 70
    assert latency[0]["stages"]["inference"]["count"] > 0


@pytest.mark.skipif(bool(rtsp_unavailable()), reason=rtsp_unavailable() or "")
def test_rtsp_pipeline_through_an_outage_and_back(board: dict[str, Any], tmp_path: Path, orientation_model: Path,
                                                  vtest_video: Path, write_config: Callable[..., Path]) -> None:
    port = free_port()
    uri = (f"rtspsrc location=rtsp://127.0.0.1:{port}/cam latency=0 protocols=tcp ! decodebin ! videoconvert "
           "! appsink drop=true max-buffers=1 sync=false")
    data = _config(tmp_path, orientation_model, uri)
    data["windows"]["seconds"] = 1.0  # health while offline comes at this period
    cfg = write_config(data)
    notify = NotifySocket(tmp_path / "notify")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": ""}
    server = start_rtsp(vtest_video, port)
    agent = subprocess.Popen([str(GST_EDGEPROBE), "run", "-c", str(cfg), "--json"], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        notify.wait_for(lambda s: frames_in(s) >= 20, limit_s=90)
        stop(server)
        server = None
        at_outage = frames_in(notify.wait_for_state(
            lambda s: s.get("STATUS", "").startswith("waiting for the camera")))
        server = start_rtsp(vtest_video, port)  # same address: the agent reconnects on its own
        notify.wait_for(lambda s: frames_in(s) >= at_outage + 20, limit_s=90)
    finally:
        err = stop_agent(agent, server, notify)
    assert agent.returncode == 0, err[-2000:]
    msgs = _spooled(tmp_path / "spool.db")
    events = [m["body"] for m in msgs if m["kind"] == "event"]
    offline = [e for e in events if e["type"] == "source_offline"]
    back = [e for e in events if e["type"] == "source_outage"]
    assert offline and back and back[-1]["duration_s"] > 0, events
    assert "rtsp://127.0.0.1" in json.dumps(offline[0])  # the event names the stream
    health = [m["body"] for m in msgs if m["kind"] == "health"]
    assert any("offline" in h["flags"] for h in health) and health[-1]["source_outages"] >= 1
