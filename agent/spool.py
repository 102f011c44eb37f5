"""The durable outbox every result goes through before it leaves the device.

SQLite in WAL mode: the measuring thread appends, the publisher thread reads
and deletes, and neither blocks the other for long. A row leaves only after
the broker acknowledged it (PUBACK) and then held it for a while (see
`agent/publisher.py`): until then it is kept as *acked* and sent again after
any reconnect, because a broker may acknowledge a message before it has
saved it. So a crash, a reboot or a week offline loses nothing that fits in
the bounds. When the bounds are reached, acked rows go first (they were
delivered once already), then the oldest unsent rows, which are counted, and
the count travels in `health`.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edgeprobe.harness.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL DEFAULT 1,
    retain INTEGER NOT NULL DEFAULT 0,
    acked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class SpoolRow:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Spool:
    """A bounded, durable FIFO of MQTT messages.

    Each thread gets its own SQLite connection (sqlite3 connections must not
    be shared across threads); all of them point at the same WAL file.
    """

    def __init__(self, path: str | Path, max_rows: int = 100_000, max_bytes: int = 256 << 20,
                 exclusive: bool = False):
        self.path = str(path)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self._local = threading.local()
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock(self.path) if exclusive else None
        with self._conn() as db:
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            if "acked" not in columns:  # a spool written by a version that deleted on PUBACK
                db.execute("ALTER TABLE outbox ADD COLUMN acked INTEGER NOT NULL DEFAULT 0")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def next_seq(self) -> int:
        """Per-device message counter; survives restarts so gaps stay visible."""
        db = self._conn()
        with _tx(db):
            db.execute("INSERT INTO counters VALUES ('seq', 0) ON CONFLICT(name) DO UPDATE SET value = value + 1")
            (value,) = db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
        return int(value)

    def put_numbered(self, topic: str, make_payload: Callable[[int], bytes], qos: int = 1,
                     retain: bool = False) -> int:
        """Take the next seq and spool the payload built with it in ONE transaction.

        A crash between the two would otherwise burn a seq with no message
        behind it, and the collector would report a loss that never happened.
        """
        db = self._conn()
        with _tx(db):
            db.execute("INSERT INTO counters VALUES ('seq', 0) ON CONFLICT(name) DO UPDATE SET value = value + 1")
            (seq,) = db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
            db.execute("INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
                       (topic, make_payload(int(seq)), qos, int(retain)))
            self._enforce_bounds(db)
        return int(seq)

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        db = self._conn()
        with _tx(db):
            db.execute("INSERT INTO outbox (topic, payload, qos, retain) VALUES (?, ?, ?, ?)",
                       (topic, payload, qos, int(retain)))
            self._enforce_bounds(db)

    def _enforce_bounds(self, db: sqlite3.Connection) -> None:
        rows, size = db.execute("SELECT COUNT(*), TOTAL(LENGTH(payload)) FROM outbox").fetchone()
        dropped = 0
        while rows > self.max_rows or (size > self.max_bytes and rows > 1):
            # acked rows first: the broker has them; only an unsent row lost is a drop
            oldest = db.execute("SELECT id, LENGTH(payload), acked FROM outbox "
                                "ORDER BY acked DESC, id LIMIT 1").fetchone()
            db.execute("DELETE FROM outbox WHERE id = ?", (oldest[0],))
            rows -= 1
            size -= oldest[1]
            dropped += 0 if oldest[2] else 1
        if dropped:
            db.execute(
                "INSERT INTO counters VALUES ('dropped', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (dropped,),
            )

    def peek(self, limit: int, exclude: set[int] | None = None) -> list[SpoolRow]:
        """Oldest unacknowledged rows first, skipping ids already in flight."""
        db = self._conn()
        rows = db.execute(
            "SELECT id, topic, payload, qos, retain FROM outbox WHERE acked = 0 ORDER BY id LIMIT ?",
            (limit + len(exclude or ()),),
        ).fetchall()
        out = [SpoolRow(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows if r[0] not in (exclude or ())]
        return out[:limit]

    def delete(self, ids: list[int]) -> None:
        self._each_row("DELETE FROM outbox WHERE id = ?", ids)

    def mark_acked(self, ids: list[int]) -> None:
        """The broker acknowledged these: keep them, but stop sending them."""
        self._each_row("UPDATE outbox SET acked = 1 WHERE id = ?", ids)

    def _each_row(self, sql: str, ids: list[int]) -> None:
        if ids:
            db = self._conn()
            with _tx(db):
                db.executemany(sql, [(i,) for i in ids])

    def requeue_acked(self) -> int:
        """Make every kept acked row unsent again (after a reconnect); returns how many."""
        db = self._conn()
        with _tx(db):
            return db.execute("UPDATE outbox SET acked = 0 WHERE acked = 1").rowcount

    def pending(self) -> int:
        """Rows the broker has not acknowledged yet (acked rows held back are not pending)."""
        (n,) = self._conn().execute("SELECT COUNT(*) FROM outbox WHERE acked = 0").fetchone()
        return int(n)

    def held(self) -> int:
        """Acked rows kept until the broker has held them long enough to have saved them."""
        (n,) = self._conn().execute("SELECT COUNT(*) FROM outbox WHERE acked = 1").fetchone()
        return int(n)

    def dropped(self) -> int:
        row = self._conn().execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        if self._lock_file is not None:
            self._lock_file.close()  # (closing the file releases the lock)
            self._lock_file = None


def _lock(path: str) -> IO[bytes]:
    """Hold ``path.lock`` for as long as this spool is open: one agent (or attached app) per spool.

    Two on one spool share its sequence counter, so each device's ``seq`` shows gaps the collector reports as
    lost messages, and each publishes the other's rows. (A file object, so a spool dropped without close()
    still lets go when it is collected.)
    """
    f = open(path + ".lock", "a+b")  # noqa: SIM115 (held open on purpose, closed by Spool.close)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read(32).decode("ascii", "replace").strip() or "another process"
        f.close()
        raise ConfigError(f"spool {path} is in use by {holder}; give each agent and each attached app its own "
                          "spool.path") from None
    f.truncate(0)
    f.write(f"pid {os.getpid()}".encode())
    f.flush()
    return f


class _tx:
    """BEGIN IMMEDIATE ... COMMIT, so concurrent writers queue instead of failing."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
