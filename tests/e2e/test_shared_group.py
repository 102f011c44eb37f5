"""Two collector processes in one MQTT 5 shared-subscription group, on one SQLite file or one PostgreSQL."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from edgeprobe.cli.localbroker import LocalBroker, find_mosquitto, free_port
from tests.e2e.test_faults import _assert_complete, _pusher
from tests.e2e.util import collectors, count, stop
from tests.pgserver import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed")]


def assert_two_collectors_share_800(db: Path | str, broker: LocalBroker, tmp_path: Path, name: str,
                               metrics_port: int | None = None) -> list[int]:
    """800 messages through two collectors of one group into ``db``: each seq stored exactly once; what each stored."""
    spool = tmp_path / f"{name}-spool.db"
    with collectors() as start:  # both stopped (and their logs complete) before the counts are read
        for i in range(2):
            start(db, broker.address, tmp_path, "--group", "g",
                  *(["--metrics-port", str(metrics_port)] if i == 0 and metrics_port else []), client_id=f"{name}{i}")
        pusher = _pusher(spool, broker.port, 800, 1000)
        try:
            assert pusher.wait(timeout=60) == 0
        finally:
            stop(pusher)  # type: ignore[arg-type]  # a pusher that hung is not left running either
        _assert_complete(db, 799, workdir=tmp_path)
        if metrics_port:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
                assert 'edgeprobe_device_online{device_id="cam-a",fleet="f"}' in resp.read().decode()
    stored = []
    for i in range(2):
        m = re.search(r"(\d+) received, (\d+) stored", (tmp_path / f"{name}{i}.log").read_text())
        assert m, (tmp_path / f"{name}{i}.log").read_text()
        stored.append(int(m.group(2)))
    assert sum(stored) == 800
    assert min(stored) > 0, f"the group did not share the load: {stored}"
    return stored


@pytest.mark.usefixtures("collector_client")  # on paho and on gmqtt
def test_two_collectors_share_the_stream_and_store_nothing_twice(broker: LocalBroker, tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    stored = assert_two_collectors_share_800(db, broker, tmp_path, "c", metrics_port=free_port())
    assert count(db, "SELECT COUNT(DISTINCT msg_id) FROM messages") == sum(stored) == 800


@pytest.mark.usefixtures("collector_client")  # on paho and on gmqtt
def test_two_collectors_on_one_postgresql_store_nothing_twice_and_lose_nothing(
        broker: LocalBroker, tmp_path: Path, postgres: PostgresServer) -> None:
    """The tier beyond one machine: N collectors, one database server. Each message is stored by exactly one
    of them, every seq arrives, and the state both fold into counts each message once (no lost update)."""
    db = postgres.create_database()
    assert_two_collectors_share_800(db, broker, tmp_path, "pg", metrics_port=free_port())
    assert count(db, "SELECT stored FROM device_kinds WHERE device_id = 'cam-a' AND kind = 'event'") == 800
    assert count(db, "SELECT seq_max - seq_min + 1 - seq_received FROM device_state WHERE device_id = 'cam-a'") == 0
