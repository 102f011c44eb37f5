"""Questions a user asks of the collector's database, answered from stored rows.

Latency percentiles over many windows come from merging the windows'
histograms, never from averaging their percentiles.
"""

from __future__ import annotations

from typing import Any

import sqlite_utils

from ..harness.latency import histogram_summary, merge_histograms
from ..harness.stability import risk_zone, wilson_interval

STAGE_ORDER = ("decode", "preprocess", "inference", "postprocess", "e2e", "probe")


def latency_summary(db: sqlite_utils.Database, device_id: str | None = None) -> list[dict[str, Any]]:
    where, args = ("WHERE device_id = ?", [device_id]) if device_id else ("", [])
    groups: dict[tuple[str, str], list[str]] = {}
    for dev, stage, hdr in db.execute(f"SELECT device_id, stage, hdr FROM latency {where}", args):
        groups.setdefault((dev, stage), []).append(hdr)
    out = []
    for (dev, stage), hdrs in groups.items():
        merged = histogram_summary(merge_histograms(hdrs))
        out.append({"device_id": dev, "stage": stage, "windows": len(hdrs), **merged})
    order = {s: i for i, s in enumerate(STAGE_ORDER)}
    return sorted(out, key=lambda r: (r["device_id"], order.get(r["stage"], 99), r["stage"]))


def robustness_summary(db: sqlite_utils.Database, device_id: str | None = None) -> list[dict[str, Any]]:
    where, args = ("WHERE device_id = ?", [device_id]) if device_id else ("", [])
    rows = db.execute(
        f"SELECT device_id, perturbation, severity, SUM(n), SUM(unstable) FROM robustness {where} "
        "GROUP BY device_id, perturbation, severity ORDER BY device_id, perturbation, severity", args
    ).fetchall()
    out = []
    for dev, pert, sev, n, unstable in rows:
        lo, hi = wilson_interval(int(unstable), int(n))
        fraction = unstable / n if n else 0.0
        out.append({"device_id": dev, "perturbation": pert, "severity": sev, "n": n, "unstable": unstable,
                    "fraction": fraction, "ci_low": lo, "ci_high": hi, "zone": risk_zone(fraction)})
    return out


def health_summary(db: sqlite_utils.Database, device_id: str | None = None) -> list[dict[str, Any]]:
    where, args = ("WHERE device_id = ?", [device_id]) if device_id else ("", [])
    rows = db.execute(
        "SELECT device_id, COUNT(*), SUM(frames), SUM(fps * frames) / MAX(SUM(frames), 1), "
        "SUM(brightness * frames) / MAX(SUM(frames), 1), SUM(contrast * frames) / MAX(SUM(frames), 1), "
        "SUM(sharpness * frames) / MAX(SUM(frames), 1), SUM(frozen_frames), MAX(spool_dropped), "
        f"GROUP_CONCAT(NULLIF(flags, ''), ',') FROM health {where} GROUP BY device_id ORDER BY device_id", args
    ).fetchall()
    keys = ("device_id", "windows", "frames", "fps", "brightness", "contrast", "sharpness", "frozen_frames",
            "spool_dropped", "flags")
    out = []
    for r in rows:
        d = dict(zip(keys, r, strict=True))
        d["flags"] = sorted(set(filter(None, (d["flags"] or "").split(","))))
        out.append(d)
    return out


def devices(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT d.device_id, d.fleet, d.online, d.last_seen, d.model_sha256, d.agent_version, "
        "s.received, s.missing FROM devices d LEFT JOIN device_seq s USING (device_id) ORDER BY d.device_id"
    ).fetchall()
    keys = ("device_id", "fleet", "online", "last_seen", "model_sha256", "agent_version", "messages",
            "seq_missing")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def kind_counts(db: sqlite_utils.Database) -> dict[str, int]:
    return {k: n for k, n in db.execute("SELECT kind, COUNT(*) FROM messages GROUP BY kind")}


def latest_health(db: sqlite_utils.Database) -> dict[str, dict[str, Any]]:
    """Each device's most recent health window: what its camera looks like now, not on average."""
    rows = db.execute(
        "SELECT h.device_id, h.ts, h.fps, h.brightness, h.sharpness, h.frozen_frames, h.spool_queued, "
        "h.spool_dropped, h.flags FROM health h JOIN (SELECT device_id, MAX(ts) AS ts FROM health "
        "GROUP BY device_id) m ON h.device_id = m.device_id AND h.ts = m.ts"
    ).fetchall()
    keys = ("device_id", "ts", "fps", "brightness", "sharpness", "frozen_frames", "spool_queued", "spool_dropped",
            "flags")
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        d = dict(zip(keys, r, strict=True))
        d["flags"] = sorted(set(filter(None, (d["flags"] or "").split(","))))
        out[d["device_id"]] = d
    return out


def worst_perturbation(db: sqlite_utils.Database) -> dict[str, dict[str, Any]]:
    """Per device, the perturbation cell with the highest unstable fraction (ties: the milder severity)."""
    out: dict[str, dict[str, Any]] = {}
    for row in robustness_summary(db):
        cur = out.get(row["device_id"])
        if cur is None or (row["fraction"], -row["severity"]) > (cur["fraction"], -cur["severity"]):
            out[row["device_id"]] = row
    return out


def fleet_status(db: sqlite_utils.Database, stage: str = "e2e") -> list[dict[str, Any]]:
    """One row per device: is it online, when was it last heard, how fast, how robust, how its camera is."""
    lat = {r["device_id"]: r for r in latency_summary(db) if r["stage"] == stage}
    worst = worst_perturbation(db)
    health = latest_health(db)
    extra = {r[0]: r[1:] for r in db.execute("SELECT device_id, sessions, session_id FROM devices")}
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
            "health_ts": h.get("ts"),
        })
    return out


def unhealthy_cameras(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """Devices whose latest health window raised a flag (blur, dark, frozen, ...) or that are offline."""
    return [r for r in fleet_status(db) if r["camera_flags"] or not r["online"]]
