"""Questions a user asks of the collector's database, answered from what ingest maintains.

Nothing here scans raw windows: latest figures come from the per-device state tables and
questions over a time range from the hourly rollups (collector/rollups.py), so each answer
costs O(devices x hours in the range) however long the collector has run. Latency
percentiles over many windows come from merging the hours' histograms, never from
averaging percentiles.

``db`` is anything with ``execute(sql, params)`` returning rows (sqlite-utils' Database, a
sqlite3 connection, or the PostgreSQL store's reader), with ``?`` placeholders.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Protocol

from edgeprobe.collector.timerange import ALL_TIME, TimeRange
from edgeprobe.harness.rollup_form import summary_of_packed
from edgeprobe.harness.stability import risk_zone, wilson_interval

STAGE_ORDER = ("decode", "preprocess", "inference", "postprocess", "e2e", "probe")


class Reader(Protocol):
    def execute(self, sql: str, params: Any = ..., /) -> Any: ...


def _iso(epoch: float | None) -> str | None:
    return None if epoch is None else dt.datetime.fromtimestamp(epoch, dt.timezone.utc).isoformat()


def _flags(text: str | None) -> list[str]:
    """A stored JSON list of flags (rows written before flags were JSON: comma-separated)."""
    if text and text.startswith("["):
        try:
            return sorted({str(f) for f in json.loads(text) if f})
        except ValueError:
            pass
    return sorted(set(filter(None, (text or "").split(","))))


def _where(tr: TimeRange, device_id: str | None) -> tuple[str, list[Any]]:
    where, hours = tr.sql("hour")
    args: list[Any] = list(hours)
    if device_id:
        where += " AND device_id = ?"
        args.append(device_id)
    return where, args


def latency_summary(db: Reader, device_id: str | None = None, tr: TimeRange = ALL_TIME,
                    stage: str | None = None) -> list[dict[str, Any]]:
    """Per device and stage, the merged histogram of every hour in ``tr``."""
    where, args = _where(tr, device_id)
    if stage:
        where += " AND stage = ?"
        args.append(stage)
    groups: dict[tuple[str, str], list[Any]] = {}
    for dev, st, windows, count, total_ms, hist in db.execute(
            f"SELECT device_id, stage, windows, count, total_ms, hist FROM rollup_latency WHERE {where}",
            args).fetchall():
        g = groups.setdefault((dev, st), [0, 0, 0.0, []])
        g[0] += int(windows)
        g[1] += int(count)
        g[2] += float(total_ms)
        g[3].append(bytes(hist))
    out = []
    for (dev, st), (windows, count, total_ms, hists) in groups.items():
        merged = summary_of_packed(hists)
        if count:  # the exact mean of the samples (the windows' own), not the histogram's bucket estimate
            merged["mean"] = total_ms / count
        out.append({"device_id": dev, "stage": st, "windows": windows, **merged})
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    return sorted(out, key=lambda r: (r["device_id"], order.get(r["stage"], 99), r["stage"]))


def robustness_summary(db: Reader, device_id: str | None = None, tr: TimeRange = ALL_TIME) -> list[dict[str, Any]]:
    where, args = _where(tr, device_id)
    rows = db.execute(
        f"SELECT device_id, perturbation, severity, SUM(n), SUM(unstable) FROM rollup_robustness WHERE {where} "
        "GROUP BY device_id, perturbation, severity ORDER BY device_id, perturbation, severity", args
    ).fetchall()
    out = []
    for dev, pert, sev, n, unstable in rows:
        n, unstable = int(n), int(unstable)
        lo, hi = wilson_interval(unstable, n)
        fraction = unstable / n if n else 0.0
        out.append({"device_id": dev, "perturbation": pert, "severity": float(sev), "n": n, "unstable": unstable,
                    "fraction": fraction, "ci_low": lo, "ci_high": hi, "zone": risk_zone(fraction)})
    return out


def health_summary(db: Reader, device_id: str | None = None, tr: TimeRange = ALL_TIME) -> list[dict[str, Any]]:
    """Frame-weighted means of the camera statistics over the range, and which flags were raised."""
    where, args = _where(tr, device_id)
    rows = db.execute(
        "SELECT device_id, SUM(windows), SUM(frames), SUM(fps_sum), SUM(brightness_sum), SUM(contrast_sum), "
        f"SUM(sharpness_sum), SUM(frozen_frames), MAX(spool_dropped_max) FROM rollup_health WHERE {where} "
        "GROUP BY device_id ORDER BY device_id", args).fetchall()
    flags: dict[str, dict[str, int]] = {}
    for dev, flag, windows in db.execute(
            f"SELECT device_id, flag, SUM(windows) FROM rollup_health_flags WHERE {where} GROUP BY device_id, flag",
            args).fetchall():
        flags.setdefault(dev, {})[flag] = int(windows)
    out = []
    for dev, windows, frames, fps, bright, contrast, sharp, frozen, dropped in rows:
        per = max(int(frames), 1)
        out.append({"device_id": dev, "windows": int(windows), "frames": int(frames), "fps": fps / per,
                    "brightness": bright / per, "contrast": contrast / per, "sharpness": sharp / per,
                    "frozen_frames": int(frozen), "spool_dropped": int(dropped),
                    "flags": sorted(flags.get(dev, {})), "flag_windows": flags.get(dev, {})})
    return out


def devices(db: Reader) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT d.device_id, d.fleet, d.online, d.last_seen, d.model_sha256, d.agent_version, s.seq_received, "
        "s.seq_max - s.seq_min + 1 - s.seq_received FROM devices d LEFT JOIN device_state s "
        "ON s.device_id = d.device_id ORDER BY d.device_id"
    ).fetchall()
    keys = ("device_id", "fleet", "online", "last_seen", "model_sha256", "agent_version", "messages",
            "seq_missing")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def kind_counts(db: Reader) -> dict[str, int]:
    return {k: int(n) for k, n in db.execute("SELECT kind, SUM(stored) FROM device_kinds GROUP BY kind").fetchall()}


_STATE_KEYS = ("device_id", "health_ts", "window_s", "frames", "fps", "brightness", "contrast", "sharpness", "noise",
               "occlusion", "clipped", "frozen_frames", "spool_queued", "spool_dropped", "flags", "alerts",
               "drift_ts", "drift_psi", "output_drift", "input_drift", "drift_attribution", "ingest_lag_s",
               "last_received_ts")


def device_state(db: Reader) -> dict[str, dict[str, Any]]:
    """Each device's latest figures: its newest health and drift window, lag of its newest message."""
    out: dict[str, dict[str, Any]] = {}
    for r in db.execute(f"SELECT {', '.join(_STATE_KEYS)} FROM device_state").fetchall():
        d = dict(zip(_STATE_KEYS, r, strict=True))
        d["flags"], d["alerts"] = _flags(d["flags"]), _flags(d["alerts"])
        out[d["device_id"]] = d
    return out


def latest_health(db: Reader) -> dict[str, dict[str, Any]]:
    """Each device's most recent health window: what its camera looks like now, not on average."""
    return {d: s for d, s in device_state(db).items() if s["health_ts"] is not None}


def latest_latency(db: Reader) -> list[dict[str, Any]]:
    keys = ("device_id", "stage", "ts", "count", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "total_count",
            "total_ms")
    return [dict(zip(keys, r, strict=True)) for r in
            db.execute(f"SELECT {', '.join(keys)} FROM device_latency_latest ORDER BY device_id, stage").fetchall()]


def latest_robustness(db: Reader) -> list[dict[str, Any]]:
    keys = ("device_id", "perturbation", "severity", "ts", "n", "unstable", "fraction")
    return [dict(zip(keys, r, strict=True)) for r in db.execute(
        f"SELECT {', '.join(keys)} FROM device_robustness_latest ORDER BY device_id, perturbation, severity"
    ).fetchall()]


def latest_breaking_points(db: Reader) -> list[dict[str, Any]]:
    keys = ("device_id", "perturbation", "ts", "severity", "found")
    return [dict(zip(keys, r, strict=True)) for r in db.execute(
        f"SELECT {', '.join(keys)} FROM device_breaking_latest ORDER BY device_id, perturbation").fetchall()]


def latest_verdicts(db: Reader) -> list[dict[str, Any]]:
    keys = ("device_id", "suite", "ts", "status", "exit_code")
    return [dict(zip(keys, r, strict=True)) for r in db.execute(
        f"SELECT {', '.join(keys)} FROM device_verdict_latest ORDER BY device_id, suite").fetchall()]


def kinds_per_device(db: Reader) -> list[tuple[str, str, int]]:
    return [(d, k, int(n)) for d, k, n in db.execute("SELECT device_id, kind, stored FROM device_kinds").fetchall()]


def worst_perturbation(db: Reader, tr: TimeRange = ALL_TIME) -> dict[str, dict[str, Any]]:
    """Per device, the perturbation cell with the highest unstable fraction (ties: the milder severity)."""
    out: dict[str, dict[str, Any]] = {}
    for row in robustness_summary(db, tr=tr):
        cur = out.get(row["device_id"])
        if cur is None or (row["fraction"], -row["severity"]) > (cur["fraction"], -cur["severity"]):
            out[row["device_id"]] = row
    return out


def fleet_status(db: Reader, stage: str = "e2e", tr: TimeRange = ALL_TIME) -> list[dict[str, Any]]:
    """One row per device: online, last heard, latency and worst perturbation over ``tr``, camera now."""
    lat = {r["device_id"]: r for r in latency_summary(db, tr=tr, stage=stage)}
    worst = worst_perturbation(db, tr)
    health = latest_health(db)
    extra = {r[0]: r[1:] for r in db.execute("SELECT device_id, sessions, session_id FROM devices").fetchall()}
    out = []
    for dev in devices(db):
        d = dev["device_id"]
        w, h = worst.get(d), health.get(d, {})
        sessions, session_id = extra.get(d, (None, None))
        out.append({
            **dev, "online": bool(dev["online"]), "sessions": sessions, "session_id": session_id,
            f"{stage}_p99_ms": lat[d].get("p99") if d in lat else None,
            f"{stage}_p50_ms": lat[d].get("p50") if d in lat else None,
            "latency_samples": lat[d]["count"] if d in lat else 0,
            "worst_perturbation": None if w is None else {k: w[k] for k in ("perturbation", "severity", "fraction",
                                                                                "n", "zone")},
            "camera_flags": h.get("flags", []), "spool_dropped": h.get("spool_dropped"),
            "health_ts": _iso(h.get("health_ts")),
        })
    return out


def unhealthy_cameras(db: Reader, tr: TimeRange = ALL_TIME) -> list[dict[str, Any]]:
    """Devices whose latest health window raised a flag (blur, dark, frozen, ...) or that are offline."""
    return [r for r in fleet_status(db, tr=tr) if r["camera_flags"] or not r["online"]]
