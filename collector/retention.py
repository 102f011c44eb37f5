"""Retention: raw windows for days, hourly rollups for months, pruned without stalling ingest.

``edgeprobe collect --retain-raw 7d --retain-rollups 400d`` (the defaults) runs a pruner thread
on its own connection. Raw messages are aged by when the collector received them (a device
with a wrong clock cannot get its windows pruned on arrival, or kept forever), rollups by
their hour. Each transaction deletes at most ``chunk`` messages (with their child rows) or
rollup rows, so the writer waits for the lock a few milliseconds at most; between chunks
the lock is free and ingest batches go first. Latest-state tables are never pruned: they
hold one row per device (or per device and stage, perturbation, suite).
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgeprobe.collector.rollups import ROLLUP_TABLES

log = logging.getLogger("edgeprobe.collector")

DEFAULT_RAW = "7d"
DEFAULT_ROLLUPS = "400d"
#: child tables keyed by (device_id, msg_id) that go with their message
RAW_CHILDREN = ("latency", "robustness", "health")


@dataclass
class Retention:
    raw_s: float
    rollups_s: float
    chunk: int = 500
    #: pause between chunks so the collector's batches get the write lock in between
    pause_s: float = 0.01


class Pruner:
    """Deletes what is past retention, ``chunk`` rows per transaction (SQLite)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], retention: Retention):
        self.connect = connect
        self.retention = retention
        self.transactions = 0
        self._indexed = False

    def _ensure_index(self, conn: sqlite3.Connection) -> None:
        if not self._indexed:  # once, on a database from before retention (takes a while on a big one)
            with conn:
                conn.execute("CREATE INDEX IF NOT EXISTS messages_received_ts ON messages (received_ts)")
            self._indexed = True

    def prune(self, now: float | None = None) -> dict[str, int]:
        """One pass: everything past retention, in small transactions; returns rows deleted per table."""
        now = time.time() if now is None else now
        conn = self.connect()
        try:
            self._ensure_index(conn)
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
                    with conn:
                        cur = conn.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
                                           "WHERE hour < ? LIMIT ?)", (hour_cutoff, self.retention.chunk))
                    self.transactions += 1
                    deleted[table] += cur.rowcount
                    if cur.rowcount < self.retention.chunk:
                        break
                    time.sleep(self.retention.pause_s)
            return deleted
        finally:
            conn.close()

    def _raw_chunk(self, conn: sqlite3.Connection, cutoff: str) -> int:
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute("SELECT rowid, device_id, msg_id FROM messages WHERE received_ts < ? "
                                "ORDER BY received_ts LIMIT ?", (cutoff, self.retention.chunk)).fetchall()
            keys = [(d, m) for _, d, m in rows]
            for table in RAW_CHILDREN:
                conn.executemany(f"DELETE FROM {table} WHERE device_id = ? AND msg_id = ?", keys)
            conn.executemany("DELETE FROM messages WHERE rowid = ?", [(r,) for r, _, _ in rows])
        self.transactions += 1
        return len(rows)

    def run(self, stop: threading.Event, every_s: float = 300.0) -> None:
        """Prune now and then every ``every_s`` until ``stop`` is set (the collector's pruner thread)."""
        while not stop.is_set():
            try:
                deleted = self.prune()
                if any(deleted.values()):
                    log.info("retention pruned %s", deleted)
            except sqlite3.Error:
                log.exception("retention pass failed; trying again in %.0f s", every_s)
            stop.wait(every_s)


def sqlite_connect(path: str) -> Callable[[], sqlite3.Connection]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    return connect
