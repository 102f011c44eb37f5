"""The agent through a camera outage: a real MJPEG server killed mid-stream and brought back."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeprobe.agent.config import load_config
from edgeprobe.agent.runner import Agent
from edgeprobe.harness import schema
from tests.conftest import demo_config, spooled
from tests.streams.helpers import free_port, start_mjpeg, stop


def _wait(cond: Callable[[], bool], limit_s: float = 30) -> None:
    deadline = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_outage_is_reported_and_survived(tmp_path: Path, orientation_model: Path, vtest_video: Path,
                                         write_config: Callable[..., Path]) -> None:
    port = free_port()
    spool = tmp_path / "spool.db"
    cfg = demo_config(orientation_model, Path("x"), spool, windows={"frames": 10, "warmup": 2, "seconds": 1.0})
    cfg["source"] = {"uri": f"http://cam:secret@127.0.0.1:{port}/video", "read_timeout_s": 1.0,
                     "open_timeout_s": 1.0, "backoff_initial_s": 0.1, "backoff_max_s": 0.5}
    cfg["probe"]["every_n_frames"] = 50
    server = start_mjpeg(vtest_video, port, "--fps", "25")
    agent = Agent(load_config(write_config(cfg)))
    stop_run = threading.Event()
    frames = [0]
    result: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: result.update(stats=agent.run(
        stop=stop_run, on_frame=lambda n: frames.__setitem__(0, n))))
    runner.start()
    try:
        _wait(lambda: frames[0] >= 25)
        stop(server)
        frames_before = frames[0]
        _wait(lambda: agent.source.offline)  # type: ignore[attr-defined]
        time.sleep(1.5)  # long enough for a health message while offline
        server = start_mjpeg(vtest_video, port, "--fps", "25")
        _wait(lambda: not agent.source.offline and frames[0] >= frames_before + 15)  # type: ignore[attr-defined]
    finally:
        stop_run.set()
        runner.join(timeout=30)
        stop(server)
    assert not runner.is_alive()
    msgs = spooled(spool)
    for m in msgs:
        schema.decode_message(schema.encode(m), schema.topic_for(m["fleet"], m["device_id"], m["kind"]))
    assert "secret" not in json.dumps(msgs)
    events = [m["body"] for m in msgs if m["kind"] == "event"]
    offline = [e for e in events if e["type"] == "source_offline"]
    outage = [e for e in events if e["type"] == "source_outage"]
    assert len(offline) == 1 and len(outage) == 1
    assert outage[0]["duration_s"] >= 1.5 and outage[0]["end_ts"] > outage[0]["start_ts"] == offline[0]["start_ts"]
    health = [m["body"] for m in msgs if m["kind"] == "health"]
    assert any("offline" in h["flags"] and h["source_offline"] for h in health)
    assert health[-1]["source_offline"] is False and health[-1]["source_outages"] == 1
    # nothing measured before the outage is lost: every window is in the spool, frame ranges unbroken
    latency = [m["body"]["window"] for m in msgs if m["kind"] == "latency"]
    # (the last window also spans the frame that was read when the stop came, unprocessed)
    assert 0 <= sum(w["frames"] for w in latency) - result["stats"].frames <= 1
    assert result["stats"].frames >= frames_before + 15
    kinds = [m["kind"] for m in msgs]
    off_at = kinds.index("event")
    assert kinds[:off_at].count("latency") >= 2  # windows measured before the outage stayed
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))
