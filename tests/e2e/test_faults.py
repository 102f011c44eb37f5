"""Faults on real processes: broker, agent and collector killed mid-stream; nothing lost, nothing twice.

Loss is measured with the agent's own numbering: every message spooled gets
the next ``seq`` (in the same transaction), so after the fault the database
must hold every seq from 0 to the spool's last, each exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeprobe.agent.messages import Messenger
from edgeprobe.agent.publisher import Publisher
from edgeprobe.agent.spool import Spool
from edgeprobe.cli.localbroker import LocalBroker, find_mosquitto, free_port
from edgeprobe.harness import schema
from tests.conftest import REPO, Databases
from tests.e2e.util import client, count, message, start_collector, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed")]


@pytest.fixture
def pbroker(tmp_path: Path) -> Iterator[LocalBroker]:
    broker = LocalBroker(port=free_port(), persistence=True, workdir=tmp_path / "broker")
    with broker:
        yield broker


def _pusher(spool: Path, port: int, n: int, rate: float, max_rows: int = 100_000) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.e2e.pusher", str(spool), str(port), str(n), str(rate),
                             str(max_rows)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _last_seq(spool: Path) -> int:
    with sqlite3.connect(spool) as conn:
        return int(conn.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0])


def _outbox(spool: Path) -> int:
    """Rows the broker has not acknowledged (acked rows the publisher still holds do not count)."""
    with sqlite3.connect(spool) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE acked = 0").fetchone()[0])


def _logs(folder: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(folder.rglob("*.log")))


def _assert_complete(db: Path | str, last_seq: int, first_seq: int = 0, workdir: Path | None = None) -> None:
    """Every seq from ``first_seq`` to ``last_seq`` stored exactly once (``workdir``: where the logs are, for a
    PostgreSQL ``db``)."""
    want = last_seq - first_seq + 1
    logs = workdir or Path(db).parent
    assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages WHERE device_id = 'cam-a'") >= want,
                    timeout=30), f"{count(db, 'SELECT COUNT(*) FROM messages')} of {want} stored\n{_logs(logs)}"
    time.sleep(0.3)  # a late duplicate would land now
    assert count(db, "SELECT COUNT(*) FROM messages WHERE device_id = 'cam-a'") == want
    assert count(db, "SELECT COUNT(DISTINCT seq) FROM messages WHERE device_id = 'cam-a'") == want
    assert count(db, "SELECT MIN(seq) FROM messages WHERE device_id = 'cam-a'") == first_seq
    assert count(db, "SELECT MAX(seq) FROM messages WHERE device_id = 'cam-a'") == last_seq
    assert count(db, "SELECT missing FROM device_seq WHERE device_id = 'cam-a'") == 0


def _save_now(broker: LocalBroker) -> None:
    """Make mosquitto write its store now (SIGUSR1) and wait until it has.

    mosquitto saves every autosave_interval, not on each change: a session younger than the last
    save dies with the broker (and messages published before the collector is back go nowhere).
    Production brokers run for longer than that before their first kill; a test forces the save
    instead of hoping a timer fired after the collector subscribed.
    """
    store = broker.workdir / "mosquitto.db"
    before = store.stat().st_mtime_ns if store.exists() else 0
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGUSR1)
    assert wait_for(lambda: store.exists() and store.stat().st_mtime_ns != before, timeout=10)


@pytest.mark.usefixtures("collector_client")  # on paho and on gmqtt
def test_broker_sigkilled_mid_stream_loses_nothing(pbroker: LocalBroker, tmp_path: Path) -> None:
    db, spool = tmp_path / "fleet.db", tmp_path / "spool.db"
    collector = start_collector(db, pbroker.address, tmp_path)
    _save_now(pbroker)
    pusher = _pusher(spool, pbroker.port, 600, 300)
    try:
        assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= 100, timeout=30)
        pbroker.stop(kill=True)
        time.sleep(0.7)  # the agent keeps spooling while the broker is gone
        pbroker.start()
        assert pusher.wait(timeout=90) == 0, pusher.stderr.read() if pusher.stderr else ""
        _assert_complete(db, _last_seq(spool))  # waits for the collector's reconnect (said before it stored)
        assert "session present: True" in (tmp_path / "test-collector.log").read_text()
        assert _last_seq(spool) == 599
        assert collector.poll() is None
    finally:
        stop(pusher)
        stop(collector)


@pytest.mark.usefixtures("collector_client")  # on paho and on gmqtt
def test_messages_a_broker_acked_and_then_lost_are_sent_again_by_the_agent(tmp_path: Path) -> None:
    """A broker that acknowledges and never saves (autosave an hour away) is killed after its PUBACKs.

    The broker comes back without the messages (they are not in its store file), and the agent's
    publisher, which holds acked rows until the broker has had them for a while, sends them again
    after the reconnect: the collector, offline through all of it, stores every one exactly once.
    """
    broker = LocalBroker(port=free_port(), persistence=True, workdir=tmp_path / "broker")
    broker.config_path.write_text(broker.config_path.read_text().replace("autosave_interval 1",
                                                                         "autosave_interval 3600"))
    db = tmp_path / "fleet.db"
    with broker:
        stop(start_collector(db, broker.address, tmp_path))  # a persistent session, away from now on
        _save_now(broker)  # the session is saved; nothing published after this point will be
        spool = Spool(tmp_path / "spool.db")
        messenger = Messenger(spool, device_id="cam-a", fleet="f", session_id="s1",
                              model_sha256="a" * 64, config_sha256="b" * 64)
        for i in range(200):
            messenger.send("event", {"type": "test", "i": i})
        pub = Publisher(spool, "127.0.0.1", broker.port, client_id="cam-a", hold_acked_s=600)
        pub.start()
        try:
            assert wait_for(lambda: spool.pending() == 0, timeout=60), f"{spool.pending()} never acked"
            broker.stop(kill=True)
            saved = (broker.workdir / "mosquitto.db").read_bytes()
            assert b'"i":199' not in saved and b'"i":0' not in saved  # the broker acked them and lost them
            broker.start()
            collector = start_collector(db, broker.address, tmp_path)
            try:
                _assert_complete(db, _last_seq(tmp_path / "spool.db"))
            finally:
                stop(collector)
        finally:
            pub.stop()
            spool.close()


@pytest.mark.usefixtures("collector_client")  # on paho and on gmqtt
def test_agent_sigkilled_mid_publish_then_restarted_loses_nothing(broker: LocalBroker, tmp_path: Path) -> None:
    db, spool = tmp_path / "fleet.db", tmp_path / "spool.db"
    collector = start_collector(db, broker.address, tmp_path)
    pusher = _pusher(spool, broker.port, 100_000, 400)
    try:
        assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= 150, timeout=30)
        pusher.send_signal(signal.SIGKILL)
        pusher.wait()
        killed_at = _last_seq(spool)
        left = _outbox(spool)
        # What the killed agent had not yet had acknowledged is still in its spool: once the broker has
        # delivered what it did acknowledge, stored + kept covers every seq it numbered (a spool that
        # deleted a row before its PUBACK would leave a gap here, before the restart hides it).
        assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") + left >= killed_at + 1, timeout=30), \
            (count(db, "SELECT COUNT(*) FROM messages"), left, killed_at)
        drain = _pusher(spool, broker.port, 0, 1)  # the restarted agent sends what the spool kept
        assert drain.wait(timeout=60) == 0, drain.stderr.read() if drain.stderr else ""
        assert _last_seq(spool) == killed_at
        _assert_complete(db, killed_at)
        assert _outbox(spool) == 0  # and it has nothing left to send
    finally:
        stop(pusher)
        stop(collector)


@pytest.mark.usefixtures("collector_client")  # on paho and on gmqtt
def test_collector_restarted_loses_nothing(broker: LocalBroker, tmp_path: Path, databases: Databases) -> None:
    """On each backend: a SIGKILLed collector's uncommitted batch was never acknowledged, so it comes again."""
    db, spool = databases.fresh(), tmp_path / "spool.db"
    collector = start_collector(db, broker.address, tmp_path)
    pusher = _pusher(spool, broker.port, 500, 300)
    try:
        assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= 100, timeout=30)
        stop(collector, signal.SIGKILL)  # no drain: what it had not committed it had not acknowledged
        time.sleep(0.5)
        collector = start_collector(db, broker.address, tmp_path)  # same client id: the broker kept its queue
        assert pusher.wait(timeout=60) == 0
        _assert_complete(db, 499, workdir=tmp_path)
    finally:
        stop(pusher)
        stop(collector)


@pytest.mark.usefixtures("collector_client")  # on paho and on gmqtt
def test_broker_down_longer_than_a_window_spool_overflow_is_counted_exactly(tmp_path: Path) -> None:
    port = free_port()
    db = tmp_path / "fleet.db"
    broker = LocalBroker(port=port, persistence=True, workdir=tmp_path / "broker")
    # The collector's persistent session exists before the outage (as in production): whatever the
    # agent sends the moment the broker is back is queued for it even if the agent reconnects first.
    with broker:
        stop(start_collector(db, broker.address, tmp_path))
        _save_now(broker)
    spool = Spool(tmp_path / "spool.db", max_rows=50)
    messenger = Messenger(spool, "cam-a", "f", "a" * 64, "b" * 64)
    pub = Publisher(spool, "127.0.0.1", port, client_id="cam-a-overflow")
    messenger.on_put = pub.wake
    pub.start()  # nobody listens: the agent keeps measuring into the spool
    for i in range(80):
        messenger.send("event", {"type": "tick", "message": str(i)})
    assert spool.pending() == 50 and spool.dropped() == 30
    messenger.send("health", {
        "window": {"start_ts": "2026-01-01T00:00:00+00:00", "end_ts": "2026-01-01T00:00:01+00:00",
                   "first_frame": 0, "last_frame": 0, "frames": 1},
        "fps": 1.0, "brightness": 0.5, "contrast": 0.2, "sharpness": 1.0, "clipped": 0.0, "frozen_frames": 0,
        "spool_queued": spool.pending(), "spool_dropped": spool.dropped(), "flags": []})
    assert spool.dropped() == 31  # the health message itself pushed one more out
    with broker:
        collector = start_collector(db, broker.address, tmp_path)
        try:
            assert pub.flush(60)
            # seq 0..80 were spooled; the 31 oldest dropped, the newest 50 delivered
            _assert_complete(db, 80, first_seq=31)
            assert count(db, "SELECT spool_dropped FROM health WHERE device_id = 'cam-a'") == 30
        finally:
            pub.stop()
            stop(collector)


def _children(pid: int) -> list[int]:
    """Every process the collector started (its store process, multiprocessing's resource tracker)."""
    return [int(c) for task in Path(f"/proc/{pid}/task").glob("*/children") for c in task.read_text().split()]


def _received(metrics_port: int) -> float:
    """The collector's own count of messages received (its /metrics), 0 while it cannot say."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("edgeprobe_collector_messages_received_total{"))


@pytest.mark.timeout(180)
def test_messages_received_but_not_committed_are_not_acknowledged(broker: LocalBroker, tmp_path: Path,
                                                                  collector_client: str) -> None:
    """PUBACK only after the commit, on each client: a collector that has received every message and
    cannot commit them (the database locked) is killed with its store process; the broker, never
    acknowledged, delivers them all to the next collector. Acked on arrival, they would be gone."""

    db, metrics = tmp_path / "fleet.db", free_port()
    collector = start_collector(db, broker.address, tmp_path, "--metrics-port", str(metrics))
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # the store's batch now waits for the write lock
    try:
        pub, _ = client(broker.port, client_id="cam-a")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        sent = [message("event", i) for i in range(50)]
        for m in sent:
            pub.publish(schema.topic_for("f", "cam-a", "event"), schema.encode(m), qos=1).wait_for_publish(10)
        pub.loop_stop()
        pub.disconnect()
        assert wait_for(lambda: _received(metrics) >= 50, timeout=30), f"{_received(metrics)} of 50 received"
        for pid in (*_children(collector.pid), collector.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        collector.wait(timeout=15)
    finally:
        lock.rollback()
        lock.close()
    assert count(db, "SELECT COUNT(*) FROM messages") == 0  # nothing was committed
    collector = start_collector(db, broker.address, tmp_path)  # same client id: the broker kept its queue
    try:
        assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= 50, timeout=30), \
            f"{count(db, 'SELECT COUNT(*) FROM messages')} of 50 stored: acknowledged before their commit?"
    finally:
        stop(collector)
