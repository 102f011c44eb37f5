"""Ingest throughput: publishers -> real mosquitto -> collector -> SQLite, next to the broker's own ceiling.

Measured side by side in one run on the same machine:
  * store path alone: ``Store.ingest`` on pre-encoded messages (decode + validate + insert, in this process), no MQTT;
  * broker ceiling: the same QoS 1 messages from the same publisher processes to one bare
    subscriber that only counts them (mosquitto pub->sub, no database), on the same stock paho
    client as the collector;
  * 1 collector, then 2 collectors in a shared group (``$share/<group>/edgeprobe/v1/#``), each a real
    ``edgeprobe collect`` process writing one SQLite file; time from the first publish until the
    database holds every message (polled every 50 ms, so up to 50 ms late); one collector also with
    ``--client gmqtt`` where gmqtt is installed (the same batching and acks on the other client);
  * CPU microseconds per message of the collector(s) (network and store process apart), mosquitto and the
    publishers, from /proc.

Everything runs on one machine: publishers, mosquitto, subscriber/collectors (and the
benchmark's own polling) share its cores, so on a 2-core machine the rates are bounded by
the sum of their CPU per message, not by the collector alone. The publishers are a few
lines of raw MQTT 3.1.1 over a socket with pre-encoded packets (paho's publisher cost more
CPU per message than the collector), and the CPU figures say what each part would sustain
with a core of its own.

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
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeprobe.cli.localbroker import LocalBroker
from edgeprobe.collector.service import BATCH_MAX
from edgeprobe.collector.store import Incoming, Store
from edgeprobe.harness import schema

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


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _packet(header: int, body: bytes) -> bytes:
    return bytes([header]) + _varint(len(body)) + body


def _publish_proc(port: int, items: list[tuple[str, bytes]], ready: Any, go: Any, cpu: Any) -> None:
    """A minimal MQTT 3.1.1 QoS 1 publisher on a plain socket, with packets encoded before the clock starts.

    On a 2-core machine the publishers share the CPUs with the broker and the
    collector; paho's publisher costs ~120 us of CPU per message, more than the
    collector itself, so the figure measured the publishers as much as anything.
    This one sends pre-built PUBLISH packets in bulk and counts PUBACKs, at a few
    us per message, so what is left is mosquitto and its subscriber(s).
    At most WINDOW messages are unacknowledged, like a real client's in-flight limit.
    """
    import socket

    window, chunk = 1000, 100
    packets = []
    for i, (topic, payload) in enumerate(items):
        t = topic.encode()
        packets.append(_packet(0x32, len(t).to_bytes(2, "big") + t + (i % 65535 + 1).to_bytes(2, "big") + payload))
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cid = f"bench-pub-{os.getpid()}".encode()
    sock.sendall(_packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid))
    assert sock.recv(4) == b"\x20\x02\x00\x00", "broker refused the benchmark publisher"
    ready.set()
    go.wait()
    c0 = time.process_time()
    sent = acked = 0
    pending = b""
    while acked < len(packets):
        if sent < len(packets) and sent - acked < window:
            n = min(chunk, len(packets) - sent, window - (sent - acked))
            sock.sendall(b"".join(packets[sent:sent + n]))
            sent += n
            continue
        pending += sock.recv(65536)
        if not pending:
            raise ConnectionError("broker closed the connection")
        whole = len(pending) - len(pending) % 4  # PUBACK: 0x40 0x02 id id
        acked += whole // 4
        pending = pending[whole:]
    cpu.value = time.process_time() - c0
    sock.sendall(b"\xe0\x00")  # DISCONNECT
    sock.close()


def publish(port: int, items: list[tuple[str, bytes]], until: Any) -> tuple[float, float]:
    """Publish from PUBLISHERS processes; return (seconds from the start signal until ``until()`` is true,
    the publishers' CPU seconds)."""
    ctx = mp.get_context("fork")
    go = ctx.Event()
    procs, readies, cpus = [], [], []
    for k in range(PUBLISHERS):
        ready, cpu = ctx.Event(), ctx.Value("d", 0.0)
        p = ctx.Process(target=_publish_proc, args=(port, items[k::PUBLISHERS], ready, go, cpu))
        p.start()
        procs.append(p)
        readies.append(ready)
        cpus.append(cpu)
    for ready in readies:  # connected, packets encoded: the clock measures sending only
        if not ready.wait(60):
            raise RuntimeError("a benchmark publisher did not connect to the broker")
    t0 = time.perf_counter()
    go.set()
    while not until():
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join(timeout=60)
    return elapsed, sum(c.value for c in cpus)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), for per-message CPU figures."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _store_children(pid: int) -> list[int]:
    """The collector's store process(es) (collector/storeproc.py, started with multiprocessing's spawn), by
    their command line: multiprocessing's resource tracker, its other child, does no work per message."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        for child in task.read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(int(child))
    return found


def _count_proc(client: str, port: int, n: int, ready: Any, done: Any, cpu: Any) -> None:
    """A subscriber in its own process that only counts QoS 1 messages (each acknowledged by the client as
    it arrives): the broker's pub->sub ceiling on this machine, and the client's own CPU per message."""
    import asyncio

    if client == "paho":
        got = [0]
        sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{os.getpid()}",
                          protocol=mqtt.MQTTv5)

        def on_message(*_: Any) -> None:
            got[0] += 1
            if got[0] >= n:
                cpu.value = time.process_time() - c0
                done.set()

        sub.on_message = on_message
        sub.on_subscribe = lambda *_: ready.set()
        sub.connect("127.0.0.1", port)
        sub.subscribe("$share/bench/edgeprobe/v1/#", qos=1)
        c0 = time.process_time()
        sub.loop_start()
        done.wait()
        sub.loop_stop()
        return

    from gmqtt import Client as GmqttClient  # the alternative measured: asyncio, MQTT 5, pure Python

    # "gmqtt": PUBACK as each message arrives (the client's default); "gmqtt-acked": PUBACK only once the
    # message's batch of BATCH_MAX is done, as the collector must (after its commit): each message's
    # handler is a coroutine awaiting its batch, and gmqtt sends the PUBACK when it returns
    deferred = client == "gmqtt-acked"

    async def run() -> None:
        loop = asyncio.get_running_loop()
        finished = asyncio.Event()
        got = [0]
        batch = [loop.create_future()]
        c0 = time.process_time()

        def count() -> None:
            got[0] += 1
            if got[0] >= n:
                cpu.value = time.process_time() - c0
                finished.set()

        def on_message(*_: Any) -> int:
            count()
            return 0  # PUBACK reason: success

        async def on_message_acked(*_: Any) -> int:
            count()
            mine = batch[0]
            if got[0] % BATCH_MAX == 0 or got[0] >= n:  # the batch is "committed": release its acks
                batch[0] = loop.create_future()
                mine.set_result(None)
            await mine
            return 0

        sub = GmqttClient(f"bench-gsub-{os.getpid()}", optimistic_acknowledgement=not deferred)
        sub.on_message = on_message_acked if deferred else on_message
        sub.on_subscribe = lambda *_: ready.set()
        await sub.connect("127.0.0.1", port)
        sub.subscribe("$share/bench/edgeprobe/v1/#", qos=1)
        await finished.wait()
        done.set()
        await asyncio.sleep(0.2)  # let the last acks go out
        await sub.disconnect()

    asyncio.run(run())


def have_gmqtt() -> bool:
    try:
        import gmqtt  # noqa: F401
    except ImportError:
        return False
    return True


def broker_ceiling(items: list[tuple[str, bytes]], client: str = "paho") -> dict[str, float]:
    """Publishers -> mosquitto -> one counting subscriber (``client``) in its own process."""
    ctx = mp.get_context("spawn")  # a fresh interpreter: nothing of the benchmark's in its way
    with LocalBroker() as broker:
        ready, done, cpu = ctx.Event(), ctx.Event(), ctx.Value("d", 0.0)
        proc = ctx.Process(target=_count_proc, args=(client, broker.port, len(items), ready, done, cpu))
        proc.start()
        if not ready.wait(60):
            raise RuntimeError(f"the {client} counting subscriber did not subscribe")
        assert broker.proc is not None
        b0 = _cpu_s(broker.proc.pid)
        seconds, pub_cpu = publish(broker.port, items, done.is_set)
        broker_cpu = _cpu_s(broker.proc.pid) - b0
        proc.join(timeout=30)
        n = len(items)
        return {"msg_per_s": n / seconds, "broker_us": 1e6 * broker_cpu / n, "publisher_us": 1e6 * pub_cpu / n,
                "subscriber_us": 1e6 * cpu.value / n}


def _count(db: Path, exact: bool = True) -> int:
    """Rows in ``messages``; ``exact=False`` reads MAX(rowid) instead, one index probe where COUNT(*)
    scans the table: the 50 ms poll then takes next to no CPU from the collectors it is timing
    (rows are only ever inserted into the benchmark's fresh file, so the two agree)."""
    sql = "SELECT COUNT(*) FROM messages" if exact else "SELECT COALESCE(MAX(rowid), 0) FROM messages"
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def collectors(items: list[tuple[str, bytes]], n: int, work: Path, client: str = "paho") -> dict[str, Any]:
    """``n`` real ``edgeprobe collect`` processes (``--client client``) in one shared group, one SQLite file."""
    db = work / f"fleet-{n}-{time.monotonic_ns()}.db"
    Store(db).close()
    with LocalBroker() as broker:
        procs = []
        for i in range(n):
            ready = work / f"ready-{i}-{time.monotonic_ns()}"
            log = work / f"collector-{i}.log"
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "edgeprobe", "collect", "--db", str(db), "--broker", broker.address,
                 "--client-id", f"bench-c{i}-{time.monotonic_ns()}", "--group", "bench", "--ready-file", str(ready),
                 # paho unnamed: an older checkout (benchmarks/ingest_ab.py --old) has no --client
                 *(["--client", client] if client != "paho" else [])],
                stdout=log.open("wb"), stderr=subprocess.STDOUT))  # the child keeps the descriptor
            while not ready.exists():
                time.sleep(0.05)
        last = [0.0]

        def stored() -> bool:
            if time.perf_counter() - last[0] < 0.05:
                return False
            last[0] = time.perf_counter()
            return _count(db, exact=False) >= len(items)

        assert broker.proc is not None
        kids = [k for p in procs for k in _store_children(p.pid)]
        c0 = [_cpu_s(p.pid) for p in procs]
        k0 = [_cpu_s(k) for k in kids]
        b0 = _cpu_s(broker.proc.pid)
        seconds, pub_cpu = publish(broker.port, items, stored)
        network_cpu = sum(_cpu_s(p.pid) for p in procs) - sum(c0)
        store_cpu = sum(_cpu_s(k) for k in kids) - sum(k0)
        collector_cpu = network_cpu + store_cpu
        broker_cpu = _cpu_s(broker.proc.pid) - b0
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        assert _count(db) == len(items), f"{_count(db)} of {len(items)} stored"
    m = len(items)
    return {"msg_per_s": m / seconds, "per_collector": m / seconds / n, "collector_us": 1e6 * collector_cpu / m,
            "network_us": 1e6 * network_cpu / m, "store_us": 1e6 * store_cpu / m,
            "broker_us": 1e6 * broker_cpu / m, "publisher_us": 1e6 * pub_cpu / m}


def store_path(items: list[tuple[str, bytes]], work: Path) -> dict[str, float]:
    """The collector's ingest path with no MQTT: where its time goes per message (CPU and wall)."""
    store = Store(work / f"store-{time.monotonic_ns()}.db")
    now = dt.datetime.now(dt.timezone.utc)
    batch = BATCH_MAX  # the collector's own batch size
    t_decode = t_total = cpu = 0.0
    for i in range(0, len(items), batch):
        chunk = [Incoming(t, p, now) for t, p in items[i:i + batch]]
        t0 = time.perf_counter()
        for it in chunk:
            schema.decode_message(it.payload, it.topic)
        t1 = time.perf_counter()
        c1 = time.process_time()
        store.ingest(chunk)
        cpu += time.process_time() - c1
        t2 = time.perf_counter()
        t_decode += t1 - t0
        t_total += t2 - t1
    store.close()
    n = len(items)
    return {"msg_per_s": n / t_total, "decode_us": 1e6 * t_decode / n, "ingest_us": 1e6 * t_total / n,
            "cpu_us": 1e6 * cpu / n}


def fleet_mix(n: int, offset: int = 0) -> list[tuple[str, bytes]]:
    """What DEVICES agents send, window by window (benchmarks/fleet_synth.py): latency with a real
    HdrHistogram per stage (merged into hourly rollups at ingest), robustness, health, drift."""
    sys.path.insert(0, str(Path(__file__).parent))
    from fleet_synth import stream

    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(days=offset)
    out: list[tuple[str, bytes]] = []
    for tick in stream(DEVICES, start, hours=24 * 30, prefix=f"mix{offset}-"):
        out.extend((m.topic, m.payload) for m in tick)
        if len(out) >= n:
            return out[:n]
    return out


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
    clients = ["paho", "gmqtt", "gmqtt-acked"] if have_gmqtt() else ["paho"]
    collector_clients = ["paho", "gmqtt"] if have_gmqtt() else ["paho"]
    results: dict[str, list[Any]] = {"store": [], "store_mix": [], "c1": [], "c1_mix": [], "c2": [],
                                     **{f"ceiling_{c}": [] for c in clients},
                                     **{f"c1{s}_{c}": [] for c in collector_clients[1:] for s in ("", "_mix")}}
    load = [os.getloadavg()[0]]
    for r in range(rounds):
        items = make_messages(n, offset=r * n)
        mix = fleet_mix(n, offset=r)
        results["store"].append(store_path(items, work))
        results["store_mix"].append(store_path(mix, work))
        for c in clients[::1 if r % 2 == 0 else -1]:  # alternate which client goes first (load drifts)
            results[f"ceiling_{c}"].append(broker_ceiling(items, c))
        # one collector on each client (`--client gmqtt` where gmqtt is installed), alternating which goes first
        for c in collector_clients[::1 if r % 2 == 0 else -1]:
            suffix = "" if c == "paho" else f"_{c}"
            results[f"c1{suffix}"].append(collectors(items, 1, work, c))
            results[f"c1_mix{suffix}"].append(collectors(mix, 1, work, c))
        results["c2"].append(collectors(items, 2, work))
        load.append(os.getloadavg()[0])
        if not args.json:
            print(f"round {r + 1}/{rounds} (load {load[-1]:.1f}): store {results['store'][-1]['msg_per_s']:,.0f}/s "
                  f"(mix {results['store_mix'][-1]['msg_per_s']:,.0f}/s), "
                  + ", ".join(f"{c} ceiling {results[f'ceiling_{c}'][-1]['msg_per_s']:,.0f}/s" for c in clients)
                  + f", 1 collector {results['c1'][-1]['msg_per_s']:,.0f}/s "
                  f"(mix {results['c1_mix'][-1]['msg_per_s']:,.0f}/s), "
                  + "".join(f"1 {c} collector {results[f'c1_{c}'][-1]['msg_per_s']:,.0f}/s, "
                            for c in collector_clients[1:])
                  + f"2 collectors {results['c2'][-1]['msg_per_s']:,.0f}/s", file=sys.stderr)

    def med(key: str, field: str, digits: int = 0) -> float:
        return round(statistics.median(x[field] for x in results[key]), digits or None)

    def spread(key: str, field: str = "msg_per_s") -> list[float]:
        values = [x[field] for x in results[key]]
        return [round(min(values)), round(max(values))]

    summary: dict[str, Any] = {
        "messages": n, "rounds": rounds, "cpus": os.cpu_count(), "publishers": PUBLISHERS, "devices": DEVICES,
        "load_average_1m": [round(x, 1) for x in load],
        "store_only_msg_per_s": med("store", "msg_per_s"),
        "store_only_cpu_us_per_msg": med("store", "cpu_us", 1),
        "decode_us_per_msg": med("store", "decode_us", 2),
        "store_ingest_us_per_msg": med("store", "ingest_us", 2),
        "store_mix_msg_per_s": med("store_mix", "msg_per_s"),
        "store_mix_cpu_us_per_msg": med("store_mix", "cpu_us", 1),
        "broker_ceiling_msg_per_s": med("ceiling_paho", "msg_per_s"),
        "broker_ceiling_spread": spread("ceiling_paho"),
        "paho_subscriber_cpu_us_per_msg": med("ceiling_paho", "subscriber_us", 1),
        "one_collector_msg_per_s": med("c1", "msg_per_s"),
        "one_collector_spread": spread("c1"),
        "one_collector_mix_msg_per_s": med("c1_mix", "msg_per_s"),
        "one_collector_mix_spread": spread("c1_mix"),
        "two_collectors_msg_per_s": med("c2", "msg_per_s"),
        # CPU per message, from /proc: what each part costs whatever the others take of the two cores
        "collector_cpu_us_per_msg": med("c1", "collector_us", 1),
        "collector_mix_cpu_us_per_msg": med("c1_mix", "collector_us", 1),
        # of which the MQTT side (paho's network thread, batching, acks) and the store process (decode, SQLite)
        "collector_network_cpu_us_per_msg": med("c1", "network_us", 1),
        "collector_store_cpu_us_per_msg": med("c1", "store_us", 1),
        "two_collectors_cpu_us_per_msg": med("c2", "collector_us", 1),
        "broker_cpu_us_per_msg": med("c1", "broker_us", 1),
        "publishers_cpu_us_per_msg": med("c1", "publisher_us", 1),
    }
    for c in clients[1:]:
        name = c.replace("-", "_")
        summary[f"{name}_ceiling_msg_per_s"] = med(f"ceiling_{c}", "msg_per_s")
        summary[f"{name}_ceiling_spread"] = spread(f"ceiling_{c}")
        summary[f"{name}_subscriber_cpu_us_per_msg"] = med(f"ceiling_{c}", "subscriber_us", 1)
    for c in collector_clients[1:]:  # the same collector receiving with another client (--client)
        summary[f"one_collector_{c}_msg_per_s"] = med(f"c1_{c}", "msg_per_s")
        summary[f"one_collector_{c}_spread"] = spread(f"c1_{c}")
        summary[f"one_collector_{c}_mix_msg_per_s"] = med(f"c1_mix_{c}", "msg_per_s")
        summary[f"one_collector_{c}_mix_spread"] = spread(f"c1_mix_{c}")
        summary[f"{c}_collector_cpu_us_per_msg"] = med(f"c1_{c}", "collector_us", 1)
        summary[f"{c}_collector_network_cpu_us_per_msg"] = med(f"c1_{c}", "network_us", 1)
        summary[f"{c}_collector_store_cpu_us_per_msg"] = med(f"c1_{c}", "store_us", 1)
        summary[f"{c}_collector_mix_cpu_us_per_msg"] = med(f"c1_mix_{c}", "collector_us", 1)
    # one collector is two processes (network, store), each with its own GIL: the rate it could sustain
    # on one core for both, and with a core for each, were publishers and broker elsewhere
    summary["one_collector_one_core_msg_per_s"] = round(1e6 / summary["collector_cpu_us_per_msg"])
    summary["one_collector_core_each_msg_per_s"] = round(1e6 / max(summary["collector_network_cpu_us_per_msg"],
                                                                   summary["collector_store_cpu_us_per_msg"], 1e-3))
    summary["one_collector_mix_one_core_msg_per_s"] = round(1e6 / summary["collector_mix_cpu_us_per_msg"])
    summary["one_collector_vs_ceiling"] = round(
        summary["one_collector_msg_per_s"] / summary["broker_ceiling_msg_per_s"], 3)
    summary["two_vs_one_collector"] = round(summary["two_collectors_msg_per_s"] / summary["one_collector_msg_per_s"], 3)
    summary["rounds_detail"] = {k: [round(x["msg_per_s"]) for x in v] for k, v in results.items()}
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:36s} {v}")


if __name__ == "__main__":
    main()
