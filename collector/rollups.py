"""What the collector keeps up to date at ingest so fleet questions never scan history.

Two kinds of structure, written in the same transaction as the raw rows:

* **latest state** per device (``device_state`` and the ``device_*_latest``
  tables): the last window's figures, current flags, seq counters, so
  ``fleet status`` and ``/metrics`` read one row set per device;
* **rollups** per device x UTC hour (``rollup_*``): the hour's latency
  HdrHistogram per stage (merged, never averaged percentiles), robustness sums
  per perturbation x severity, health sums and flag counts. A question over a
  time range reads ``devices x hours`` rows however long the collector has run.

Only messages stored for the first time are folded in (the store has already
dropped redeliveries), so a redelivered message counts once. "Latest" upserts
keep whichever window is newer by the device's own timestamp, so batches may
land out of order and from several collectors at once. The SQL is the common
subset of SQLite and PostgreSQL (``ON CONFLICT ... DO UPDATE ... WHERE``,
CASE instead of two-argument MAX/GREATEST) with ``?`` placeholders; the
PostgreSQL backend rewrites the placeholders.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from edgeprobe.harness import schema
from edgeprobe.harness.rollup_form import merge_many_into_packed

HOUR_S = 3600

#: the flags a health window may raise, exported as one 0/1 series each (so "not raised" is a 0, not a gap)
KNOWN_FLAGS = ("dark", "overexposed", "blurry", "low_contrast", "frozen", "noisy", "occluded", "replayed")


class Cursor(Protocol):
    def fetchall(self) -> list[Any]: ...


class Conn(Protocol):
    """The part of a DB-API connection the folds use (sqlite3 and the PostgreSQL adapter both give it)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> Any: ...


# --- schema ------------------------------------------------------------------------------------------------

#: DDL in types both backends accept (SQLite maps BIGINT/DOUBLE PRECISION onto its INTEGER/REAL affinities)
TABLES: dict[str, str] = {
    "device_state": """
        device_id TEXT PRIMARY KEY REFERENCES devices(device_id),
        seq_min BIGINT, seq_max BIGINT, seq_received BIGINT NOT NULL DEFAULT 0,
        last_received_ts DOUBLE PRECISION, ingest_lag_s DOUBLE PRECISION,
        health_ts DOUBLE PRECISION, window_s DOUBLE PRECISION, frames BIGINT, fps DOUBLE PRECISION,
        brightness DOUBLE PRECISION, contrast DOUBLE PRECISION, sharpness DOUBLE PRECISION,
        noise DOUBLE PRECISION, occlusion DOUBLE PRECISION, clipped DOUBLE PRECISION, frozen_frames BIGINT,
        spool_queued BIGINT, spool_dropped BIGINT, flags TEXT, alerts TEXT,
        drift_ts DOUBLE PRECISION, drift_psi DOUBLE PRECISION, output_drift BIGINT, input_drift BIGINT,
        drift_attribution TEXT""",
    "device_kinds": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), kind TEXT NOT NULL, stored BIGINT NOT NULL,
        PRIMARY KEY (device_id, kind)""",
    "device_latency_latest": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), stage TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,
        count BIGINT, p50_ms DOUBLE PRECISION, p90_ms DOUBLE PRECISION, p99_ms DOUBLE PRECISION,
        max_ms DOUBLE PRECISION, mean_ms DOUBLE PRECISION,
        total_count BIGINT NOT NULL DEFAULT 0, total_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
        PRIMARY KEY (device_id, stage)""",
    "device_robustness_latest": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), perturbation TEXT NOT NULL,
        severity DOUBLE PRECISION NOT NULL, ts DOUBLE PRECISION NOT NULL, n BIGINT, unstable BIGINT,
        fraction DOUBLE PRECISION, PRIMARY KEY (device_id, perturbation, severity)""",
    "device_breaking_latest": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), perturbation TEXT NOT NULL,
        ts DOUBLE PRECISION NOT NULL, severity DOUBLE PRECISION, found BIGINT,
        PRIMARY KEY (device_id, perturbation)""",
    "device_verdict_latest": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), suite TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL,
        status TEXT, exit_code BIGINT, PRIMARY KEY (device_id, suite)""",
    "rollup_latency": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), hour BIGINT NOT NULL, stage TEXT NOT NULL,
        windows BIGINT NOT NULL, count BIGINT NOT NULL, total_ms DOUBLE PRECISION NOT NULL, hist BLOB NOT NULL,
        PRIMARY KEY (device_id, hour, stage)""",
    "rollup_robustness": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), hour BIGINT NOT NULL, perturbation TEXT NOT NULL,
        severity DOUBLE PRECISION NOT NULL, windows BIGINT NOT NULL, n BIGINT NOT NULL, unstable BIGINT NOT NULL,
        PRIMARY KEY (device_id, hour, perturbation, severity)""",
    "rollup_health": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), hour BIGINT NOT NULL, windows BIGINT NOT NULL,
        frames BIGINT NOT NULL, fps_sum DOUBLE PRECISION NOT NULL, brightness_sum DOUBLE PRECISION NOT NULL,
        contrast_sum DOUBLE PRECISION NOT NULL, sharpness_sum DOUBLE PRECISION NOT NULL,
        frozen_frames BIGINT NOT NULL, spool_dropped_max BIGINT NOT NULL,
        PRIMARY KEY (device_id, hour)""",
    "rollup_health_flags": """
        device_id TEXT NOT NULL REFERENCES devices(device_id), hour BIGINT NOT NULL, flag TEXT NOT NULL,
        windows BIGINT NOT NULL, PRIMARY KEY (device_id, hour, flag)""",
}

#: rollup tables a retention pass prunes by ``hour``
ROLLUP_TABLES = ("rollup_latency", "rollup_robustness", "rollup_health", "rollup_health_flags")


def create(conn: Conn) -> None:
    for name, cols in TABLES.items():
        conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
    for name in ROLLUP_TABLES:  # retention and range questions filter on hour
        conn.execute(f"CREATE INDEX IF NOT EXISTS {name}_hour ON {name} (hour)")


def hour_of(epoch_s: float) -> int:
    return int(epoch_s // HOUR_S) * HOUR_S


# --- folding a batch -----------------------------------------------------------------------------------------


@dataclass
class _Fold:
    """One batch reduced to one row per key, before any SQL (so a batch costs one statement per table)."""

    seq: dict[str, list[int]] = field(default_factory=dict)  # device -> [min, max, count]
    lag: dict[str, tuple[float, float]] = field(default_factory=dict)  # device -> (received, lag) of newest
    kinds: dict[tuple[str, str], int] = field(default_factory=dict)
    health: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    drift: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    latency: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    latency_totals: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    robustness: dict[tuple[str, str, float], tuple[Any, ...]] = field(default_factory=dict)
    breaking: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    verdict: dict[tuple[str, str], tuple[Any, ...]] = field(default_factory=dict)
    hdr: dict[tuple[str, int, str], list[Any]] = field(default_factory=dict)  # -> [windows, count, ms, [hdr]]
    rob_hour: dict[tuple[str, int, str, float], list[int]] = field(default_factory=dict)
    health_hour: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    flags_hour: dict[tuple[str, int, str], int] = field(default_factory=dict)


def _newer(store: dict[Any, tuple[Any, ...]], key: Any, row: tuple[Any, ...], ts_index: int) -> None:
    cur = store.get(key)
    if cur is None or row[ts_index] >= cur[ts_index]:
        store[key] = row


def _round(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


#: a freshly stored message as the store hands it over: (incoming, envelope, typed body, envelope ts as ISO text)
Fresh = tuple[Any, schema.Envelope, msgspec.Struct, str]


def fold(rows: Iterable[Fresh]) -> _Fold:
    """Reduce freshly stored messages to per-key rows.

    Hot path (every stored message passes here): a device's latest health row is built once, from
    the newest window of the batch, not for every window it replaces.
    """
    f = _Fold()
    newest_health: dict[str, tuple[float, schema.HealthBody]] = {}
    last_received: Any = None
    received = 0.0
    for item, env, body, _ in rows:
        dev, ts = env.device_id, env.ts.timestamp()
        s = f.seq.get(dev)
        if s is None:
            f.seq[dev] = [env.seq, env.seq, 1]
        else:
            s[0], s[1], s[2] = min(s[0], env.seq), max(s[1], env.seq), s[2] + 1
        if item.received is not last_received:  # a batch shares a few arrival instants
            last_received = item.received
            received = last_received.timestamp()
        cur = f.lag.get(dev)
        if cur is None or received >= cur[0]:
            f.lag[dev] = (received, max(0.0, received - ts))
        key = (dev, env.kind)
        f.kinds[key] = f.kinds.get(key, 0) + 1
        hour = hour_of(ts)
        if isinstance(body, schema.HealthBody):
            newest = newest_health.get(dev)
            if newest is None or ts >= newest[0]:
                newest_health[dev] = (ts, body)
            h = f.health_hour.get((dev, hour))
            if h is None:
                h = f.health_hour[(dev, hour)] = [0, 0, 0.0, 0.0, 0.0, 0.0, 0, 0]
            frames = body.window.frames
            h[0] += 1
            h[1] += frames
            h[2] += body.fps * frames
            h[3] += body.brightness * frames
            h[4] += body.contrast * frames
            h[5] += body.sharpness * frames
            h[6] += body.frozen_frames
            if body.spool_dropped > h[7]:
                h[7] = body.spool_dropped
            if body.flags:
                for flag in set(body.flags):
                    fk = (dev, hour, flag)
                    f.flags_hour[fk] = f.flags_hour.get(fk, 0) + 1
        elif isinstance(body, schema.LatencyBody):
            for stage, st in body.stages.items():
                _newer(f.latency, (dev, stage), (dev, stage, ts, st.count, st.p50, st.p90, st.p99, st.max, st.mean), 2)
                tot = f.latency_totals.setdefault((dev, stage), [0, 0.0])
                tot[0] += st.count
                tot[1] += st.mean * st.count
                acc = f.hdr.setdefault((dev, hour, stage), [0, 0, 0.0, []])
                acc[0] += 1
                acc[1] += st.count
                acc[2] += st.mean * st.count
                if st.hdr:
                    acc[3].append(st.hdr)
        elif isinstance(body, schema.RobustnessBody):
            for c in body.cells:
                _newer(f.robustness, (dev, c.perturbation, c.severity),
                       (dev, c.perturbation, c.severity, ts, c.n, c.unstable, c.fraction), 3)
                r = f.rob_hour.setdefault((dev, hour, c.perturbation, c.severity), [0, 0, 0])
                r[0] += 1
                r[1] += c.n
                r[2] += c.unstable
            for bp in body.breaking_points or ():
                pert = bp.get("perturbation")
                if isinstance(pert, str) and pert:
                    sev = bp.get("severity")
                    sev = float(sev) if isinstance(sev, (int, float)) and math.isfinite(sev) else None
                    _newer(f.breaking, (dev, pert), (dev, pert, ts, sev, int(sev is not None)), 2)
        elif isinstance(body, schema.DriftBody):
            psis = [v["psi"] for v in (body.outputs or {}).values()
                    if isinstance(v, dict) and isinstance(v.get("psi"), (int, float))]
            _newer(f.drift, dev, (dev, ts, _round(max(psis)) if psis else None,
                                  None if body.output_drift is None else int(body.output_drift),
                                  None if body.input_drift is None else int(body.input_drift), body.attribution), 1)
        elif env.kind == "verdict":
            suite, status = env.body.get("suite"), env.body.get("status")
            if isinstance(suite, str) and suite:
                code = env.body.get("exit_code")
                _newer(f.verdict, (dev, suite), (dev, suite, ts, status if isinstance(status, str) else None,
                                                 code if isinstance(code, int) else None), 2)
    for dev, (ts, body) in newest_health.items():
        f.health[dev] = _health_row(dev, ts, body)
    return f


def _health_row(dev: str, ts: float, body: schema.HealthBody) -> tuple[Any, ...]:
    """A device's latest health figures (``device_state``), from its newest window."""
    w = body.window
    span = max(0.0, (w.end_ts - w.start_ts).total_seconds())
    return (dev, ts, round(span, 3), w.frames, _round(body.fps, 2), _round(body.brightness, 2),
            _round(body.contrast, 2), _round(body.sharpness, 2), _round(body.noise, 2), _round(body.occlusion),
            _round(body.clipped), body.frozen_frames, body.spool_queued, body.spool_dropped, _json_list(body.flags),
            _json_list(body.alerts))


# --- writing a fold ------------------------------------------------------------------------------------------

_NEWER = "WHERE {t}.{c} IS NULL OR excluded.{c} >= {t}.{c}"


def _upsert(table: str, cols: Sequence[str], key: Sequence[str], set_sql: str, where: str = "") -> str:
    return (f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {set_sql} {where}")


def _set_excluded(cols: Sequence[str]) -> str:
    return ", ".join(f"{c} = excluded.{c}" for c in cols)


_HEALTH_COLS = ("device_id", "health_ts", "window_s", "frames", "fps", "brightness", "contrast", "sharpness", "noise",
                "occlusion", "clipped", "frozen_frames", "spool_queued", "spool_dropped", "flags", "alerts")
_DRIFT_COLS = ("device_id", "drift_ts", "drift_psi", "output_drift", "input_drift", "drift_attribution")
_LAT_COLS = ("device_id", "stage", "ts", "count", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms")
_ROB_COLS = ("device_id", "perturbation", "severity", "ts", "n", "unstable", "fraction")
_BP_COLS = ("device_id", "perturbation", "ts", "severity", "found")
_VERDICT_COLS = ("device_id", "suite", "ts", "status", "exit_code")

SQL = {
    "seq": _upsert(
        "device_state", ("device_id", "seq_min", "seq_max", "seq_received", "last_received_ts", "ingest_lag_s"),
        ("device_id",),
        "seq_min = CASE WHEN device_state.seq_min IS NULL OR excluded.seq_min < device_state.seq_min "
        "THEN excluded.seq_min ELSE device_state.seq_min END, "
        "seq_max = CASE WHEN device_state.seq_max IS NULL OR excluded.seq_max > device_state.seq_max "
        "THEN excluded.seq_max ELSE device_state.seq_max END, "
        "seq_received = device_state.seq_received + excluded.seq_received, "
        "ingest_lag_s = CASE WHEN device_state.last_received_ts IS NULL OR excluded.last_received_ts >= "
        "device_state.last_received_ts THEN excluded.ingest_lag_s ELSE device_state.ingest_lag_s END, "
        "last_received_ts = CASE WHEN device_state.last_received_ts IS NULL OR excluded.last_received_ts >= "
        "device_state.last_received_ts THEN excluded.last_received_ts ELSE device_state.last_received_ts END"),
    "kinds": _upsert("device_kinds", ("device_id", "kind", "stored"), ("device_id", "kind"),
                     "stored = device_kinds.stored + excluded.stored"),
    "health": _upsert("device_state", _HEALTH_COLS, ("device_id",), _set_excluded(_HEALTH_COLS[1:]),
                      _NEWER.format(t="device_state", c="health_ts")),
    "drift": _upsert("device_state", _DRIFT_COLS, ("device_id",), _set_excluded(_DRIFT_COLS[1:]),
                     _NEWER.format(t="device_state", c="drift_ts")),
    "latency": _upsert("device_latency_latest", _LAT_COLS, ("device_id", "stage"), _set_excluded(_LAT_COLS[2:]),
                       "WHERE excluded.ts >= device_latency_latest.ts"),
    "latency_totals": (
        "UPDATE device_latency_latest SET total_count = total_count + ?, total_ms = total_ms + ? "
        "WHERE device_id = ? AND stage = ?"),
    "robustness": _upsert("device_robustness_latest", _ROB_COLS, ("device_id", "perturbation", "severity"),
                          _set_excluded(_ROB_COLS[3:]), "WHERE excluded.ts >= device_robustness_latest.ts"),
    "breaking": _upsert("device_breaking_latest", _BP_COLS, ("device_id", "perturbation"),
                        _set_excluded(_BP_COLS[2:]), "WHERE excluded.ts >= device_breaking_latest.ts"),
    "verdict": _upsert("device_verdict_latest", _VERDICT_COLS, ("device_id", "suite"),
                       _set_excluded(_VERDICT_COLS[2:]), "WHERE excluded.ts >= device_verdict_latest.ts"),
    "rob_hour": _upsert(
        "rollup_robustness", ("device_id", "hour", "perturbation", "severity", "windows", "n", "unstable"),
        ("device_id", "hour", "perturbation", "severity"),
        "windows = rollup_robustness.windows + excluded.windows, n = rollup_robustness.n + excluded.n, "
        "unstable = rollup_robustness.unstable + excluded.unstable"),
    "health_hour": _upsert(
        "rollup_health", ("device_id", "hour", "windows", "frames", "fps_sum", "brightness_sum", "contrast_sum",
                          "sharpness_sum", "frozen_frames", "spool_dropped_max"),
        ("device_id", "hour"),
        ", ".join(f"{c} = rollup_health.{c} + excluded.{c}" for c in
                  ("windows", "frames", "fps_sum", "brightness_sum", "contrast_sum", "sharpness_sum",
                   "frozen_frames"))
        + ", spool_dropped_max = CASE WHEN excluded.spool_dropped_max > rollup_health.spool_dropped_max "
          "THEN excluded.spool_dropped_max ELSE rollup_health.spool_dropped_max END"),
    "flags_hour": _upsert("rollup_health_flags", ("device_id", "hour", "flag", "windows"),
                          ("device_id", "hour", "flag"), "windows = rollup_health_flags.windows + excluded.windows"),
    "hdr_insert": _upsert("rollup_latency", ("device_id", "hour", "stage", "windows", "count", "total_ms", "hist"),
                          ("device_id", "hour", "stage"),
                          "windows = excluded.windows, count = excluded.count, total_ms = excluded.total_ms, "
                          "hist = excluded.hist"),
}


def write(conn: Conn, f: _Fold, lock_rows: Callable[[str], str] = lambda sql: sql) -> None:
    """Fold one batch into the structures, inside the caller's transaction.

    Additive rollups are single upserts. The hour's latency histogram is a read-merge-write: the caller's
    transaction holds the write lock (SQLite ``BEGIN IMMEDIATE``); ``lock_rows`` lets PostgreSQL append
    ``FOR UPDATE`` so two collectors merging into the same hour serialise on that row only.
    """
    ex = conn.executemany
    if f.seq:
        ex(SQL["seq"], [(d, s[0], s[1], s[2], *f.lag[d]) for d, s in f.seq.items()])
    if f.kinds:
        ex(SQL["kinds"], [(d, k, n) for (d, k), n in f.kinds.items()])
    for name in ("health", "drift", "latency", "robustness", "breaking", "verdict"):
        rows = getattr(f, name)
        if rows:
            ex(SQL[name], list(rows.values()))
    if f.latency_totals:
        ex(SQL["latency_totals"], [(c, s, d, st) for (d, st), (c, s) in f.latency_totals.items()])
    if f.rob_hour:
        ex(SQL["rob_hour"], [(*k, *v) for k, v in f.rob_hour.items()])
    if f.health_hour:
        ex(SQL["health_hour"], [(*k, *v) for k, v in f.health_hour.items()])
    if f.flags_hour:
        ex(SQL["flags_hour"], [(*k, v) for k, v in f.flags_hour.items()])
    if f.hdr:
        _merge_hours(conn, f, lock_rows)


def _merge_hours(conn: Conn, f: _Fold, lock_rows: Callable[[str], str]) -> None:
    keys = sorted(f.hdr)  # one order for every collector: row locks are taken without deadlocks
    existing: dict[tuple[str, int, str], tuple[int, int, float, bytes]] = {}
    chunk = 300
    for i in range(0, len(keys), chunk):
        part = keys[i:i + chunk]
        marks = " OR ".join("(device_id = ? AND hour = ? AND stage = ?)" for _ in part)
        sql = lock_rows(f"SELECT device_id, hour, stage, windows, count, total_ms, hist FROM rollup_latency "
                        f"WHERE {marks}")
        for d, h, s, w, c, ms, hist in conn.execute(sql, [x for k in part for x in k]).fetchall():
            existing[(d, int(h), s)] = (int(w), int(c), float(ms), bytes(hist))
    rows = []
    for k in keys:
        windows, count, total_ms, _ = f.hdr[k]
        old = existing.get(k)
        if old is not None:
            windows, count, total_ms = windows + old[0], count + old[1], total_ms + old[2]
        rows.append((*k, windows, count, total_ms))
    # every rollup of the batch merged in one vectorised pass (per-rollup calls were most of the ingest CPU)
    hists = merge_many_into_packed([(existing[k][3] if k in existing else None, f.hdr[k][3]) for k in keys])
    conn.executemany(SQL["hdr_insert"], [(*row, hist) for row, hist in zip(rows, hists, strict=True)])


def _json_list(values: list[str]) -> str:
    """Flags and alerts stored as a sorted JSON list: joined with "," a flag containing a comma came back split."""
    return json.dumps(sorted(set(values)))
