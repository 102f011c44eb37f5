"""The database a person browses: events, drift and verdicts as tables with columns, foreign keys to devices,
window start and duration, health with every statistic and alert, floats rounded."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.fleet_synth import CONFIG_SHA, MODEL_SHA, stream
from edgeprobe.collector.store import Incoming, Store
from edgeprobe.harness import schema

START = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.timezone.utc)


def _msg(kind: str, body: dict, seq: int) -> Incoming:
    env = schema.make_envelope(kind=kind, device_id="cam-0000", fleet="bench", session_id="s", seq=seq, body=body,
                               ts=START, model_sha256=MODEL_SHA, config_sha256=CONFIG_SHA)
    return Incoming(schema.topic_for("bench", "cam-0000", kind), schema.encode(env), START)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tables") / "fleet.db"
    store = Store(path)
    for tick in stream(1, START, hours=0.2, every_s=120):
        store.ingest(tick)
    store.ingest([
        _msg("verdict", {"suite": "gate", "status": "fail", "exit_code": 1, "headline": "jpeg broke",
                         "duration_s": 12.3456789,
                         "checks": [{"name": "jpeg@5", "kind": "robustness", "status": "fail"},
                                    {"name": "p99", "kind": "latency", "status": "pass"}]}, 900),
        _msg("event", {"type": "command", "message": "ok", "command_id": "42", "status": "ok"}, 901)])
    store.close()
    return path


def test_tables_have_columns_and_foreign_keys(db: Path) -> None:
    with sqlite3.connect(db) as c:
        for table in ("events", "drift", "verdicts", "device_state", "rollup_latency", "rollup_health"):
            fks = c.execute(f"PRAGMA foreign_key_list({table})").fetchall()
            assert [(f[2], f[3], f[4]) for f in fks] == [("devices", "device_id", "device_id")], table
        (suite, status, code, duration, checks, failed), = c.execute(
            "SELECT suite, status, exit_code, duration_s, checks, failed_checks FROM verdicts")
        assert (suite, status, code, duration, checks, failed) == ("gate", "fail", 1, 12.346, 2, "jpeg@5")
        assert c.execute("SELECT type, command_id, status FROM events").fetchall() == [("command", "42", "ok")]
        drift = c.execute("SELECT window_start, window_s, psi_max, attribution FROM drift").fetchall()
        assert drift and all(r[0] and r[1] == 120.0 and 0 <= r[2] <= 0.4 and r[3] == "none" for r in drift)
        health = c.execute("SELECT window_start, window_s, fps, noise, occlusion, alerts FROM health").fetchall()
        assert health and all(r[0] and r[1] == 120.0 and r[3] == 1.5 and r[4] == 0.0 for r in health)
        # rounded where the figure's precision ends: no 17-digit floats
        assert all(len(repr(r[2]).split(".")[1]) <= 2 for r in health)


def test_datasette_sees_the_tables_and_their_links(db: Path) -> None:
    pytest.importorskip("datasette")
    r = subprocess.run([sys.executable, "-m", "datasette", "inspect", str(db)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    tables = json.loads(r.stdout)["fleet"]["tables"]
    for name in ("events", "drift", "verdicts", "device_state", "rollup_latency"):
        assert name in tables
    assert tables["verdicts"]["count"] == 1 and tables["drift"]["count"] >= 1
