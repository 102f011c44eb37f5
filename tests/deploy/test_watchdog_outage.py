"""systemd's watchdog through a camera outage: the real CLI agent, a real MJPEG camera killed and brought
back, and an emulated notify socket (a real AF_UNIX datagram socket named by NOTIFY_SOCKET).

Before the heartbeat thread the agent pinged only per frame, so a camera outage longer than
``WatchdogSec`` became a kill-and-restart loop. What systemd requires is at least one ``WATCHDOG=1``
in every watchdog period; the test counts pings per period over the outage (never a rate), with
the period and the outage length set by EDGEPROBE_TEST_WATCHDOG_S / EDGEPROBE_TEST_OUTAGE_S so it
takes seconds here and can be run with the 30 s outage of issue 18 (EDGEPROBE_TEST_OUTAGE_S=30).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import REPO, demo_config
from tests.sdnotify_socket import NotifySocket, frames_in
from tests.streams.helpers import free_port, start_mjpeg, stop, stop_agent

WATCHDOG_S = float(os.environ.get("EDGEPROBE_TEST_WATCHDOG_S", "2"))
OUTAGE_S = float(os.environ.get("EDGEPROBE_TEST_OUTAGE_S", "4"))


def _pings_per_period(sock: NotifySocket, start: float, end: float) -> list[int]:
    periods = int((end - start) // WATCHDOG_S)
    return [len(sock.pings(start + i * WATCHDOG_S, start + (i + 1) * WATCHDOG_S)) for i in range(periods)]


def test_watchdog_is_fed_throughout_a_camera_outage(tmp_path: Path, orientation_model: Path, vtest_video: Path,
                                                    write_config: Callable[..., Path]) -> None:
    port = free_port()
    cfg = demo_config(orientation_model, Path("x"), tmp_path / "spool.db")
    cfg["source"] = {"uri": f"http://127.0.0.1:{port}/video", "read_timeout_s": 1.0, "open_timeout_s": 1.0,
                     "backoff_initial_s": 0.2, "backoff_max_s": 1.0}
    cfg["probe"]["every_n_frames"] = 50
    beat = tmp_path / "heartbeat"
    notify = NotifySocket(tmp_path / "notify")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(int(WATCHDOG_S * 1e6)),
           "WATCHDOG_PID": "", "EDGEPROBE_HEARTBEAT_FILE": str(beat)}
    # The camera is down when the agent starts: waiting for it is being alive.
    agent = subprocess.Popen([sys.executable, "-m", "edgeprobe", "run", "-c", str(write_config(cfg)), "--no-broker"],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = None
    try:
        t_ready = notify.wait_for(lambda s: "READY" in s)
        notify.wait_for(lambda s: s.get("STATUS", "").startswith("waiting for the camera"))
        time.sleep(OUTAGE_S)
        t_up = time.monotonic()
        server = start_mjpeg(vtest_video, port, "--fps", "25")
        notify.wait_for(lambda s: frames_in(s) >= 20)
        stop(server)  # and down again mid-stream
        t_down = time.monotonic()
        server = None
        notify.wait_for(lambda s: s.get("STATUS", "").startswith("waiting for the camera") and frames_in(s) > 0)
        time.sleep(OUTAGE_S)
        t_end = time.monotonic()
        assert agent.poll() is None, agent.stderr.read() if agent.stderr else ""
    finally:
        err = stop_agent(agent, server, notify)
    assert agent.returncode == 0, err[-2000:]
    for start, end in ((t_ready, t_up), (t_down, t_end)):
        per_period = _pings_per_period(notify, start, end)
        # systemd's rule: at least one ping in every watchdog period (the agent aims for two)
        assert len(per_period) >= int(OUTAGE_S // WATCHDOG_S) and min(per_period) >= 1, per_period
    waiting = [s for _, s in notify.pings(t_down, t_end) if s["STATUS"].startswith("waiting for the camera")]
    assert waiting, "the outage was never seen by the agent"
    assert beat.is_file() and notify.got[-1][1] == {"STOPPING": "1"}

