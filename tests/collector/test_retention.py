"""Retention prunes raw windows and rollups past their age in small transactions, keeps everything newer,
and leaves the latest-state tables (and so fleet status) whole; ingest runs while it prunes."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from benchmarks.fleet_synth import stream
from edgeprobe.collector import queries
from edgeprobe.collector.retention import Pruner, Retention
from edgeprobe.collector.store import Incoming, Store
from edgeprobe.collector.timerange import TimeRange
from tests.conftest import Databases, assert_clean_error, run_cli

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone.utc)


def _ingest_at(store: Store, start: dt.datetime, hours: float, received: dt.datetime, every_s: float = 1200,
               seed: int = 0) -> None:
    for tick in stream(3, start, hours=hours, every_s=every_s, seed=seed):
        # the collector stamps arrival; a replay of old windows arrives "now"
        store.ingest([Incoming(m.topic, m.payload, received) for m in tick])


def test_prune_keeps_what_is_young_and_deletes_in_small_chunks(databases: Databases) -> None:
    path = databases.fresh()
    store = Store(path)
    c = store.db
    old, young = NOW - dt.timedelta(days=10), NOW - dt.timedelta(hours=3)
    _ingest_at(store, old, 2, old + dt.timedelta(hours=2))
    _ingest_at(store, young, 2, young + dt.timedelta(hours=2), seed=1)
    before = {t: c.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("messages", "latency", "health", "rollup_latency", "drift")}
    young_msgs = c.execute("SELECT COUNT(*) FROM messages WHERE received_ts >= ?",
                           [(NOW - dt.timedelta(days=7)).isoformat()]).fetchone()[0]
    pruner = Pruner(path, Retention(raw_s=7 * 86400, rollups_s=400 * 86400, chunk=7))
    deleted = pruner.prune(NOW.timestamp())
    assert deleted["messages"] == before["messages"] - young_msgs > 0
    assert pruner.transactions >= deleted["messages"] // 7  # never more than a chunk per transaction
    assert c.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == young_msgs
    assert c.execute("SELECT MIN(received_ts) FROM messages").fetchone()[0] >= (
        NOW - dt.timedelta(days=7)).isoformat()
    # no orphaned child rows (the browseable tables' included), and the old hours' rollups are still there (400 d)
    for t in ("latency", "robustness", "health", "events", "drift", "verdicts"):
        assert c.execute(f"SELECT COUNT(*) FROM {t} x LEFT JOIN messages m USING (device_id, msg_id) "
                         "WHERE m.msg_id IS NULL").fetchone()[0] == 0
    assert c.execute("SELECT COUNT(*) FROM latency").fetchone()[0] < before["latency"]
    assert 0 < c.execute("SELECT COUNT(*) FROM drift").fetchone()[0] < before["drift"]
    assert c.execute("SELECT COUNT(*) FROM rollup_latency").fetchone()[0] == before["rollup_latency"]
    old_range = TimeRange.of(old.timestamp(), (old + dt.timedelta(hours=3)).timestamp())
    assert {r["device_id"] for r in queries.latency_summary(store.db, tr=old_range)} == {
        "cam-0000", "cam-0001", "cam-0002"}
    # rollups past their own retention go too; latest state stays
    deleted = Pruner(path, Retention(raw_s=86400, rollups_s=86400, chunk=5)).prune(
        NOW.timestamp())
    assert deleted["rollup_latency"] > 0
    assert queries.latency_summary(store.db, tr=old_range) == []
    assert len(queries.fleet_status(store.db)) == 3 and all(
        r["health_ts"] for r in queries.fleet_status(store.db))
    store.close()


def test_ingest_goes_on_while_pruning(databases: Databases) -> None:
    path = databases.fresh()
    store = Store(path)
    old = NOW - dt.timedelta(days=30)
    _ingest_at(store, old, 6, old, every_s=300)
    pruner = Pruner(path, Retention(raw_s=7 * 86400, rollups_s=400 * 86400, chunk=20,
                                                         pause_s=0.0))
    result: dict[str, int] = {}
    t = threading.Thread(target=lambda: result.update(pruner.prune(NOW.timestamp())))
    t.start()
    _ingest_at(store, NOW - dt.timedelta(hours=1), 1, NOW, every_s=600, seed=7)  # interleaves with the chunks
    t.join(timeout=120)
    assert not t.is_alive() and result["messages"] > 0
    c = store.db
    assert c.execute("SELECT COUNT(*) FROM messages WHERE received_ts < ?",
                     [(NOW - dt.timedelta(days=7)).isoformat()]).fetchone()[0] == 0
    assert c.execute("SELECT COUNT(*) FROM messages WHERE received_ts = ?", [NOW.isoformat()]).fetchone()[0] > 0
    store.close()


def test_bad_retention_is_one_sentence(tmp_path: Path) -> None:
    for args, word in ((["--retain-raw", "forever"], "--retain-raw"),
                       (["--retain-raw", "30d", "--retain-rollups", "7d"], "shorter")):
        r = run_cli("collect", "--db", str(tmp_path / "f.db"), *args)
        assert_clean_error(r, word)
