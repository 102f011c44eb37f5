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
