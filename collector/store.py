"""The collector's database: validation, dedupe, quarantine, and what each stored message updates.

The same on every backend (collector/backend.py: a SQLite file, the embedded default, or PostgreSQL
for several collectors). One row per message in ``messages`` (primary key ``(device_id, msg_id)``: a
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

from edgeprobe.collector import backend, rollups, tables
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
    """Validates and stores batches; the same semantics on every backend (collector/backend.py)."""

    def __init__(self, db: str | Path, max_message_bytes: int = schema.DEFAULT_MAX_BYTES,
                 quarantine_max_rows: int = QUARANTINE_MAX_ROWS,
                 quarantine_max_bytes: int = QUARANTINE_MAX_TOTAL_BYTES):
        self.path = str(db)
        #: payloads over this are quarantined unread (their first QUARANTINE_MAX_BYTES kept)
        self.max_message_bytes = max_message_bytes
        self.quarantine_max_rows, self.quarantine_max_bytes = quarantine_max_rows, quarantine_max_bytes
        self.backend = backend.connect(self.path)
        #: what queries read through: ``execute(sql, params)`` with ``?`` placeholders on every backend
        self.db = self.backend.db
        with self.backend.schema():
            self._create()

    def _create(self) -> None:
        b = self.backend
        for name, cols in CORE_TABLES.items():
            b.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
        for table, added in (("health", _HEALTH_EXTRA), ("quarantine", _QUARANTINE_EXTRA)):
            have = b.columns(table)  # a database from before these columns
            for column, kind in added.items():
                if column not in have:
                    try:
                        b.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                    except sqlite3.OperationalError as exc:  # another collector of the group added it first
                        if "duplicate column" not in str(exc):
                            raise
        b.execute("CREATE UNIQUE INDEX IF NOT EXISTS idx_quarantine_payload_sha256 ON quarantine (payload_sha256)")
        for name, on in (("latency", ["device_id", "stage"]), ("robustness", ["device_id", "perturbation"])):
            b.execute(f"CREATE INDEX IF NOT EXISTS idx_{name}_{'_'.join(on)} ON {name} ({', '.join(on)})")
        for index in _UNUSED_INDEXES:  # databases from before: each cost every insert a B-tree write
            b.execute(f"DROP INDEX IF EXISTS {index}")
        # retention ages raw windows by arrival
        b.execute("CREATE INDEX IF NOT EXISTS messages_received_ts ON messages (received_ts)")
        # Gaps in a device's seq: messages it numbered that never arrived.
        b.create_view("device_seq", """
            SELECT device_id, MIN(seq) AS first_seq, MAX(seq) AS last_seq,
                   COUNT(DISTINCT seq) AS received,
                   MAX(seq) - MIN(seq) + 1 - COUNT(DISTINCT seq) AS missing
            FROM messages GROUP BY device_id""")
        rollups.create(b)
        tables.create(b)

    # --- ingest ------------------------------------------------------------

    def ingest(self, batch: Sequence[Incoming]) -> tuple[int, int]:
        """Validate and store a batch; returns (stored, quarantined). Never raises for the input.

        Every message ends stored (or already stored: a redelivery) or quarantined
        with its reason. Anything that goes wrong decoding one message quarantines
        that message; a batch whose insert fails is split in halves until the
        message that fails is alone, and that one is quarantined, so one poison
        message never holds up the others (and is never retried). Only the
        database itself failing (locked past the busy timeout, disk full, I/O:
        ``backend.fatal``) raises, because then nothing could be stored or
        quarantined, and the collector leaves the batch unacknowledged.
        """
        good: list[tuple[Incoming, schema.Envelope, msgspec.Struct]] = []
        bad: list[dict[str, Any]] = []
        for item in batch:
            if item.topic.endswith("/cmd"):  # commands to devices share the collector's subscription: not data
                continue
            payload = item.payload
            if b"\\u0000" in payload:  # PostgreSQL's text cannot hold NUL: U+FFFD on every backend, alike
                payload = payload.replace(b"\\u0000", b"\\ufffd")
            try:
                env, body = schema.decode_message(payload, item.topic, self.max_message_bytes)
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
        except self.backend.fatal:
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
        """One transaction: new messages and quarantine rows, all or nothing (run again after a deadlock)."""
        for attempt in range(5):
            try:
                with self.backend.write():
                    fresh = self._insert(good)
                    if bad:
                        self._quarantine(bad)
                return fresh, len(bad)
            except self.backend.retryable:
                if attempt == 4:
                    raise
                log.info("batch deadlocked with another collector; running it again")
        raise AssertionError("unreachable")

    def _quarantine(self, rows: list[dict[str, Any]]) -> None:
        """Upsert by payload hash (a repeat only counts), then drop the oldest rows past the caps."""
        b = self.backend
        b.executemany(_QUARANTINE_UPSERT, [(r["received_ts"], r["received_ts"], r["topic"], r["reason"], r["payload"],
                                            r["payload_bytes"], r["payload_sha256"]) for r in rows])
        n, size = b.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM quarantine").fetchone()
        if n <= self.quarantine_max_rows and size <= self.quarantine_max_bytes:
            return
        # newest first, keep while both caps hold; everything older goes
        keep_bytes = 0
        cut: int | None = None
        for kept, (row_id, length) in enumerate(b.execute("SELECT id, LENGTH(payload) FROM quarantine "
                                                          "ORDER BY id DESC").fetchall()):
            if kept + 1 > self.quarantine_max_rows or keep_bytes + (length or 0) > self.quarantine_max_bytes:
                cut = row_id
                break
            keep_bytes += length or 0
        if cut is None:
            return
        dropped = b.execute("DELETE FROM quarantine WHERE id <= ?", (cut,)).rowcount
        b.execute("INSERT INTO ingest_stats (name, value) VALUES ('quarantine_dropped', ?) "
                  "ON CONFLICT (name) DO UPDATE SET value = ingest_stats.value + excluded.value", (dropped,))

    def quarantine_stats(self) -> dict[str, int]:
        """Rows kept, messages they stand for, and rows dropped by the caps (for the collector's metrics)."""
        return quarantine_stats(self.db)

    def _insert(self, good: list[tuple[Incoming, schema.Envelope, msgspec.Struct]]) -> int:
        """Store the messages not stored yet and everything derived from them; how many were new.

        Rows are positional tuples for fixed statements, one executemany per table per batch: no
        per-message dicts (profiled hot path). Each message's ``ts`` is formatted once here and
        handed on with it. The backend inserts ``messages`` and says which keys were new (a
        redelivery, or the same message twice in one batch, is not); only those go on to the child
        tables and rollups.
        """
        if not good:
            return 0
        first: dict[backend.Key, int] = {}
        for i, (_, env, _) in enumerate(good):
            key = (env.device_id, env.msg_id)
            if key not in first:  # the same message twice inside one batch: keep the first
                first[key] = i
        if len(first) < len(good):
            good = [good[i] for i in first.values()]
        keys = list(first)
        received: dict[dt.datetime, str] = {}  # a batch arrives within a few instants: format each once
        messages: list[tuple[Any, ...]] = []
        fresh: list[rollups.Fresh] = []
        for item, env, body in good:
            rts = received.get(item.received)
            if rts is None:
                rts = received[item.received] = item.received.isoformat()
            ts = env.ts.isoformat()
            fresh.append((item, env, body, ts))
            messages.append((env.msg_id, env.device_id, env.fleet, env.kind, env.seq, ts, env.session_id,
                             env.model_sha256, env.config_sha256, env.agent_version, item.topic, rts,
                             _json(env.body)))
        new = self.backend.insert_new(_INSERT["messages"], messages, keys)
        rows = fresh if len(new) == len(fresh) else [g for g, k in zip(fresh, keys, strict=True) if k in new]
        if rows:
            self._insert_derived(rows)
        return len(rows)

    def _insert_derived(self, rows: list[rollups.Fresh]) -> None:
        """Child rows, device state, rollups and browseable tables of freshly stored messages."""
        latency: list[tuple[Any, ...]] = []
        robustness: list[tuple[Any, ...]] = []
        health: list[tuple[Any, ...]] = []
        for _item, env, body, ts in rows:
            if isinstance(body, schema.HealthBody):
                w = body.window
                # fps, brightness, contrast, sharpness, clipped are required floats: round() as _r would
                health.append((env.msg_id, env.device_id, ts, w.frames, round(body.fps, 2), round(body.brightness, 2),
                               round(body.contrast, 2), round(body.sharpness, 2), round(body.clipped, 4),
                               body.frozen_frames, body.spool_queued, body.spool_dropped,
                               _json(body.flags) if body.flags else "[]", w.start_ts.isoformat(),
                               round((w.end_ts - w.start_ts).total_seconds(), 3), _r(body.noise, 2),
                               _r(body.occlusion, 4), body.replaying_frames, body.replay_lag, body.band_source,
                               _json(body.alerts) if body.alerts else "[]"))  # JSON lists: a flag may contain ","
            elif isinstance(body, schema.LatencyBody):
                msg_id, device_id = env.msg_id, env.device_id
                for stage, s in body.stages.items():
                    latency.append((msg_id, device_id, ts, stage, s.count, s.p50, s.p90, s.p95, s.p99, s.max,
                                    s.mean, s.stdev, s.hdr))
            elif isinstance(body, schema.RobustnessBody):
                msg_id, device_id = env.msg_id, env.device_id
                for c in body.cells:
                    robustness.append((msg_id, device_id, ts, c.perturbation, c.severity, c.n, c.unstable,
                                       c.fraction, c.ci_low, c.ci_high, c.mean_disagreement))
        b = self.backend
        # first: every other table's device_id refers to a devices row, and on PostgreSQL this upsert row-locks
        # each of the batch's devices until commit, so two collectors fold one device's state and hours in turn
        self._track_devices(rows)
        for table, data in (("latency", latency), ("robustness", robustness), ("health", health)):
            if data:
                b.executemany(_INSERT[table], data)
        rollups.write(b, rollups.fold(rows), b.lock_rows)
        tables.write(b, rows)

    def _track_devices(self, fresh: list[rollups.Fresh]) -> None:
        """Fold a batch into one upsert per device, without reading the table first.

        Each message comes with its ``ts`` already formatted. The SQL
        keeps the newest of what is stored and what arrives (last seen, last
        seq, online state by the lifecycle message's own timestamp), so batches
        may land out of order and from several collectors at once. Gaps in
        ``seq`` are derived from stored rows by the ``device_seq`` view.
        """
        # per device: [device_id, fleet, online, last_seen, last_seq, state_ts, session_id, model_sha256,
        # agent_version, config_sha256, birth_ts] -- the upsert's order; a list, no dict per device
        rows: dict[str, list[Any]] = {}
        for _, env, _, ts in fresh:
            row = rows.get(env.device_id)
            if row is None:
                row = rows[env.device_id] = [env.device_id, env.fleet, None, ts, env.seq, None, None, None, None,
                                             None, None]
            else:
                if ts > row[3]:
                    row[3] = ts
                if env.seq > row[4]:
                    row[4] = env.seq
            kind = env.kind
            if kind == "birth" or kind == "death":
                if row[5] is None or ts >= row[5]:
                    row[2], row[5] = int(kind == "birth"), ts
                if kind == "birth" and (row[10] is None or ts >= row[10]):
                    row[6:11] = env.session_id, env.model_sha256, env.agent_version, env.config_sha256, ts
        if rows:
            self.backend.executemany(_DEVICE_UPSERT, [
                (*r[:2], 1 if r[2] is None else r[2], *r[3:], int(r[10] is not None)) for r in rows.values()])

    def counts(self) -> dict[str, int]:
        return {t: int(self.db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0])
                for t in ("messages", "latency", "robustness", "health", "quarantine")}

    def close(self) -> None:
        self.backend.close()


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
#: indexes earlier releases made that no query reads, dropped at start (each stored health window paid
#: for them: ~5 us of the store's ~50 a message, most of it in the commit's WAL pages). The messages'
#: primary key (device_id, msg_id) finds a message, and is the prefix a per-device scan needs;
#: health's primary key (device_id, msg_id) makes an index on device_id alone redundant; no query
#: filters messages by (device_id, kind) (fleet questions read device_kinds and the rollups); and
#: SQLite's insert learns which messages are new without looking msg_id up (backend.insert_new).
_UNUSED_INDEXES = ("idx_messages_msg_id", "idx_messages_device_id_kind", "idx_health_device_id")
#: health columns added after the first release (window span, every statistic and the open alerts)
_HEALTH_EXTRA = {"window_start": "TEXT", "window_s": "DOUBLE PRECISION", "noise": "DOUBLE PRECISION",
                 "occlusion": "DOUBLE PRECISION", "replaying_frames": "BIGINT", "replay_lag": "BIGINT",
                 "band_source": "TEXT", "alerts": "TEXT"}
#: quarantine columns added with its dedup by payload hash
_QUARANTINE_EXTRA = {"payload_sha256": "TEXT", "count": "BIGINT", "first_ts": "TEXT"}

#: the raw tables, in DDL both backends take (SQLite maps BIGINT/DOUBLE PRECISION onto its affinities; the
#: PostgreSQL backend spells the quarantine's INTEGER PRIMARY KEY as an identity column)
CORE_TABLES: dict[str, str] = {
    "messages": """
        msg_id TEXT, device_id TEXT, fleet TEXT, kind TEXT, seq BIGINT, ts TEXT, session_id TEXT,
        model_sha256 TEXT, config_sha256 TEXT, agent_version TEXT, topic TEXT, received_ts TEXT, body TEXT,
        PRIMARY KEY (device_id, msg_id)""",
    "latency": """
        msg_id TEXT, device_id TEXT, ts TEXT, stage TEXT, count BIGINT, p50_ms DOUBLE PRECISION,
        p90_ms DOUBLE PRECISION, p95_ms DOUBLE PRECISION, p99_ms DOUBLE PRECISION, max_ms DOUBLE PRECISION,
        mean_ms DOUBLE PRECISION, stdev_ms DOUBLE PRECISION, hdr TEXT, PRIMARY KEY (device_id, msg_id, stage)""",
    "robustness": """
        msg_id TEXT, device_id TEXT, ts TEXT, perturbation TEXT, severity DOUBLE PRECISION, n BIGINT,
        unstable BIGINT, fraction DOUBLE PRECISION, ci_low DOUBLE PRECISION, ci_high DOUBLE PRECISION,
        mean_disagreement DOUBLE PRECISION, PRIMARY KEY (device_id, msg_id, perturbation, severity)""",
    "health": """
        msg_id TEXT, device_id TEXT, ts TEXT, frames BIGINT, fps DOUBLE PRECISION, brightness DOUBLE PRECISION,
        contrast DOUBLE PRECISION, sharpness DOUBLE PRECISION, clipped DOUBLE PRECISION, frozen_frames BIGINT,
        spool_queued BIGINT, spool_dropped BIGINT, flags TEXT, """
        + ", ".join(f"{c} {t}" for c, t in _HEALTH_EXTRA.items()) + ", PRIMARY KEY (device_id, msg_id)",
    "devices": """
        device_id TEXT PRIMARY KEY, fleet TEXT, online BIGINT, last_seen TEXT, session_id TEXT, last_seq BIGINT,
        model_sha256 TEXT, agent_version TEXT, birth_ts TEXT, config_sha256 TEXT, state_ts TEXT,
        sessions BIGINT""",
    # received_ts: the latest arrival of this payload; first_ts: the first; count: how many arrived
    "quarantine": """
        id INTEGER PRIMARY KEY, received_ts TEXT, topic TEXT, reason TEXT, payload TEXT, payload_bytes BIGINT,
        payload_sha256 TEXT, count BIGINT, first_ts TEXT""",
    "ingest_stats": "name TEXT PRIMARY KEY, value BIGINT",
}


def _r(x: float | None, digits: int) -> float | None:
    """A figure rounded where its precision ends (17-digit floats only make the tables hard to read)."""
    return None if x is None else round(x, digits)
# One prepared statement per table over a whole batch (executemany): sqlite-utils'
# insert_all inspects and converts every value of every row, which was 70 % of the
# collector's time (profiled with benchmarks/ingest.py). ``messages`` goes through the
# backend's insert_new (which adds what its dialect needs to skip stored keys); child rows
# are keyed by msg_id, so DO NOTHING makes a redelivery a no-op.
_INSERT = {
    table: f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
           + ("" if table == "messages" else " ON CONFLICT DO NOTHING")
    for table, cols in _COLUMNS.items()
}

# The newest of what is stored and what arrives wins (last seen, last seq, online state by the
# lifecycle message's own timestamp, identity by the newest birth), so batches may land out of
# order and from several collectors at once. CASE, not two-argument MAX: both dialects take it.
_DEVICE_UPSERT = """
INSERT INTO devices (device_id, fleet, online, last_seen, last_seq, state_ts, session_id, model_sha256,
                     agent_version, config_sha256, birth_ts, sessions)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (device_id) DO UPDATE SET
    fleet = excluded.fleet,
    last_seen = CASE WHEN devices.last_seen IS NULL OR excluded.last_seen > devices.last_seen
                     THEN excluded.last_seen ELSE devices.last_seen END,
    last_seq = CASE WHEN devices.last_seq IS NULL OR excluded.last_seq > devices.last_seq
                    THEN excluded.last_seq ELSE devices.last_seq END,
    online = CASE WHEN excluded.state_ts >= COALESCE(devices.state_ts, '') THEN excluded.online
                  ELSE devices.online END,
    state_ts = CASE WHEN excluded.state_ts >= COALESCE(devices.state_ts, '') THEN excluded.state_ts
                    ELSE devices.state_ts END,
    sessions = COALESCE(devices.sessions, 0) + CASE WHEN excluded.birth_ts >= COALESCE(devices.birth_ts, '')
                    AND excluded.session_id <> COALESCE(devices.session_id, '') THEN 1 ELSE 0 END,
    session_id = CASE WHEN excluded.birth_ts >= COALESCE(devices.birth_ts, '') THEN excluded.session_id
                      ELSE devices.session_id END,
    model_sha256 = CASE WHEN excluded.birth_ts >= COALESCE(devices.birth_ts, '') THEN excluded.model_sha256
                        ELSE devices.model_sha256 END,
    agent_version = CASE WHEN excluded.birth_ts >= COALESCE(devices.birth_ts, '') THEN excluded.agent_version
                         ELSE devices.agent_version END,
    config_sha256 = CASE WHEN excluded.birth_ts >= COALESCE(devices.birth_ts, '') THEN excluded.config_sha256
                         ELSE devices.config_sha256 END,
    birth_ts = CASE WHEN devices.birth_ts IS NULL OR excluded.birth_ts > devices.birth_ts THEN excluded.birth_ts
                    ELSE devices.birth_ts END
"""

_json_encoder = msgspec.json.Encoder()


def _json(value: Any) -> str:
    return _json_encoder.encode(value).decode()


def _text(value: str, limit: int) -> str:
    """``value`` cut to ``limit`` characters and made storable on every backend: a lone surrogate cannot be
    UTF-8 encoded, and PostgreSQL's text cannot hold NUL (both become U+FFFD)."""
    return value[:limit].encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\ufffd")


def _quarantine_row(item: Incoming, reason: str) -> dict[str, Any]:
    raw = item.payload[:QUARANTINE_MAX_BYTES]
    return {"received_ts": item.received.isoformat(), "topic": _text(item.topic, 512), "reason": _text(reason, 1000),
            "payload": raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
            "payload_bytes": len(item.payload),
            "payload_sha256": hashlib.sha256(item.payload).hexdigest()}


def _bare_quarantine_row(row: dict[str, Any]) -> dict[str, Any]:
    """What is left of a quarantine row that could not be stored: when, how big, and that it was unstorable."""
    return {"received_ts": str(row.get("received_ts", ""))[:64], "topic": "", "payload": "",
            "reason": "quarantine row could not be stored", "payload_bytes": int(row.get("payload_bytes", 0)),
            "payload_sha256": str(row.get("payload_sha256", ""))[:64]}


def quarantine_stats(conn: Any) -> dict[str, int]:
    """Quarantine rows kept, messages they stand for, rows dropped by the caps (read by collector/prometheus.py)."""
    rows, messages = conn.execute("SELECT COUNT(*), COALESCE(SUM(count), 0) FROM quarantine").fetchone()
    try:
        found = conn.execute("SELECT value FROM ingest_stats WHERE name = 'quarantine_dropped'").fetchone()
    except sqlite3.OperationalError:  # a database from before the caps
        found = None
    return {"rows": int(rows), "messages": int(messages), "dropped": int(found[0]) if found else 0}


_QUARANTINE_UPSERT = """
INSERT INTO quarantine (received_ts, first_ts, topic, reason, payload, payload_bytes, payload_sha256, count)
VALUES (?, ?, ?, ?, ?, ?, ?, 1)
ON CONFLICT (payload_sha256) DO UPDATE SET count = quarantine.count + 1,
    received_ts = CASE WHEN excluded.received_ts > quarantine.received_ts THEN excluded.received_ts
                       ELSE quarantine.received_ts END
"""
