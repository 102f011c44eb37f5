"""Two collector processes in one MQTT 5 shared-subscription group, one SQLite file."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest

from edgeprobe.cli.localbroker import LocalBroker, find_mosquitto, free_port
from tests.e2e.test_faults import _assert_complete, _pusher
from tests.e2e.util import collectors, stop

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed")]


def test_two_collectors_share_the_stream_and_store_nothing_twice(broker: LocalBroker, tmp_path: Path) -> None:
    db, spool = tmp_path / "fleet.db", tmp_path / "spool.db"
    port = free_port()
    with collectors() as start:  # both stopped (and their logs complete) before the counts are read
        for i in range(2):
            start(db, broker.address, tmp_path, "--group", "g", *(["--metrics-port", str(port)] if i == 0 else []),
                  client_id=f"c{i}")
        pusher = _pusher(spool, broker.port, 800, 1000)
        try:
            assert pusher.wait(timeout=60) == 0
        finally:
            stop(pusher)  # type: ignore[arg-type]  # a pusher that hung is not left running either
        _assert_complete(db, 799)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            assert 'edgeprobe_device_online{device_id="cam-a",fleet="f"}' in resp.read().decode()
    stored = []
    for i in range(2):
        m = re.search(r"(\d+) received, (\d+) stored", (tmp_path / f"c{i}.log").read_text())
        assert m, (tmp_path / f"c{i}.log").read_text()
        stored.append(int(m.group(2)))
    assert sum(stored) == 800
    assert min(stored) > 0, f"the group did not share the load: {stored}"
