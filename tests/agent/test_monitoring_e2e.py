"""Health alerts and drift travel spool -> real mosquitto -> collector -> SQLite like every other figure."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
import sqlite_utils

from edgeprobe.cli.localbroker import LocalBroker
from edgeprobe.collector import queries
from tests.conftest import demo_config, run_cli
from tests.e2e.util import count, start_collector, stop, wait_for


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_blurry_camera_reaches_the_collector(tmp_path: Path, broker: LocalBroker, orientation_model: Path,
                                             vtest_video: Path, write_config: Callable[..., Path]) -> None:
    cap = cv2.VideoCapture(str(vtest_video))
    frames = [cap.read()[1] for _ in range(80)]
    cap.release()
    clip = tmp_path / "fogging.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 576))
    for i, f in enumerate(frames):
        writer.write(f if i < 40 else cv2.GaussianBlur(f, (0, 0), 5))
    writer.release()
    monitor = {"health": {"window_frames": 10, "check_every": 2, "every_n_frames": 1},
               "drift": {"window_frames": 30, "min_frames": 20}}
    cfg = demo_config(orientation_model, clip, tmp_path / "spool.db", device_id="cam-07", monitor=monitor,
                      windows={"frames": 20, "warmup": 0})
    cfg["source"]["loop"] = False
    path = write_config(cfg)
    baseline = tmp_path / "baseline.json"
    rec = run_cli("baseline", "record", "-c", str(path), "-o", str(baseline), "--max-frames", "40")
    assert rec.returncode == 0, rec.stderr
    cfg["monitor"]["baseline"] = str(baseline)
    path = write_config(cfg)

    db = tmp_path / "fleet.db"
    collector = start_collector(db, broker.address, tmp_path)
    try:
        run = run_cli("run", "-c", str(path), "--broker", broker.address, "--max-frames", "80")
        assert run.returncode == 0, run.stderr
        assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages WHERE kind = 'death'") == 1)
    finally:
        stop(collector)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0] == 0
        events = [json.loads(b) for (b,) in conn.execute(
            "SELECT body FROM messages WHERE kind = 'event' ORDER BY seq")]
        drift = [json.loads(b) for (b,) in conn.execute("SELECT body FROM messages WHERE kind = 'drift' ORDER BY seq")]
        last_flags = conn.execute("SELECT flags FROM health WHERE device_id = 'cam-07' ORDER BY ts DESC").fetchone()[0]
    blurry = [e for e in events if e["type"] == "camera_blurry"]
    assert len(blurry) == 1 and blurry[0]["message"].startswith("camera cam-07 went blurry at ")
    assert len(drift) == 4 and all(d["reference"] == "baseline" for d in drift)
    assert drift[-1]["inputs"]["sharpness"]["outside_band"] == 1.0
    assert "blurry" in last_flags
    unhealthy = queries.unhealthy_cameras(sqlite_utils.Database(db))
    assert any(r["device_id"] == "cam-07" for r in unhealthy)
