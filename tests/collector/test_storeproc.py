"""The store process keeps Store.ingest's contract: same rows, same counts, and a dead child is replaced.

``edgeprobe collect`` stores through collector/storeproc.py (a child process, so paho's network
thread and the store hold a GIL each); what it stores must be what an in-process Store stores, and
a child that dies must cost a retry of one batch, never the batch.
"""

from __future__ import annotations

import datetime as dt
import os
import signal

import pytest

from edgeprobe.collector.store import Incoming, Store
from edgeprobe.collector.storeproc import StoreFailed, StoreProcess
from edgeprobe.harness import schema
from tests.conftest import Databases

NOW = dt.datetime(2026, 2, 3, 12, 0, 0, 123456, tzinfo=dt.timezone.utc)


def _batch(n: int, start: int = 0) -> list[Incoming]:
    out = []
    for i in range(start, start + n):
        body = {"type": "tick", "message": f"m{i}"}
        msg = schema.make_envelope(kind="event", device_id=f"cam-{i % 3}", fleet="f", session_id="s", seq=i,
                                   body=body, model_sha256="a" * 64, config_sha256="b" * 64)
        out.append(Incoming(schema.topic_for("f", f"cam-{i % 3}", "event"), schema.encode(msg),
                            NOW + dt.timedelta(microseconds=i)))
    out.append(Incoming("edgeprobe/v1/f/cam-0/event", b"{not json", NOW))
    return out


def _rows(db: str) -> list[tuple[object, ...]]:
    store = Store(db)
    rows = [tuple(r) for r in store.db.execute(
        "SELECT msg_id, device_id, seq, ts, received_ts, body FROM messages ORDER BY seq").fetchall()]
    rows += [tuple(r) for r in store.db.execute("SELECT reason, payload, count FROM quarantine").fetchall()]
    store.close()
    return rows


def test_the_store_process_stores_what_the_store_stores(databases: Databases) -> None:
    batch = _batch(40)
    here = databases.fresh()
    store = Store(here)
    assert store.ingest(batch) == (40, 1)
    assert store.ingest(batch[-5:]) == (0, 1)  # redelivered: nothing new; the bad payload counted again
    store.close()
    want = _rows(here)
    there = databases.fresh()
    Store(there).close()
    proc = StoreProcess(there)
    try:
        assert proc.ingest(batch) == (40, 1)
        assert proc.ingest(batch[-5:]) == (0, 1)
    finally:
        proc.close()
    assert _rows(there) == want


def test_a_store_process_that_died_is_started_again_and_its_batch_is_retried(databases: Databases) -> None:
    db = databases.fresh()
    Store(db).close()
    proc = StoreProcess(db)
    try:
        assert proc.ingest(_batch(3)) == (3, 1)
        pid = proc.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        batch = _batch(3, start=3)
        try:  # seen dead before the batch: a new child takes it
            stored = proc.ingest(batch)
        except StoreFailed:  # died under the batch: started again, the batch raised, so the collector retries it
            stored = proc.ingest(batch)
        assert stored == (3, 1)
        assert proc.pid not in (None, pid)
    finally:
        proc.close()
    assert len([r for r in _rows(db) if len(r) == 6]) == 6


def test_a_batch_the_child_cannot_take_raises_and_leaves_the_child_serving(tmp_path: os.PathLike[str]) -> None:
    db = str(tmp_path) + "/f.db"
    Store(db).close()
    proc = StoreProcess(db)
    try:
        with pytest.raises(StoreFailed, match="TypeError"):
            proc.ingest([("only", "two")])  # type: ignore[list-item]  # not an Incoming: Incoming(*item) refuses it
        assert proc.ingest(_batch(2)) == (2, 1)
    finally:
        proc.close()
