"""Ingest throughput: publishers -> real mosquitto -> collector -> SQLite, next to the broker's own ceiling.

Measured side by side in one run on the same machine:
  * store path alone: ``Store.ingest`` on pre-encoded messages (decode + validate + insert_all), no MQTT;
  * broker ceiling: the same QoS 1 messages from the same publisher processes to one bare paho
    subscriber that only counts them (mosquitto pub->sub, no database);
  * 1 collector, then 2 collectors in a shared group (``$share/<group>/edgeprobe/v1/#``), each a real
    ``edgeprobe collect`` process writing one SQLite file; time from the first publish until the
    database holds every message.

    python benchmarks/ingest.py [--quick] [--json] [--messages N] [--rounds R]

Prints medians over rounds and the ratios that matter (stored / broker ceiling, 2 / 1 collectors).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from edgeprobe.collector.store import Incoming, Store
from edgeprobe.harness import schema
from paho.mqtt.enums import CallbackAPIVersion

from edgeprobe.localbroker import LocalBroker

DEVICES = 8
PUBLISHERS = 2


def make_messages(n: int, offset: int = 0) -> list[tuple[str, bytes]]:
    """Health messages (a typical per-window result, ~600 bytes) from DEVICES devices."""
    out = []
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    for i in range(n):
        dev = f"cam-{i % DEVICES}"
        body = {"window": {"start_ts": now, "end_ts": now, "first_frame": 0, "last_frame": 299, "frames": 300},
                "fps": 29.9, "brightness": 0.45, "contrast": 0.21, "sharpness": 812.5, "clipped": 0.01,
                "frozen_frames": 0, "spool_queued": 0, "spool_dropped": 0, "flags": [], "rss_mb": 180.2}
        msg = schema.make_envelope(kind="health", device_id=dev, fleet="bench", session_id="s", seq=offset + i,
                                   body=body, model_sha256="a" * 64, config_sha256="b" * 64, agent_version="0.1.0")
        out.append((schema.topic_for("bench", dev, "health"), schema.encode(msg)))
    return out


def _publish_proc(port: int, items: list[tuple[str, bytes]], go: Any, done: Any) -> None:
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}",
                    protocol=mqtt.MQTTv311)
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    go.wait()
    infos = [c.publish(t, p, qos=1) for t, p in items]
    for info in infos:
        info.wait_for_publish(120)
    done.set()
    c.disconnect()
    c.loop_stop()


def publish(port: int, items: list[tuple[str, bytes]], until: Any) -> float:
    """Publish from PUBLISHERS processes; return seconds from the start signal until ``until()`` is true."""
    ctx = mp.get_context("fork")
    go = ctx.Event()
    procs, dones = [], []
    for k in range(PUBLISHERS):
        done = ctx.Event()
        p = ctx.Process(target=_publish_proc, args=(port, items[k::PUBLISHERS], go, done))
        p.start()
        procs.append(p)
        dones.append(done)
    time.sleep(0.5)  # connected
    t0 = time.perf_counter()
    go.set()
    while not until():
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=60)
    return elapsed


def broker_ceiling(items: list[tuple[str, bytes]]) -> float:
    with LocalBroker() as broker:
        got = [0]
        ready = threading.Event()
        sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-sub",
                          protocol=mqtt.MQTTv5)

        def on_message(*_: Any) -> None:
            got[0] += 1

        sub.on_message = on_message
        sub.on_subscribe = lambda *_: ready.set()
        sub.connect("127.0.0.1", broker.port)
        sub.loop_start()
        sub.subscribe("$share/bench/edgeprobe/v1/#", qos=1)
        ready.wait(10)
        seconds = publish(broker.port, items, lambda: got[0] >= len(items))
        sub.loop_stop()
        return len(items) / seconds


def _count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def collectors(items: list[tuple[str, bytes]], n: int, work: Path) -> dict[str, Any]:
    db = work / f"fleet-{n}-{time.monotonic_ns()}.db"
    Store(db).close()
    with LocalBroker() as broker:
        procs = []
        for i in range(n):
            ready = work / f"ready-{i}-{time.monotonic_ns()}"
            log = work / f"collector-{i}.log"
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "edgeprobe", "collect", "--db", str(db), "--broker", broker.address,
                 "--client-id", f"bench-c{i}-{time.monotonic_ns()}", "--group", "bench", "--ready-file", str(ready)],
                stdout=log.open("wb"), stderr=subprocess.STDOUT))  # the child keeps the descriptor
            while not ready.exists():
                time.sleep(0.05)
        last = [0.0]

        def stored() -> bool:
            if time.perf_counter() - last[0] < 0.05:
                return False
            last[0] = time.perf_counter()
            return _count(db) >= len(items)

        seconds = publish(broker.port, items, stored)
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        assert _count(db) == len(items), f"{_count(db)} of {len(items)} stored"
    return {"msg_per_s": len(items) / seconds, "per_collector": len(items) / seconds / n}


def store_path(items: list[tuple[str, bytes]], work: Path) -> dict[str, float]:
    """The collector's ingest path with no MQTT: where its time goes per message."""
    store = Store(work / f"store-{time.monotonic_ns()}.db")
    now = dt.datetime.now(dt.timezone.utc)
    batch = 2000
    t_decode = t_total = 0.0
    for i in range(0, len(items), batch):
        chunk = [Incoming(t, p, now) for t, p in items[i:i + batch]]
        t0 = time.perf_counter()
        for it in chunk:
            schema.decode_message(it.payload, it.topic)
        t1 = time.perf_counter()
        store.ingest(chunk)
        t2 = time.perf_counter()
        t_decode += t1 - t0
        t_total += t2 - t1
    store.close()
    n = len(items)
    return {"msg_per_s": n / t_total, "decode_us": 1e6 * t_decode / n, "ingest_us": 1e6 * t_total / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer messages and one round (a smoke run)")
    ap.add_argument("--json", action="store_true", help="print one JSON summary line")
    ap.add_argument("--messages", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    n = args.messages or (10_000 if args.quick else 50_000)
    rounds = args.rounds or (1 if args.quick else 3)
    work = Path(tempfile.mkdtemp(prefix="edgeprobe-ingest-"))
    results: dict[str, list[Any]] = {"store": [], "ceiling": [], "c1": [], "c2": []}
    for r in range(rounds):
        items = make_messages(n, offset=r * n)
        results["store"].append(store_path(items, work))
        results["ceiling"].append(broker_ceiling(items))
        results["c1"].append(collectors(items, 1, work))
        results["c2"].append(collectors(items, 2, work))
        if not args.json:
            print(f"round {r + 1}/{rounds}: store {results['store'][-1]['msg_per_s']:,.0f}/s, "
                  f"broker {results['ceiling'][-1]:,.0f}/s, 1 collector {results['c1'][-1]['msg_per_s']:,.0f}/s, "
                  f"2 collectors {results['c2'][-1]['msg_per_s']:,.0f}/s", file=sys.stderr)
    med = statistics.median
    summary = {
        "messages": n, "rounds": rounds, "cpus": os.cpu_count(), "publishers": PUBLISHERS, "devices": DEVICES,
        "store_only_msg_per_s": round(med(x["msg_per_s"] for x in results["store"])),
        "decode_us_per_msg": round(med(x["decode_us"] for x in results["store"]), 2),
        "store_ingest_us_per_msg": round(med(x["ingest_us"] for x in results["store"]), 2),
        "broker_ceiling_msg_per_s": round(med(results["ceiling"])),
        "one_collector_msg_per_s": round(med(x["msg_per_s"] for x in results["c1"])),
        "two_collectors_msg_per_s": round(med(x["msg_per_s"] for x in results["c2"])),
    }
    summary["one_collector_vs_ceiling"] = round(
        summary["one_collector_msg_per_s"] / summary["broker_ceiling_msg_per_s"], 3)
    summary["two_vs_one_collector"] = round(summary["two_collectors_msg_per_s"] / summary["one_collector_msg_per_s"], 3)
    summary["rounds_detail"] = {k: [round(x["msg_per_s"] if isinstance(x, dict) else x) for x in v]
                                for k, v in results.items()}
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:28s} {v}")


if __name__ == "__main__":
    main()
