"""Retention: raw windows for days, hourly rollups for months, pruned without stalling ingest.

``edgeprobe collect --retain-raw 7d --retain-rollups 400d`` (the defaults) runs a pruner thread
on its own connection. Raw messages are aged by when the collector received them (a device
with a wrong clock cannot get its windows pruned on arrival, or kept forever), rollups by
their hour. Each transaction deletes at most ``chunk`` messages (with their child rows) or
``chunk`` (device, hour) pairs of a rollup, so a SQLite writer waits for the lock a few
milliseconds at most; between chunks the lock is free and ingest batches go first (on
PostgreSQL old rows and new ones never share a lock). Latest-state tables are never pruned: they
hold one row per device (or per device and stage, perturbation, suite).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgeprobe.collector import backend, tables
from edgeprobe.collector.rollups import ROLLUP_TABLES

log = logging.getLogger("edgeprobe.collector")

DEFAULT_RAW = "7d"
DEFAULT_ROLLUPS = "400d"
#: tables keyed by (device_id, msg_id) that go with their message (the browseable ones too: else they grow forever)
RAW_CHILDREN = ("latency", "robustness", "health", *tables.TABLES)


@dataclass
class Retention:
    raw_s: float
    rollups_s: float
    chunk: int = 500
    #: pause between chunks so the collector's batches get the write lock in between
    pause_s: float = 0.01


class Pruner:
    """Deletes what is past retention, ``chunk`` rows per transaction, on its own connection to ``db``."""

    def __init__(self, db: str | Callable[[], backend.Backend], retention: Retention):
        self.connect: Callable[[], backend.Backend] = (lambda: backend.connect(db)) if isinstance(db, str) else db
        self.retention = retention
        self.transactions = 0

    def prune(self, now: float | None = None) -> dict[str, int]:
        """One pass: everything past retention, in small transactions; returns rows deleted per table."""
        now = time.time() if now is None else now
        conn = self.connect()
        try:
            deleted = {"messages": 0, **{t: 0 for t in ROLLUP_TABLES}}
            raw_cutoff = dt.datetime.fromtimestamp(now - self.retention.raw_s, dt.timezone.utc).isoformat()
            while True:
                n = self._raw_chunk(conn, raw_cutoff)
                deleted["messages"] += n
                if n < self.retention.chunk:
                    break
                time.sleep(self.retention.pause_s)
            hour_cutoff = int((now - self.retention.rollups_s) // 3600 * 3600)
            for table in ROLLUP_TABLES:
                while True:
                    n = self._rollup_chunk(conn, table, hour_cutoff)
                    deleted[table] += n
                    if n == 0:
                        break
                    time.sleep(self.retention.pause_s)
            return deleted
        finally:
            conn.close()

    def _raw_chunk(self, conn: backend.Backend, cutoff: str) -> int:
        with conn.write():
            keys = [(d, m) for d, m in conn.execute(
                "SELECT device_id, msg_id FROM messages WHERE received_ts < ? ORDER BY received_ts LIMIT ?",
                (cutoff, self.retention.chunk)).fetchall()]
            if keys:
                for table in (*RAW_CHILDREN, "messages"):
                    conn.executemany(f"DELETE FROM {table} WHERE device_id = ? AND msg_id = ?", keys)
        self.transactions += 1
        return len(keys)

    def _rollup_chunk(self, conn: backend.Backend, table: str, hour_cutoff: int) -> int:
        """Up to ``chunk`` (device, hour) pairs of one rollup table (all their stages, perturbations, flags)."""
        with conn.write():
            pairs = [(d, int(h)) for d, h in conn.execute(
                f"SELECT DISTINCT device_id, hour FROM {table} WHERE hour < ? LIMIT ?",
                (hour_cutoff, self.retention.chunk)).fetchall()]
            n = 0
            for d, h in pairs:  # rowcount per statement: executemany's total is not the same on every driver
                n += conn.execute(f"DELETE FROM {table} WHERE device_id = ? AND hour = ?", (d, h)).rowcount
        self.transactions += 1
        return n

    def run(self, stop: threading.Event, every_s: float = 300.0) -> None:
        """Prune now and then every ``every_s`` until ``stop`` is set (the collector's pruner thread)."""
        while not stop.is_set():
            try:
                deleted = self.prune()
                if any(deleted.values()):
                    log.info("retention pruned %s", deleted)
            except Exception:  # the database away for a while: the next pass catches up
                log.exception("retention pass failed; trying again in %.0f s", every_s)
            stop.wait(every_s)
