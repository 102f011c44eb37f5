"""Fleet benchmark: does the collector answer in constant time per device however long it has run?

    .venv/bin/python benchmarks/fleet.py --devices 1000 --days 30 [--quick] [--json]

1. **Ingest**: one reporting hour of realistic windows (benchmarks/fleet_synth.py: latency with real
   HdrHistograms, robustness, health, drift) from ``--devices`` devices through the real
   ``Store.ingest`` in collector-sized batches (500), by 1 and by 2 collector processes sharing
   one SQLite file, then one PostgreSQL database (a throwaway cluster from Debian's binaries,
   tests/pgserver.py, with fsync and synchronous commit on: a collector acks only what is durable;
   skipped, saying why, where PostgreSQL is not installed). Reports stored msg/s and CPU seconds
   per 1,000 stored messages per collector (process CPU time, so a 2-core machine busy with other
   work still shows whether two collectors contend: contention shows as CPU per message going up,
   not only as a lower rate). The PostgreSQL server's own CPU is reported beside it. Each collector
   gets devices of its own; PostgreSQL also runs a third configuration, two collectors dealt
   alternate messages of the same devices, as a shared group does: their batches then share
   devices, whose rows they update in turn.
2. **History**: the hour's rollup rows copied back over ``--days`` days (SQL, same rows per
   device x hour as ingest makes), so the database holds a month of rollups for every device.
3. **Questions**: ``fleet status`` (default --since 1h) and a full /metrics scrape, median and
   spread of 5 runs each, on that database; plus the database size and its parts.

Raw windows are not copied over the month: no fleet question reads them any more, and at 10 s
windows they are ~GBs per device-month; their size per device-day is measured and projected
under ``--retain-raw 7d`` instead.

``--soak`` instead runs retention for real: ``--soak-hours`` simulated hours of windows arrive (each
stamped with its simulated arrival), the pruner runs after each hour with that hour as "now" and
retention of ``--soak-raw-h`` / ``--soak-rollups-h`` hours, and the database size is printed each
hour: it must stop growing once the retention windows are full (SQLite reuses freed pages; on
PostgreSQL the soak runs VACUUM after each pass, as autovacuum would).
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
from edgeprobe.collector.retention import Pruner, Retention
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
                 out: Any, dealt: int = 0) -> None:
    """``dealt``: every collector sees the whole fleet, taking every ``dealt``-th message (as a shared group
    deals them out), instead of a fleet of its own."""
    msgs = (_messages(devices, 0, hours, every_s, seed=0)[first::dealt] if dealt
            else _messages(devices, first, hours, every_s, seed=first))
    store = Store(path)
    ready.set()
    go.wait()
    cpu0, t0 = time.process_time(), time.perf_counter()
    stored = 0
    for i in range(0, len(msgs), BATCH):
        stored += store.ingest(msgs[i:i + BATCH])[0]
    out.put({"stored": stored, "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - cpu0})
    store.close()


def _server_cpu_s(pid: int | None) -> float:
    """CPU seconds of a PostgreSQL server so far: the postmaster and its children (backends, writer, WAL)."""
    if pid is None:
        return 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(proc.name) == pid:  # the postmaster, and the backends that exited (reaped: its cutime/cstime)
            total += sum(int(f) for f in fields[11:15]) / tick
        elif int(fields[1]) == pid:  # a live backend, writer, WAL writer
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def ingest(path: Path | str, devices: int, collectors: int, hours: float, every_s: float,
           server_pid: int | None = None, dealt: bool = False) -> dict[str, Any]:
    """Stored msg/s and CPU per 1000 stored messages, ``collectors`` processes on one store."""
    Store(path).close()
    ctx = mp.get_context("spawn")
    go, queue = ctx.Event(), ctx.Queue()
    procs, readies = [], []
    per = devices if dealt else devices // collectors
    for c in range(collectors):
        ready = ctx.Event()
        p = ctx.Process(target=_ingest_proc, args=(str(path), per, c, hours, every_s, ready, go,
                                                   queue, collectors if dealt else 0))
        p.start()
        procs.append(p)
        readies.append(ready)
    for r in readies:
        r.wait(timeout=1800)
    server0 = _server_cpu_s(server_pid)
    t0 = time.perf_counter()
    go.set()
    results = [queue.get(timeout=3600) for _ in procs]
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    stored = sum(r["stored"] for r in results)
    out = {"collectors": collectors, "dealt": dealt, "stored": stored, "msg_per_s": stored / wall,
           "cpu_s_per_1000": [round(1000 * r["cpu_s"] / max(r["stored"], 1), 3) for r in results]}
    if server_pid is not None:
        out["server_cpu_s_per_1000"] = round(1000 * (_server_cpu_s(server_pid) - server0) / max(stored, 1), 3)
    return out


def ingest_postgres(devices: int, hours: float, every_s: float) -> list[dict[str, Any]] | str:
    """The same ingest on one PostgreSQL database by 1, then 2 collectors; a sentence if there is no server."""
    from tests.pgserver import running_server

    with running_server(durable=True) as server:
        if isinstance(server, str):
            return server
        pid = server.proc.pid if server.proc else None
        return [*(ingest(server.create_database(), devices, n, hours, every_s, pid) for n in (1, 2)),
                ingest(server.create_database(), devices, 2, hours, every_s, pid, dealt=True)]


def _db_size(db: Path | str, conn: Any) -> int:
    if isinstance(db, Path):
        return sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))  # the file, its WAL and shm
    return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def soak(db: Path | str, devices: int, hours: int, raw_h: float, rollups_h: float,
         every_s: float) -> list[dict[str, Any]]:
    """Simulated hours of ingest with retention after each; the database size each hour."""
    store = Store(db)
    pruner = Pruner(str(db), Retention(raw_s=raw_h * 3600, rollups_s=rollups_h * 3600, chunk=500, pause_s=0.0))
    sizes = []
    for h in range(hours):
        start = START + dt.timedelta(hours=h)
        arrived = start + dt.timedelta(hours=1)
        msgs = [Incoming(m.topic, m.payload, arrived) for tick in
                stream(devices, start, hours=1, every_s=every_s, seed=h) for m in tick]
        for i in range(0, len(msgs), BATCH):
            store.ingest(msgs[i:i + BATCH])
        deleted = pruner.prune(arrived.timestamp())
        if not isinstance(db, Path):
            store.db.execute("VACUUM")  # what autovacuum does on a server that runs for days
        sizes.append({"hour": h + 1, "messages": int(store.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0]),
                      "pruned": deleted["messages"], "db_bytes": _db_size(db, store.db)})
    store.close()
    return sizes


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


def run(devices: int, days: int, hours: float, every_s: float, work: Path, ingest_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"devices": devices, "days": days, "window_s": every_s, "ingest_hours": hours}
    one = ingest(work / "one.db", devices, 1, hours, every_s)
    two = ingest(work / "two.db", devices, 2, hours, every_s)
    out["ingest_sqlite"] = [one, two]
    out["ingest_postgresql"] = ingest_postgres(devices, hours, every_s)
    if ingest_only:
        return out
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
    ap.add_argument("--ingest-only", action="store_true", help="only the ingest rows (no history, no questions)")
    ap.add_argument("--soak", action="store_true", help="retention soak instead: database size hour by hour")
    ap.add_argument("--soak-hours", type=int, default=12, help="simulated hours the soak runs")
    ap.add_argument("--soak-raw-h", type=float, default=3.0, help="raw retention in the soak (hours)")
    ap.add_argument("--soak-rollups-h", type=float, default=6.0, help="rollup retention in the soak (hours)")
    ap.add_argument("--soak-devices", type=int, default=50)
    a = ap.parse_args()
    if a.soak:
        run_soak(a)
        return
    devices, days = (100, 3) if a.quick else (a.devices, a.days)
    hours = a.ingest_hours or 1.0
    with tempfile.TemporaryDirectory(prefix="edgeprobe-fleet-bench-") as tmp:
        result = run(devices, days, hours, a.window_s, Path(tmp), a.ingest_only)
    result["cpu_count"] = os.cpu_count()
    if a.json:
        print(json.dumps(result))
        return
    print(f"fleet benchmark: {devices} devices x {days} days of hourly rollups")
    for r in result["ingest_sqlite"]:
        print(f"  SQLite, {r['collectors']} collector(s): {r['msg_per_s']:.0f} stored msg/s, "
              f"CPU s per 1000 stored per collector {r['cpu_s_per_1000']}")
    pg = result["ingest_postgresql"]
    if isinstance(pg, str):
        print(f"  PostgreSQL: not measured ({pg})")
    else:
        for r in pg:
            how = ", every device's messages dealt to both" if r["dealt"] else ""
            print(f"  PostgreSQL, {r['collectors']} collector(s){how}: {r['msg_per_s']:.0f} stored msg/s, "
                  f"CPU s per 1000 stored per collector {r['cpu_s_per_1000']}, server "
                  f"{r['server_cpu_s_per_1000']} CPU s per 1000")
    if a.ingest_only:
        return
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


def run_soak(a: argparse.Namespace) -> None:
    results: dict[str, Any] = {"devices": a.soak_devices, "hours": a.soak_hours, "raw_h": a.soak_raw_h,
                               "rollups_h": a.soak_rollups_h, "window_s": a.window_s}
    with tempfile.TemporaryDirectory(prefix="edgeprobe-fleet-soak-") as tmp:
        results["sqlite"] = soak(Path(tmp) / "soak.db", a.soak_devices, a.soak_hours, a.soak_raw_h,
                                 a.soak_rollups_h, a.window_s)
    from tests.pgserver import running_server

    with running_server(durable=True) as server:
        results["postgresql"] = server if isinstance(server, str) else soak(
            server.create_database(), a.soak_devices, a.soak_hours, a.soak_raw_h, a.soak_rollups_h, a.window_s)
    if a.json:
        print(json.dumps(results))
        return
    print(f"retention soak: {a.soak_devices} devices, {a.soak_hours} simulated hours, --retain-raw {a.soak_raw_h:g}h "
          f"--retain-rollups {a.soak_rollups_h:g}h, {a.window_s:g} s windows")
    for name in ("sqlite", "postgresql"):
        rows = results[name]
        if isinstance(rows, str):
            print(f"  {name}: not measured ({rows})")
            continue
        print(f"  {name}: raw messages kept / database MB after each hour: "
              + ", ".join(f"{r['messages']}/{r['db_bytes'] / 1e6:.1f}" for r in rows))


if __name__ == "__main__":
    main()
