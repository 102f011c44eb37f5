"""Fleet benchmark: does the collector answer in constant time per device however long it has run?

    .venv/bin/python benchmarks/fleet.py --devices 1000 --days 30 [--quick] [--json]

1. **Ingest**: one reporting hour of realistic windows (benchmarks/fleet_synth.py: latency with real
   HdrHistograms, robustness, health, drift) from ``--devices`` devices through the real
   ``Store.ingest`` in collector-sized batches (500), by 1 and by 2 collector processes sharing
   one SQLite file. Reports stored msg/s and CPU seconds per 1,000 stored messages per collector
   (process CPU time, so a 2-core machine busy with other work still shows whether two collectors
   contend: contention shows as CPU per message going up, not only as a lower rate).
2. **History**: the hour's rollup rows copied back over ``--days`` days (SQL, same rows per
   device x hour as ingest makes), so the database holds a month of rollups for every device.
3. **Questions**: ``fleet status`` (default --since 1h) and a full /metrics scrape, median and
   spread of 5 runs each, on that database; plus the database size and its parts.

Raw windows are not copied over the month: no fleet question reads them any more, and at 10 s
windows they are ~GBs per device-month; their size per device-day is measured and projected
under ``--retain-raw 7d`` instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fleet_synth import stream
from edgeprobe.collector import queries
from edgeprobe.collector.prometheus import registry_for
from edgeprobe.collector.rollups import ROLLUP_TABLES
from edgeprobe.collector.store import Incoming, Store
from edgeprobe.collector.timerange import TimeRange

BATCH = 500
START = dt.datetime(2026, 1, 1, 0, 0, tzinfo=dt.timezone.utc)


def _messages(devices: int, first: int, hours: float, every_s: float, seed: int) -> list[Incoming]:
    out: list[Incoming] = []
    for tick in stream(devices, START, hours=hours, every_s=every_s, seed=seed, prefix=f"c{first}-cam-"):
        out.extend(tick)
    return out


def _ingest_proc(path: str, devices: int, first: int, hours: float, every_s: float, ready: Any, go: Any,
                 out: Any) -> None:
    msgs = _messages(devices, first, hours, every_s, seed=first)
    store = Store(path)
    ready.set()
    go.wait()
    cpu0, t0 = time.process_time(), time.perf_counter()
    stored = 0
    for i in range(0, len(msgs), BATCH):
        stored += store.ingest(msgs[i:i + BATCH])[0]
    out.put({"stored": stored, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0})
    store.close()


def ingest(path: Path, devices: int, collectors: int, hours: float, every_s: float) -> dict[str, Any]:
    """Stored msg/s and CPU per 1000 stored messages, ``collectors`` processes on one store."""
    Store(path).close()
    ctx = mp.get_context("spawn")
    go, queue = ctx.Event(), ctx.Queue()
    procs, readies = [], []
    per = devices // collectors
    for c in range(collectors):
        ready = ctx.Event()
        p = ctx.Process(target=_ingest_proc, args=(str(path), per, c, hours, every_s, ready, go,
                                                   queue))
        p.start()
        procs.append(p)
        readies.append(ready)
    for r in readies:
        r.wait(timeout=1800)
    t0 = time.perf_counter()
    go.set()
    results = [queue.get(timeout=3600) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    stored = sum(r["stored"] for r in results)
    return {"collectors": collectors, "stored": stored, "msg_per_s": stored / wall,
            "cpu_s_per_1000": [round(1000 * r["cpu_s"] / max(r["stored"], 1), 3) for r in results]}


def replicate_history(path: Path, days: int) -> int:
    """Copy the ingested hour's rollup rows over ``days`` days before it; returns rollup rows."""
    conn = sqlite3.connect(path)
    # building synthetic history is not what is measured: no fsync, no WAL copy of gigabytes
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=OFF")
    hour0 = conn.execute("SELECT MIN(hour) FROM rollup_latency").fetchone()[0]
    for table in ROLLUP_TABLES:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        select = ", ".join("hour - ? * 3600" if c == "hour" else c for c in cols)
        with conn:
            for k in range(1, days * 24):
                conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select} FROM {table} "
                             "WHERE hour = ?", (k, hour0))
    n = sum(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ROLLUP_TABLES)
    conn.execute("PRAGMA journal_mode=WAL")  # as the collector runs it
    conn.close()
    return int(n)


def _timed(fn: Any, runs: int = 5) -> dict[str, float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return {"median_s": round(statistics.median(times), 4), "min_s": round(min(times), 4),
            "max_s": round(max(times), 4)}


def table_bytes(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
        return {n: int(s) for n, s in rows}
    except sqlite3.OperationalError:  # SQLite built without dbstat
        return {}
    finally:
        conn.close()


def run(devices: int, days: int, hours: float, every_s: float, work: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": devices, "days": days, "window_s": every_s, "ingest_hours": hours}
    one = ingest(work / "one.db", devices, 1, hours, every_s)
    two = ingest(work / "two.db", devices, 2, hours, every_s)
    out["ingest_sqlite"] = [one, two]
    db = work / "one.db"
    parts = table_bytes(db)
    raw = sum(parts.get(t, 0) for t in ("messages", "latency", "robustness", "health"))
    windows = devices * hours * 3600 / every_s  # reporting windows ingested (births aside)
    # projected to the agent's default 10 s windows, the rate a real camera reports at
    out["raw_bytes_per_device_day"] = int(raw / windows * 8640)
    out["rollup_rows"] = replicate_history(db, days)
    parts = table_bytes(db)
    rollup = sum(v for k, v in parts.items() if k.startswith("rollup_"))
    out["rollup_bytes_per_device_day"] = int(rollup / devices / days)
    out["db_bytes"] = db.stat().st_size
    out["projected_db_bytes_7d_raw_400d_rollups"] = devices * (7 * out["raw_bytes_per_device_day"]
                                                                + 400 * out["rollup_bytes_per_device_day"])
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    now = conn.execute("SELECT MAX(hour) FROM rollup_latency").fetchone()[0] + 1800
    last_hour = TimeRange.of(now - 3600, now)
    rows = queries.fleet_status(conn, tr=last_hour)
    assert len(rows) == devices and all(r["latency_samples"] for r in rows), "status lost devices"
    out["fleet_status_1h"] = _timed(lambda: queries.fleet_status(conn, tr=last_hour))
    out["fleet_status_whole_history"] = _timed(lambda: queries.fleet_status(conn), runs=1)
    from prometheus_client import generate_latest

    registry = registry_for(db)
    text = generate_latest(registry)
    out["scrape_bytes"] = len(text)
    out["scrape"] = _timed(lambda: generate_latest(registry))
    conn.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--ingest-hours", type=float, default=None,
                    help="reporting time ingested per device (default 1 h at 10-minute windows)")
    ap.add_argument("--window-s", type=float, default=600.0)
    ap.add_argument("--quick", action="store_true", help="100 devices x 3 days, a few seconds of ingest")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    devices, days = (100, 3) if a.quick else (a.devices, a.days)
    hours = a.ingest_hours or 1.0
    with tempfile.TemporaryDirectory(prefix="edgeprobe-fleet-bench-") as tmp:
        result = run(devices, days, hours, a.window_s, Path(tmp))
    result["cpu_count"] = os.cpu_count()
    if a.json:
        print(json.dumps(result))
        return
    print(f"fleet benchmark: {devices} devices x {days} days of hourly rollups")
    for r in result["ingest_sqlite"]:
        print(f"  SQLite, {r['collectors']} collector(s): {r['msg_per_s']:.0f} stored msg/s, "
              f"CPU s per 1000 stored per collector {r['cpu_s_per_1000']}")
    s, m = result["fleet_status_1h"], result["scrape"]
    print(f"  fleet status --since 1h: {s['median_s']:.3f} s (median of 5, {s['min_s']:.3f}-{s['max_s']:.3f})")
    print(f"  fleet status over all {days} days: {result['fleet_status_whole_history']['median_s']:.3f} s")
    print(f"  /metrics scrape: {m['median_s']:.3f} s (median of 5, {m['min_s']:.3f}-{m['max_s']:.3f}), "
          f"{result['scrape_bytes'] / 1e6:.1f} MB")
    print(f"  database: {result['db_bytes'] / 1e6:.0f} MB; rollups {result['rollup_bytes_per_device_day'] / 1e3:.0f} "
          f"kB per device-day, raw {result['raw_bytes_per_device_day'] / 1e6:.1f} MB per device-day at the "
          "agent's 10 s windows")
    print(f"  projected with --retain-raw 7d --retain-rollups 400d: "
          f"{result['projected_db_bytes_7d_raw_400d_rollups'] / 1e9:.1f} GB")


if __name__ == "__main__":
    main()
