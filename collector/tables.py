"""Tables a person can browse (datasette fleet.db): events, drift and verdicts with their figures as columns.

``messages.body`` keeps every message whole; these tables repeat what a reader filters and sorts
on, one row per message, with the window's start and duration, floats rounded where the figure's
precision ends, and foreign keys to ``devices`` (datasette links them). Filled at ingest from the
same freshly stored rows as the rollups, keyed like the other child tables by (device_id, msg_id).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edgeprobe.collector.rollups import Conn, Fresh
from edgeprobe.harness import schema

TABLES: dict[str, str] = {
    "events": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), msg_id TEXT NOT NULL, ts TEXT NOT NULL,
        type TEXT, message TEXT, command_id TEXT, status TEXT, PRIMARY KEY (device_id, msg_id)""",
    "drift": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), msg_id TEXT NOT NULL, ts TEXT NOT NULL,
        window_start TEXT, window_s DOUBLE PRECISION, reference TEXT, reference_frames BIGINT, frames BIGINT,
        psi_max DOUBLE PRECISION, output_drift BIGINT, input_drift BIGINT, attribution TEXT, drifted TEXT,
        inputs_moved TEXT, flip_rate DOUBLE PRECISION, message TEXT, PRIMARY KEY (device_id, msg_id)""",
    "verdicts": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), msg_id TEXT NOT NULL, ts TEXT NOT NULL,
        suite TEXT, status TEXT, exit_code BIGINT, headline TEXT, duration_s DOUBLE PRECISION, checks BIGINT,
        failed_checks TEXT, PRIMARY KEY (device_id, msg_id)""",
}

_COLUMNS = {
    "events": ("device_id", "msg_id", "ts", "type", "message", "command_id", "status"),
    "drift": ("device_id", "msg_id", "ts", "window_start", "window_s", "reference", "reference_frames", "frames",
              "psi_max", "output_drift", "input_drift", "attribution", "drifted", "inputs_moved", "flip_rate",
              "message"),
    "verdicts": ("device_id", "msg_id", "ts", "suite", "status", "exit_code", "headline", "duration_s", "checks",
                 "failed_checks"),
}
#: the message kinds with a table of their own
_KINDS = frozenset(("event", "drift", "verdict"))
INSERT = {t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))}) ON CONFLICT DO NOTHING"
          for t, c in _COLUMNS.items()}


def create(conn: Conn) -> None:
    for name, cols in TABLES.items():
        conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {name}_ts ON {name} (ts)")


def _r(x: Any, digits: int = 4) -> float | None:
    return round(float(x), digits) if isinstance(x, (int, float)) else None


def _s(x: Any) -> str | None:
    return x if isinstance(x, str) else None


def rows(fresh: Iterable[Fresh]) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
    for _, env, body, ts in fresh:
        kind = env.kind
        if kind not in _KINDS:  # most of a fleet's messages (health, latency, robustness) have no table here
            continue
        key = (env.device_id, env.msg_id, ts)
        if isinstance(body, schema.EventBody):
            b = env.body
            out["events"].append((*key, body.type, body.message, _s(b.get("command_id")), _s(b.get("status"))))
        elif isinstance(body, schema.DriftBody):
            w = body.window
            psis = [v["psi"] for v in (body.outputs or {}).values()
                    if isinstance(v, dict) and isinstance(v.get("psi"), (int, float))]
            out["drift"].append((
                *key, None if w is None else w.start_ts.isoformat(),
                None if w is None else round((w.end_ts - w.start_ts).total_seconds(), 3), body.reference,
                body.reference_frames, body.frames, _r(max(psis)) if psis else None,
                None if body.output_drift is None else int(body.output_drift),
                None if body.input_drift is None else int(body.input_drift), body.attribution,
                "; ".join(body.drifted) or None, "; ".join(body.inputs_moved) or None,
                None if body.temporal is None else _r(body.temporal.flip_rate), body.message))
        elif kind == "verdict":
            b = env.body
            raw = b.get("checks")
            checks: list[Any] = raw if isinstance(raw, list) else []
            failed = [str(c["name"]) for c in checks if isinstance(c, dict) and c.get("status") == "fail"
                      and isinstance(c.get("name"), str)]
            code = b.get("exit_code")
            out["verdicts"].append((*key, _s(b.get("suite")), _s(b.get("status")),
                                    code if isinstance(code, int) else None, _s(b.get("headline")),
                                    _r(b.get("duration_s"), 3), len(checks), ", ".join(failed) or None))
    return out


def write(conn: Conn, fresh: Iterable[Fresh]) -> None:
    for table, data in rows(fresh).items():
        if data:
            conn.executemany(INSERT[table], data)
