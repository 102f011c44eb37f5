"""The collector's SQLite database, written with sqlite-utils.

One row per message in ``messages`` (``msg_id`` primary key: a redelivered
message changes nothing), typed child tables per kind for queries, a
``devices`` table kept current from birth/death/seq, and ``quarantine`` for
everything that failed validation, with the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import sqlite_utils

from ..harness import schema

#: raw payloads kept in quarantine are capped so a hostile client cannot fill the disk
QUARANTINE_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    received: dt.datetime


class Store:
    def __init__(self, path: str | Path):
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # The collector opens the store in one thread and writes from another;
        # only one thread at a time uses the connection.
        self.db = sqlite_utils.Database(sqlite3.connect(self.path, check_same_thread=False))
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self._create()

    def _create(self) -> None:
        db = self.db
        db.table("messages").create({
            "msg_id": str, "device_id": str, "fleet": str, "kind": str, "seq": int, "ts": str,
            "session_id": str, "model_sha256": str, "config_sha256": str, "agent_version": str,
            "topic": str, "received_ts": str, "body": str,
        }, pk="msg_id", if_not_exists=True)
        db.table("latency").create({
            "msg_id": str, "device_id": str, "ts": str, "stage": str, "count": int, "p50_ms": float,
            "p90_ms": float, "p95_ms": float, "p99_ms": float, "max_ms": float, "mean_ms": float,
            "stdev_ms": float, "hdr": str,
        }, pk=("msg_id", "stage"), if_not_exists=True)
        db.table("robustness").create({
            "msg_id": str, "device_id": str, "ts": str, "perturbation": str, "severity": float, "n": int,
            "unstable": int, "fraction": float, "ci_low": float, "ci_high": float,
            "mean_disagreement": float,
        }, pk=("msg_id", "perturbation", "severity"), if_not_exists=True)
        db.table("health").create({
            "msg_id": str, "device_id": str, "ts": str, "frames": int, "fps": float, "brightness": float,
            "contrast": float, "sharpness": float, "clipped": float, "frozen_frames": int,
            "spool_queued": int, "spool_dropped": int, "flags": str,
        }, pk="msg_id", if_not_exists=True)
        db.table("devices").create({
            "device_id": str, "fleet": str, "online": int, "last_seen": str, "session_id": str,
            "last_seq": int, "model_sha256": str, "agent_version": str, "birth_ts": str,
        }, pk="device_id", if_not_exists=True)
        db.table("quarantine").create({
            "id": int, "received_ts": str, "topic": str, "reason": str, "payload": str, "payload_bytes": int,
        }, pk="id", if_not_exists=True)
        for table, cols in (("messages", ["device_id", "kind"]), ("latency", ["device_id", "stage"]),
                            ("robustness", ["device_id", "perturbation"]), ("health", ["device_id"])):
            db.table(table).create_index(cols, if_not_exists=True)
        # Gaps in a device's seq: messages it numbered that never arrived.
        db.create_view("device_seq", """
            SELECT device_id, MIN(seq) AS first_seq, MAX(seq) AS last_seq,
                   COUNT(DISTINCT seq) AS received,
                   MAX(seq) - MIN(seq) + 1 - COUNT(DISTINCT seq) AS missing
            FROM messages GROUP BY device_id""", replace=True)

    # --- ingest ------------------------------------------------------------

    def ingest(self, batch: Sequence[Incoming]) -> tuple[int, int]:
        """Validate and store a batch in one transaction; returns (stored, quarantined)."""
        good: list[tuple[Incoming, schema.Envelope, msgspec.Struct]] = []
        bad: list[dict[str, Any]] = []
        for item in batch:
            try:
                env, body = schema.decode_message(item.payload, item.topic)
                good.append((item, env, body))
            except schema.SchemaViolation as exc:
                bad.append(_quarantine_row(item, str(exc)))
        with self.db.conn:
            new = self._new_ids([env.msg_id for _, env, _ in good])
            fresh = [(i, e, b) for i, e, b in good if e.msg_id in new]
            # the same msg_id twice inside one batch: keep the first
            seen: set[str] = set()
            fresh = [x for x in fresh if not (x[1].msg_id in seen or seen.add(x[1].msg_id))]  # type: ignore[func-returns-value]
            self._insert(fresh)
            if bad:
                self.db.table("quarantine").insert_all(bad)
        return len(fresh), len(bad)

    def _new_ids(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        marks = ",".join("?" * len(ids))
        existing = {r[0] for r in self.db.execute(f"SELECT msg_id FROM messages WHERE msg_id IN ({marks})", ids)}
        return set(ids) - existing

    def _insert(self, rows: list[tuple[Incoming, schema.Envelope, msgspec.Struct]]) -> None:
        messages, latency, robustness, health = [], [], [], []
        for item, env, body in rows:
            base = {"msg_id": env.msg_id, "device_id": env.device_id, "ts": env.ts.isoformat()}
            messages.append({
                **base, "fleet": env.fleet, "kind": env.kind, "seq": env.seq, "session_id": env.session_id,
                "model_sha256": env.model_sha256, "config_sha256": env.config_sha256,
                "agent_version": env.agent_version, "topic": item.topic,
                "received_ts": item.received.isoformat(), "body": json.dumps(env.body),
            })
            if isinstance(body, schema.LatencyBody):
                for stage, s in body.stages.items():
                    latency.append({**base, "stage": stage, "count": s.count, "p50_ms": s.p50, "p90_ms": s.p90,
                                    "p95_ms": s.p95, "p99_ms": s.p99, "max_ms": s.max, "mean_ms": s.mean,
                                    "stdev_ms": s.stdev, "hdr": s.hdr})
            elif isinstance(body, schema.RobustnessBody):
                for c in body.cells:
                    robustness.append({**base, "perturbation": c.perturbation, "severity": c.severity, "n": c.n,
                                       "unstable": c.unstable, "fraction": c.fraction, "ci_low": c.ci_low,
                                       "ci_high": c.ci_high, "mean_disagreement": c.mean_disagreement})
            elif isinstance(body, schema.HealthBody):
                health.append({**base, "frames": body.window.frames, "fps": body.fps,
                               "brightness": body.brightness, "contrast": body.contrast,
                               "sharpness": body.sharpness, "clipped": body.clipped,
                               "frozen_frames": body.frozen_frames, "spool_queued": body.spool_queued,
                               "spool_dropped": body.spool_dropped, "flags": ",".join(body.flags)})
        self.db.table("messages").insert_all(messages)
        self._track_devices([env for _, env, _ in rows])
        for table, data in (("latency", latency), ("robustness", robustness), ("health", health)):
            if data:
                self.db.table(table).insert_all(data, ignore=True)

    def _track_devices(self, envs: list[schema.Envelope]) -> None:
        """Fold a batch into one upsert per device (online, last seen, last seq).

        Gaps in ``seq`` are not counted here: redeliveries arrive out of order,
        so the ``device_seq`` view derives them from what is stored instead.
        """
        table = self.db.table("devices")
        rows: dict[str, dict[str, Any]] = {}
        for env in sorted(envs, key=lambda e: (e.ts, e.seq)):
            row = rows.get(env.device_id)
            if row is None:
                found = list(table.rows_where("device_id = ?", [env.device_id]))
                row = dict(found[0]) if found else {"device_id": env.device_id, "online": 1, "last_seq": -1}
                rows[env.device_id] = row
            ts = env.ts.isoformat()
            row["fleet"] = env.fleet
            if env.kind == "birth":
                row.update(online=1, session_id=env.session_id, model_sha256=env.model_sha256,
                           agent_version=env.agent_version, birth_ts=ts)
            elif env.kind == "death":
                row["online"] = 0
            row["last_seq"] = max(env.seq, row.get("last_seq") or -1)
            if not row.get("last_seen") or ts > row["last_seen"]:
                row["last_seen"] = ts
        if rows:
            table.upsert_all(list(rows.values()), pk="device_id")

    def counts(self) -> dict[str, int]:
        return {t: self.db.table(t).count for t in ("messages", "latency", "robustness", "health", "quarantine")}

    def close(self) -> None:
        self.db.close()


def _quarantine_row(item: Incoming, reason: str) -> dict[str, Any]:
    raw = item.payload[:QUARANTINE_MAX_BYTES]
    return {"received_ts": item.received.isoformat(), "topic": item.topic[:512], "reason": reason[:1000],
            "payload": raw.decode("utf-8", errors="replace"), "payload_bytes": len(item.payload)}
