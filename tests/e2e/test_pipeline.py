"""The whole pipeline on real parts: mosquitto, collector and agent as processes."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeprobe.cli.localbroker import LocalBroker
from edgeprobe.collector import queries
from tests.conftest import demo_config, run_cli
from tests.e2e.util import start_collector, stop


def _wait_rows(db: Path, sql: str, want: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db) as conn:
                n = conn.execute(sql).fetchone()[0]
            if n >= want:
                return int(n)
        except sqlite3.OperationalError:
            pass
        time.sleep(0.1)
    return int(n)


@pytest.mark.usefixtures("collector_client")  # on paho and on gmqtt
@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_agent_to_collector_through_real_mosquitto(
    tmp_path: Path, broker: LocalBroker, orientation_model: Path, short_clip: Path,
    write_config: Callable[..., Path],
) -> None:
    db = tmp_path / "fleet.db"
    collector = start_collector(db, broker.address, tmp_path)
    try:
        cfg = write_config(demo_config(orientation_model, short_clip, tmp_path / "spool.db",
                                       device_id="e2e-cam", windows={"frames": 25}))
        agent = run_cli("run", "-c", str(cfg), "--broker", broker.address, "--max-frames", "100", "--json")
        assert agent.returncode == 0, agent.stderr
        assert _wait_rows(db, "SELECT COUNT(*) FROM messages WHERE kind = 'death'", 1) == 1
    finally:
        stop(collector)  # SIGTERM, then killed if it has not exited: never left running
    assert collector.returncode == 0

    import sqlite_utils

    fleet = sqlite_utils.Database(db)
    kinds = queries.kind_counts(fleet)
    # drift: one per window too; event: the 60-frame clip loops, which the agent reports as a replayed stream
    assert kinds == {"birth": 1, "latency": 4, "robustness": 4, "health": 4, "drift": 4, "event": 1, "death": 1}
    assert fleet["quarantine"].count == 0
    seqs = [r[0] for r in fleet.execute("SELECT seq FROM messages WHERE device_id = 'e2e-cam' ORDER BY seq")]
    assert seqs == list(range(len(seqs)))  # no gaps
    (device,) = queries.devices(fleet)
    assert device["device_id"] == "e2e-cam" and device["online"] == 0 and device["seq_missing"] == 0

    latency = {r["stage"]: r for r in queries.latency_summary(fleet)}
    assert latency["inference"]["count"] == 100 and latency["e2e"]["count"] == 100
    assert 0.1 < latency["inference"]["p50"] <= latency["inference"]["p99"] <= latency["inference"]["max"] < 5000
    assert latency["e2e"]["p50"] >= latency["inference"]["p50"]

    robustness = queries.robustness_summary(fleet)
    assert {(r["perturbation"], r["severity"]) for r in robustness} == {
        ("gaussian_noise", 1.0), ("gaussian_noise", 5.0), ("pixel_dropout", 3.0)}
    assert all(r["n"] == 20 for r in robustness)  # 100 frames, one in five probed

    (health,) = queries.health_summary(fleet)
    assert health["frames"] == 100 and health["frozen_frames"] == 0 and health["spool_dropped"] == 0

    summary = run_cli("summary", "--db", str(db))
    assert summary.returncode == 0 and "gaussian_noise" in summary.stdout and "e2e-cam" in summary.stdout


@pytest.mark.usefixtures("collector_client")  # on paho and on gmqtt
@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_spool_is_drained_after_the_broker_comes_back(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    """Measured offline, delivered later: nothing measured before the outage is lost."""
    broker = LocalBroker()
    spool = tmp_path / "spool.db"
    cfg = write_config(demo_config(orientation_model, short_clip, spool, windows={"frames": 10}))
    offline = run_cli("run", "-c", str(cfg), "--broker", broker.address, "--max-frames", "30")
    assert offline.returncode == 0 and "not reachable" in offline.stderr
    with sqlite3.connect(spool) as conn:
        queued = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert queued == 1 + 3 * 4 + 1  # birth, 3 windows of latency/robustness/health/drift, death
    with broker:
        db = tmp_path / "fleet.db"
        collector = start_collector(db, broker.address, tmp_path)
        try:
            online = run_cli("run", "-c", str(cfg), "--broker", broker.address, "--max-frames", "10")
            assert online.returncode == 0, online.stderr
            assert _wait_rows(db, "SELECT COUNT(*) FROM messages WHERE kind = 'death'", 2) == 2
        finally:
            stop(collector)
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0]
        sessions = conn.execute("SELECT COUNT(DISTINCT session_id) FROM messages").fetchone()[0]
        missing = conn.execute("SELECT missing FROM device_seq").fetchone()[0]
    assert stored == queued + (1 + 4 + 1) and sessions == 2 and missing == 0
