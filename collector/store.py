"""The collector's SQLite database, written with sqlite-utils.

One row per message in ``messages`` (primary key ``(device_id, msg_id)``: a
redelivered message changes nothing, and one device cannot shadow another's
message by reusing its id), typed child tables per kind for queries, a
``devices`` table kept current from birth/death/seq, and ``quarantine`` for
everything that failed validation, with the reason: one row per distinct
payload (sha256) with a count, capped by rows and bytes (oldest dropped, and
the number dropped kept in ``ingest_stats`` for the metrics).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import msgspec
import sqlite_utils

from edgeprobe.collector import rollups, tables
from edgeprobe.harness import schema

log = logging.getLogger("edgeprobe.collector")

#: raw payloads kept in quarantine are capped so a hostile client cannot fill the disk
QUARANTINE_MAX_BYTES = 64 * 1024
#: the whole quarantine is capped too: past either limit the oldest rows are dropped (and counted)
QUARANTINE_MAX_ROWS = 10_000
QUARANTINE_MAX_TOTAL_BYTES = 64 * 1024 * 1024


class Incoming(NamedTuple):
    """One message as the network thread hands it over (a tuple: built once per message, so cheap)."""

    topic: str
    payload: bytes
    received: dt.datetime


class Store:
    def __init__(self, path: str | Path, max_message_bytes: int = schema.DEFAULT_MAX_BYTES,
                 quarantine_max_rows: int = QUARANTINE_MAX_ROWS,
                 quarantine_max_bytes: int = QUARANTINE_MAX_TOTAL_BYTES):
        self.path = str(path)
        #: payloads over this are quarantined unread (their first QUARANTINE_MAX_BYTES kept)
        self.max_message_bytes = max_message_bytes
        self.quarantine_max_rows, self.quarantine_max_bytes = quarantine_max_rows, quarantine_max_bytes
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # The collector opens the store in one thread and writes from another;
        # only one thread at a time uses the connection.
        # timeout: several collectors (a shared subscription group) write to one file and queue for the lock
        self.db = sqlite_utils.Database(sqlite3.connect(self.path, check_same_thread=False, timeout=60))
        self.db.execute("PRAGMA busy_timeout=60000")
        # WAL, synchronous=FULL: every commit fsyncs the log before it returns, and the collector
        # acknowledges a batch to the broker only after that, so an acked message is on disk
        # even through a power cut. NORMAL would skip that fsync (synced only at checkpoints):
        # the file stays consistent and a killed collector loses nothing (the OS holds the
        # write), but a power cut could drop the last commits whose messages were already acked
        # and so deleted at the broker -- lost for good, not redelivered. FULL costs one fsync per
        # batch (hundreds of messages), a few us per message, and the network thread keeps
        # receiving during it (the GIL is released); measured in benchmarks/ingest.py.
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self._create()

    def _create(self) -> None:
        db = self.db
        db.table("messages").create({
            "msg_id": str, "device_id": str, "fleet": str, "kind": str, "seq": int, "ts": str,
            "session_id": str, "model_sha256": str, "config_sha256": str, "agent_version": str,
            "topic": str, "received_ts": str, "body": str,
        }, pk=("device_id", "msg_id"), if_not_exists=True)
        db.table("latency").create({
            "msg_id": str, "device_id": str, "ts": str, "stage": str, "count": int, "p50_ms": float,
            "p90_ms": float, "p95_ms": float, "p99_ms": float, "max_ms": float, "mean_ms": float,
            "stdev_ms": float, "hdr": str,
        }, pk=("device_id", "msg_id", "stage"), if_not_exists=True)
        db.table("robustness").create({
            "msg_id": str, "device_id": str, "ts": str, "perturbation": str, "severity": float, "n": int,
            "unstable": int, "fraction": float, "ci_low": float, "ci_high": float,
            "mean_disagreement": float,
        }, pk=("device_id", "msg_id", "perturbation", "severity"), if_not_exists=True)
        db.table("health").create({
            "msg_id": str, "device_id": str, "ts": str, "frames": int, "fps": float, "brightness": float,
            "contrast": float, "sharpness": float, "clipped": float, "frozen_frames": int,
            "spool_queued": int, "spool_dropped": int, "flags": str, **_HEALTH_EXTRA,
        }, pk=("device_id", "msg_id"), if_not_exists=True)
        health_cols = db.table("health").columns_dict
        for column, kind in _HEALTH_EXTRA.items():  # a database from before these columns
            if column not in health_cols:
                try:
                    db.table("health").add_column(column, kind)
                except sqlite3.OperationalError as exc:  # another collector of the group added it first
                    if "duplicate column" not in str(exc):
                        raise
        db.table("devices").create({
            "device_id": str, "fleet": str, "online": int, "last_seen": str, "session_id": str,
            "last_seq": int, "model_sha256": str, "agent_version": str, "birth_ts": str,
            "config_sha256": str, "state_ts": str, "sessions": int,
        }, pk="device_id", if_not_exists=True)
        # received_ts: the latest arrival of this payload; first_ts: the first; count: how many arrived
        db.table("quarantine").create({
            "id": int, "received_ts": str, "topic": str, "reason": str, "payload": str, "payload_bytes": int,
            "payload_sha256": str, "count": int, "first_ts": str,
        }, pk="id", if_not_exists=True)
        quarantine = db.table("quarantine")
        for column, kind in (("payload_sha256", str), ("count", int), ("first_ts", str)):  # a pre-dedup database
            if column not in quarantine.columns_dict:
                quarantine.add_column(column, kind)
        quarantine.create_index(["payload_sha256"], unique=True, if_not_exists=True)
        db.table("ingest_stats").create({"name": str, "value": int}, pk="name", if_not_exists=True)
        for table, cols in (("messages", ["msg_id"]), ("messages", ["device_id", "kind"]),
                            ("latency", ["device_id", "stage"]), ("robustness", ["device_id", "perturbation"]),
                            ("health", ["device_id"])):
            db.table(table).create_index(cols, if_not_exists=True)
        # Gaps in a device's seq: messages it numbered that never arrived.
        db.create_view("device_seq", """
            SELECT device_id, MIN(seq) AS first_seq, MAX(seq) AS last_seq,
                   COUNT(DISTINCT seq) AS received,
                   MAX(seq) - MIN(seq) + 1 - COUNT(DISTINCT seq) AS missing
            FROM messages GROUP BY device_id""", replace=True)
        rollups.create(db.conn)
        tables.create(db.conn)

    # --- ingest ------------------------------------------------------------

    def ingest(self, batch: Sequence[Incoming]) -> tuple[int, int]:
        """Validate and store a batch; returns (stored, quarantined). Never raises for the input.

        Every message ends stored (or already stored: a redelivery) or quarantined
        with its reason. Anything that goes wrong decoding one message quarantines
        that message; a batch whose insert fails is split in halves until the
        message that fails is alone, and that one is quarantined, so one poison
        message never holds up the others (and is never retried). Only the
        database itself failing (locked past the busy timeout, disk full, I/O:
        ``sqlite3.OperationalError``) raises, because then nothing could be stored
        or quarantined, and the collector leaves the batch unacknowledged.
        """
        good: list[tuple[Incoming, schema.Envelope, msgspec.Struct]] = []
        bad: list[dict[str, Any]] = []
        for item in batch:
            if item.topic.endswith("/cmd"):  # commands to devices share the collector's subscription: not data
                continue
            try:
                env, body = schema.decode_message(item.payload, item.topic, self.max_message_bytes)
            except schema.SchemaViolation as exc:
                bad.append(_quarantine_row(item, str(exc)))
            except Exception as exc:  # a decoder bug or an input nobody foresaw: the message's fault, not ours
                bad.append(_quarantine_row(item, f"could not decode ({type(exc).__name__}: {exc})"))
            else:
                good.append((item, env, body))
        return self._commit_isolating(good, bad)

    def _commit_isolating(self, good: list[tuple[Incoming, schema.Envelope, msgspec.Struct]],
                          bad: list[dict[str, Any]]) -> tuple[int, int]:
        try:
            return self._commit(good, bad)
        except sqlite3.OperationalError:
            raise
        except Exception as exc:
            if not good:  # the quarantine rows themselves: keep only what cannot fail (reason, size)
                return self._commit([], [_bare_quarantine_row(row) for row in bad])
            if len(good) == 1:
                item = good[0][0]
                log.warning("quarantined a message from %r that could not be stored: %s", item.topic[:128], exc)
                return self._commit_isolating(
                    [], [*bad, _quarantine_row(item, f"could not be stored ({type(exc).__name__}: {exc})")])
            mid = len(good) // 2
            s1, q1 = self._commit_isolating(good[:mid], bad)
            s2, q2 = self._commit_isolating(good[mid:], [])
            return s1 + s2, q1 + q2

    def _commit(self, good: list[tuple[Incoming, schema.Envelope, msgspec.Struct]],
                bad: list[dict[str, Any]]) -> tuple[int, int]:
        """One transaction: new messages and quarantine rows, all or nothing."""
        with self.db.conn:
            # Take the write lock before reading which ids are new, so two collectors
            # cannot both decide a redelivered msg_id is theirs to store.
            self.db.conn.execute("BEGIN IMMEDIATE")
            stored = self._stored_keys(good)
            fresh = []
            for row in good:  # the same message twice inside one batch: keep the first
                key = (row[1].device_id, row[1].msg_id)
                if key not in stored:
                    stored.add(key)
                    fresh.append(row)
            self._insert(fresh)
            if bad:
                self._quarantine(bad)
        return len(fresh), len(bad)

    def _quarantine(self, rows: list[dict[str, Any]]) -> None:
        """Upsert by payload hash (a repeat only counts), then drop the oldest rows past the caps."""
        conn = self.db.conn
        conn.executemany(_QUARANTINE_UPSERT, rows)
        n, size = conn.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM quarantine").fetchone()
        if n <= self.quarantine_max_rows and size <= self.quarantine_max_bytes:
            return
        # newest first, keep while both caps hold; everything older goes
        keep_bytes = 0
        cut: int | None = None
        newest_first = conn.execute("SELECT id, LENGTH(payload) FROM quarantine ORDER BY id DESC")
        for kept, (row_id, length) in enumerate(newest_first):
            if kept + 1 > self.quarantine_max_rows or keep_bytes + (length or 0) > self.quarantine_max_bytes:
                cut = row_id
                break
            keep_bytes += length or 0
        if cut is None:
            return
        dropped = conn.execute("DELETE FROM quarantine WHERE id <= ?", (cut,)).rowcount
        conn.execute("INSERT INTO ingest_stats (name, value) VALUES ('quarantine_dropped', ?) "
                     "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (dropped,))

    def quarantine_stats(self) -> dict[str, int]:
        """Rows kept, messages they stand for, and rows dropped by the caps (for the collector's metrics)."""
        return quarantine_stats(self.db.conn)

    def _stored_keys(self, rows: list[tuple[Incoming, schema.Envelope, msgspec.Struct]]) -> set[tuple[str, str]]:
        """(device_id, msg_id) of the rows already stored: their redelivery changes nothing."""
        if not rows:
            return set()
        ids = list({env.msg_id for _, env, _ in rows})
        marks = ",".join("?" * len(ids))
        return {(r[0], r[1]) for r in self.db.execute(
            f"SELECT device_id, msg_id FROM messages WHERE msg_id IN ({marks})", ids)}

    def _insert(self, rows: list[tuple[Incoming, schema.Envelope, msgspec.Struct]]) -> None:
        """Rows as positional tuples for fixed statements: no per-message dicts (profiled hot path)."""
        messages: list[tuple[Any, ...]] = []
        latency: list[tuple[Any, ...]] = []
        robustness: list[tuple[Any, ...]] = []
        health: list[tuple[Any, ...]] = []
        devices: list[tuple[schema.Envelope, str]] = []
        received: dict[dt.datetime, str] = {}  # a batch arrives within a few instants: format each once
        for item, env, body in rows:
            msg_id, device_id, ts = env.msg_id, env.device_id, env.ts.isoformat()
            rts = received.get(item.received)
            if rts is None:
                rts = received[item.received] = item.received.isoformat()
            messages.append((msg_id, device_id, env.fleet, env.kind, env.seq, ts, env.session_id,
                             env.model_sha256, env.config_sha256, env.agent_version, item.topic, rts,
                             _json(env.body)))
            devices.append((env, ts))
            if isinstance(body, schema.HealthBody):
                w = body.window
                health.append((msg_id, device_id, ts, w.frames, _r(body.fps, 2), _r(body.brightness, 2),
                               _r(body.contrast, 2), _r(body.sharpness, 2), _r(body.clipped, 4), body.frozen_frames,
                               body.spool_queued, body.spool_dropped, _json(body.flags), w.start_ts.isoformat(),
                               round((w.end_ts - w.start_ts).total_seconds(), 3), _r(body.noise, 2),
                               _r(body.occlusion, 4), body.replaying_frames, body.replay_lag, body.band_source,
                               _json(body.alerts)))  # JSON lists: a flag may contain ","
            elif isinstance(body, schema.LatencyBody):
                for stage, s in body.stages.items():
                    latency.append((msg_id, device_id, ts, stage, s.count, s.p50, s.p90, s.p95, s.p99, s.max,
                                    s.mean, s.stdev, s.hdr))
            elif isinstance(body, schema.RobustnessBody):
                for c in body.cells:
                    robustness.append((msg_id, device_id, ts, c.perturbation, c.severity, c.n, c.unstable,
                                       c.fraction, c.ci_low, c.ci_high, c.mean_disagreement))
        conn = self.db.conn
        if messages:
            conn.executemany(_INSERT["messages"], messages)
        self._track_devices(devices)
        for table, data in (("latency", latency), ("robustness", robustness), ("health", health)):
            if data:
                conn.executemany(_INSERT[table], data)
        rollups.write(conn, rollups.fold(rows))
        tables.write(conn, rows)

    def _track_devices(self, envs: list[tuple[schema.Envelope, str]]) -> None:
        """Fold a batch into one upsert per device, without reading the table first.

        ``envs`` pairs each envelope with its ``ts`` already formatted. The SQL
        keeps the newest of what is stored and what arrives (last seen, last
        seq, online state by the lifecycle message's own timestamp), so batches
        may land out of order and from several collectors at once. Gaps in
        ``seq`` are derived from stored rows by the ``device_seq`` view.
        """
        rows: dict[str, dict[str, Any]] = {}
        for env, ts in envs:
            row = rows.get(env.device_id)
            if row is None:
                row = rows[env.device_id] = {
                    "device_id": env.device_id, "fleet": env.fleet, "last_seen": ts, "last_seq": env.seq,
                    "online": None, "state_ts": None, "session_id": None, "model_sha256": None,
                    "agent_version": None, "config_sha256": None, "birth_ts": None}
            else:
                if ts > row["last_seen"]:
                    row["last_seen"] = ts
                if env.seq > row["last_seq"]:
                    row["last_seq"] = env.seq
            kind = env.kind
            if kind == "birth" or kind == "death":
                if row["state_ts"] is None or ts >= row["state_ts"]:
                    row["online"], row["state_ts"] = int(kind == "birth"), ts
                if kind == "birth" and (row["birth_ts"] is None or ts >= row["birth_ts"]):
                    row.update(session_id=env.session_id, model_sha256=env.model_sha256,
                               agent_version=env.agent_version, config_sha256=env.config_sha256, birth_ts=ts)
        if rows:
            self.db.conn.executemany(_DEVICE_UPSERT, list(rows.values()))

    def counts(self) -> dict[str, int]:
        return {t: self.db.table(t).count for t in ("messages", "latency", "robustness", "health", "quarantine")}

    def close(self) -> None:
        self.db.close()


#: the hot tables' columns, in the order ``Store._insert`` builds its tuples
_COLUMNS = {
    "messages": ("msg_id", "device_id", "fleet", "kind", "seq", "ts", "session_id", "model_sha256",
                 "config_sha256", "agent_version", "topic", "received_ts", "body"),
    "latency": ("msg_id", "device_id", "ts", "stage", "count", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms",
                "mean_ms", "stdev_ms", "hdr"),
    "robustness": ("msg_id", "device_id", "ts", "perturbation", "severity", "n", "unstable", "fraction", "ci_low",
                   "ci_high", "mean_disagreement"),
    "health": ("msg_id", "device_id", "ts", "frames", "fps", "brightness", "contrast", "sharpness", "clipped",
               "frozen_frames", "spool_queued", "spool_dropped", "flags", "window_start", "window_s", "noise",
               "occlusion", "replaying_frames", "replay_lag", "band_source", "alerts"),
}
#: health columns added after the first release (window span, every statistic and the open alerts)
_HEALTH_EXTRA: dict[str, type] = {"window_start": str, "window_s": float, "noise": float, "occlusion": float,
                                  "replaying_frames": int, "replay_lag": int, "band_source": str, "alerts": str}


def _r(x: float | None, digits: int) -> float | None:
    """A figure rounded where its precision ends (17-digit floats only make the tables hard to read)."""
    return None if x is None else round(x, digits)
# One prepared statement per table over a whole batch (executemany): sqlite-utils'
# insert_all inspects and converts every value of every row, which was 70 % of the
# collector's time (profiled with benchmarks/ingest.py). ``messages`` is a plain
# INSERT (new ids are chosen under the write lock first); child rows are keyed by
# msg_id, so OR IGNORE makes a redelivery a no-op.
_INSERT = {
    table: f"{'INSERT' if table == 'messages' else 'INSERT OR IGNORE'} INTO [{table}] "
           f"({', '.join(f'[{c}]' for c in cols)}) VALUES ({', '.join('?' * len(cols))})"
    for table, cols in _COLUMNS.items()
}

_DEVICE_UPSERT = """
INSERT INTO devices (device_id, fleet, online, last_seen, last_seq, state_ts, session_id, model_sha256,
                     agent_version, config_sha256, birth_ts, sessions)
VALUES (:device_id, :fleet, COALESCE(:online, 1), :last_seen, :last_seq, :state_ts, :session_id, :model_sha256,
        :agent_version, :config_sha256, :birth_ts, :birth_ts IS NOT NULL)
ON CONFLICT(device_id) DO UPDATE SET
    fleet = excluded.fleet,
    last_seen = MAX(COALESCE(last_seen, ''), excluded.last_seen),
    last_seq = MAX(COALESCE(last_seq, -1), excluded.last_seq),
    online = CASE WHEN excluded.state_ts >= COALESCE(state_ts, '') THEN excluded.online ELSE online END,
    state_ts = CASE WHEN excluded.state_ts >= COALESCE(state_ts, '') THEN excluded.state_ts ELSE state_ts END,
    sessions = COALESCE(sessions, 0) + COALESCE(excluded.birth_ts >= COALESCE(birth_ts, '')
                                                 AND excluded.session_id IS NOT COALESCE(session_id, ''), 0),
    session_id = CASE WHEN excluded.birth_ts >= COALESCE(birth_ts, '') THEN excluded.session_id ELSE session_id END,
    model_sha256 = CASE WHEN excluded.birth_ts >= COALESCE(birth_ts, '') THEN excluded.model_sha256
                        ELSE model_sha256 END,
    agent_version = CASE WHEN excluded.birth_ts >= COALESCE(birth_ts, '') THEN excluded.agent_version
                         ELSE agent_version END,
    config_sha256 = CASE WHEN excluded.birth_ts >= COALESCE(birth_ts, '') THEN excluded.config_sha256
                         ELSE config_sha256 END,
    birth_ts = COALESCE(MAX(birth_ts, excluded.birth_ts), birth_ts, excluded.birth_ts)
"""

_json_encoder = msgspec.json.Encoder()


def _json(value: Any) -> str:
    return _json_encoder.encode(value).decode()


def _text(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters and made storable (a lone surrogate cannot be UTF-8 encoded)."""
    return value[:limit].encode("utf-8", errors="replace").decode("utf-8")


def _quarantine_row(item: Incoming, reason: str) -> dict[str, Any]:
    raw = item.payload[:QUARANTINE_MAX_BYTES]
    return {"received_ts": item.received.isoformat(), "topic": _text(item.topic, 512), "reason": _text(reason, 1000),
            "payload": raw.decode("utf-8", errors="replace"), "payload_bytes": len(item.payload),
            "payload_sha256": hashlib.sha256(item.payload).hexdigest()}


def _bare_quarantine_row(row: dict[str, Any]) -> dict[str, Any]:
    """What is left of a quarantine row that could not be stored: when, how big, and that it was unstorable."""
    return {"received_ts": str(row.get("received_ts", ""))[:64], "topic": "", "payload": "",
            "reason": "quarantine row could not be stored", "payload_bytes": int(row.get("payload_bytes", 0)),
            "payload_sha256": str(row.get("payload_sha256", ""))[:64]}


def quarantine_stats(conn: sqlite3.Connection) -> dict[str, int]:
    """Quarantine rows kept, messages they stand for, rows dropped by the caps (read by collector/prometheus.py)."""
    rows, messages = conn.execute("SELECT COUNT(*), COALESCE(SUM(count), 0) FROM quarantine").fetchone()
    try:
        found = conn.execute("SELECT value FROM ingest_stats WHERE name = 'quarantine_dropped'").fetchone()
    except sqlite3.OperationalError:  # a database from before the caps
        found = None
    return {"rows": int(rows), "messages": int(messages), "dropped": int(found[0]) if found else 0}


_QUARANTINE_UPSERT = """
INSERT INTO quarantine (received_ts, first_ts, topic, reason, payload, payload_bytes, payload_sha256, count)
VALUES (:received_ts, :received_ts, :topic, :reason, :payload, :payload_bytes, :payload_sha256, 1)
ON CONFLICT(payload_sha256) DO UPDATE SET count = count + 1,
    received_ts = MAX(received_ts, excluded.received_ts)
"""
