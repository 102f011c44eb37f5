"""Fleet questions answered from a database filled with what real agent runs spooled.

Two devices: one on real video, one on a dark, frozen camera. Their spools
(written by the real agent, `edgeprobe run --no-broker`) are ingested by the
collector's store, then asked through the CLI, Prometheus over HTTP and datasette.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeprobe.agent.spool import Spool
from edgeprobe.cli.localbroker import free_port
from edgeprobe.collector.prometheus import serve_metrics
from edgeprobe.collector.store import Incoming, Store
from tests.conftest import demo_config, run_cli


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory: pytest.TempPathFactory, orientation_model: Path, short_clip: Path) -> Path:
    tmp = tmp_path_factory.mktemp("fleet")
    dark = tmp / "dark"
    dark.mkdir()
    for i in range(4):
        cv2.imwrite(str(dark / f"{i:03d}.png"), np.full((120, 160, 3), 3, np.uint8))
    store = Store(tmp / "fleet.db")
    for device, source in (("cam-ok", short_clip), ("cam-dark", dark)):
        spool = tmp / f"{device}.spool"
        cfg = demo_config(orientation_model, source, spool, device_id=device)
        (tmp / f"{device}.yaml").write_text(json.dumps(cfg))
        r = run_cli("run", "--config", str(tmp / f"{device}.yaml"), "--max-frames", "40", "--no-broker")
        assert r.returncode == 0, r.stderr
        rows = Spool(spool).peek(10_000)
        now = dt.datetime.now(dt.timezone.utc)
        # leave out the clean shutdown's death: these cameras are still running
        store.ingest([Incoming(row.topic, row.payload, now) for row in rows if not row.topic.endswith("/death")])
    store.close()
    return tmp / "fleet.db"


def test_fleet_status_json(fleet_db: Path) -> None:
    r = run_cli("fleet", "status", "--db", str(fleet_db), "--json")
    assert r.returncode == 0, r.stderr
    devices = {d["device_id"]: d for d in json.loads(r.stdout)["devices"]}
    assert set(devices) == {"cam-ok", "cam-dark"}
    for d in devices.values():
        assert d["online"] is True and d["last_seen"] and d["seq_missing"] == 0
        assert d["e2e_p99_ms"] > 0 and d["latency_samples"] == 40
        assert d["worst_perturbation"]["perturbation"] in {"gaussian_noise", "pixel_dropout"}
        assert d["spool_dropped"] == 0 and d["sessions"] == 1
    assert "dark" in devices["cam-dark"]["camera_flags"]
    assert "dark" not in devices["cam-ok"]["camera_flags"]


def test_fleet_cameras_unhealthy_lists_only_the_dark_camera(fleet_db: Path) -> None:
    r = run_cli("fleet", "cameras", "--unhealthy", "--db", str(fleet_db), "--json")
    assert r.returncode == 0, r.stderr
    assert [c["device_id"] for c in json.loads(r.stdout)["cameras"]] == ["cam-dark"]
    table = run_cli("fleet", "cameras", "--unhealthy", "--db", str(fleet_db))
    assert table.returncode == 0 and "cam-dark" in table.stdout and "cam-ok" not in table.stdout


@pytest.mark.parametrize("make", [lambda p: None, lambda p: p.write_bytes(b"not a database at all" * 100),
                                  lambda p: __import__("sqlite3").connect(p).execute("CREATE TABLE x (a)")])
def test_fleet_bad_database_is_one_sentence_and_exit_2(tmp_path: Path, make: Callable[[Path], Any]) -> None:
    db = tmp_path / "fleet.db"
    make(db)
    r = run_cli("fleet", "status", "--db", str(db))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and "--db" in r.stderr


def test_prometheus_scrape_over_http(fleet_db: Path) -> None:
    port = free_port()
    serve_metrics(fleet_db, port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(s)
    online = {s.labels["device_id"]: s.value for s in samples["edgeprobe_device_online"]}
    assert online == {"cam-ok": 1.0, "cam-dark": 1.0}
    flags = {(s.labels["device_id"], s.labels["flag"]): s.value for s in samples["edgeprobe_camera_flag"]}
    assert flags[("cam-dark", "dark")] == 1.0 and flags[("cam-ok", "dark")] == 0.0
    p99 = [s for s in samples["edgeprobe_latency_seconds"] if s.labels.get("quantile") == "0.99"
           and s.labels["stage"] == "e2e"]
    assert len(p99) == 2 and all(0 < s.value < 60 for s in p99)  # seconds, not ms
    counts = {s.labels["device_id"]: s.value for s in samples["edgeprobe_latency_seconds_count"]
              if s.labels["stage"] == "e2e"}
    assert counts == {"cam-ok": 40.0, "cam-dark": 40.0}
    assert {s.labels["device_id"] for s in samples["edgeprobe_spool_dropped_total"]} == {"cam-ok", "cam-dark"}
    assert samples["edgeprobe_unstable_ratio"] and all(0 <= s.value <= 1 for s in samples["edgeprobe_unstable_ratio"])
    assert {s.labels["device_id"] for s in samples["edgeprobe_fps"]} == {"cam-ok", "cam-dark"}
    stored = {(s.labels["device_id"], s.labels["kind"]): s.value for s in samples["edgeprobe_messages_stored_total"]}
    assert stored[("cam-ok", "birth")] == 1.0 and stored[("cam-ok", "latency")] >= 1
    assert [s.labels["version"] for s in samples["edgeprobe_build_info"]]
    seen = [s.value for s in samples["edgeprobe_device_last_seen_timestamp_seconds"]]
    assert len(seen) == 2 and all(s > 1.7e9 for s in seen)


def test_datasette_opens_the_database(fleet_db: Path) -> None:
    pytest.importorskip("datasette")
    r = subprocess.run([sys.executable, "-m", "datasette", "inspect", str(fleet_db)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    tables = json.loads(r.stdout)["fleet"]["tables"]
    for name in ("messages", "devices", "latency", "robustness", "health", "quarantine"):
        assert name in tables
    assert tables["devices"]["count"] == 2
