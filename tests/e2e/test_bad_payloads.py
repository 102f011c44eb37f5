"""Hostile and broken payloads through a real mosquitto into a running collector process.

Every one must land in quarantine with a reason, and the collector must stay
up and keep storing good messages after them.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprobe.cli.localbroker import LocalBroker, find_mosquitto
from edgeprobe.harness import schema
from tests.conftest import COLLECTOR_CLIENTS
from tests.e2e.util import client, count, message, start_collector, stop, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto not installed")]

TOPIC = "edgeprobe/v1/f/cam-a/event"


def _good(seq: int) -> dict:
    return message("event", seq)


def _corpus() -> list[tuple[str, str, bytes]]:
    """(name, topic, payload) for each kind of bad input the issue lists."""
    ok = _good(1)
    wrong_type = {**ok, "seq": "seven"}
    missing = {k: v for k, v in ok.items() if k != "msg_id"}
    old_schema = {**ok, "schema": "edgeprobe/0"}
    bad_body = message("health", 1, body={"fps": -1})
    naive_ts = {**ok, "ts": "2026-01-01T00:00:00"}
    spoof = message("event", 2, device="cam-b")
    past_int64 = {**ok, "seq": 2**63}
    head = json.dumps({**ok, "body": None})[:-len("null}")]
    deep = head + '{"type": "t", "a": ' * 1000 + "1" + "}" * 1000 + "}"
    return [
        ("invalid json", TOPIC, b'{"schema": "edgeprobe/1",'),
        ("wrong types", TOPIC, json.dumps(wrong_type).encode()),
        ("missing field", TOPIC, json.dumps(missing).encode()),
        ("huge", TOPIC, b'{"pad": "' + b"x" * 2_000_000 + b'"}'),
        ("binary", TOPIC, bytes(range(256)) * 8),
        ("empty", TOPIC, b""),
        ("json array", TOPIC, b"[1, 2, 3]"),
        ("wrong schema version", TOPIC, json.dumps(old_schema).encode()),
        ("bad body", "edgeprobe/v1/f/cam-a/health", json.dumps(bad_body).encode()),
        ("naive timestamp", TOPIC, json.dumps(naive_ts).encode()),
        ("topic/device mismatch", TOPIC, json.dumps(spoof).encode()),
        ("unknown kind topic", "edgeprobe/v1/f/cam-a/bogus", json.dumps(ok).encode()),
        ("utf-16", TOPIC, json.dumps(ok).encode("utf-16")),
        # each of these two stopped all storage for good: sqlite3 OverflowError, decoder RecursionError
        ("seq 2**63", TOPIC, json.dumps(past_int64).encode()),
        ("1000-deep body", TOPIC, deep.encode()),
    ]


@pytest.fixture(scope="module", params=COLLECTOR_CLIENTS)
def running(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.Popen[bytes], object]]:
    """One collector for the module's tests, once on each MQTT client."""
    tmp = tmp_path_factory.mktemp("bad-payloads")
    with LocalBroker() as broker:
        db = tmp / "fleet.db"
        proc = start_collector(db, broker.address, tmp, "--client", request.param)
        pub, _ = client(broker.port, client_id="hostile")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        yield db, proc, pub
        pub.loop_stop()
        pub.disconnect()
        stop(proc)


def _publish(pub: object, items: list[tuple[str, bytes]]) -> None:
    for topic, payload in items:
        pub.publish(topic, payload, qos=1).wait_for_publish(10)  # type: ignore[attr-defined]


def test_each_bad_payload_is_quarantined_with_a_reason(running: tuple[Path, subprocess.Popen[bytes], object]) -> None:
    db, proc, pub = running
    before = count(db, "SELECT COALESCE(SUM(count), 0) FROM quarantine")
    before_id = count(db, "SELECT COALESCE(MAX(id), 0) FROM quarantine")
    corpus = _corpus()
    _publish(pub, [(t, p) for _, t, p in corpus])
    good = _good(99)
    _publish(pub, [(TOPIC, schema.encode(good))])
    assert wait_for(lambda: count(db, "SELECT COALESCE(SUM(count), 0) FROM quarantine") >= before + len(corpus)
                    and count(db, f"SELECT COUNT(*) FROM messages WHERE msg_id = '{good['msg_id']}'") == 1)
    assert proc.poll() is None, "the collector died on input"
    assert count(db, "SELECT COALESCE(SUM(count), 0) FROM quarantine") == before + len(corpus)
    assert count(db, f"SELECT COUNT(*) FROM quarantine WHERE id > {before_id} AND (reason IS NULL OR reason = '')") == 0
    assert count(db, f"SELECT MAX(LENGTH(payload)) FROM quarantine WHERE id > {before_id}") <= 64 * 1024
    assert count(db, "SELECT MAX(payload_bytes) FROM quarantine") >= 2_000_000


payloads = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.dictionaries(st.sampled_from(sorted(_good(0))), st.one_of(st.none(), st.integers(), st.text(max_size=20),
                                                                 st.floats(allow_nan=False), st.booleans()),
                    max_size=12).map(lambda d: json.dumps({**_good(0), **d}).encode()),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(payloads, min_size=1, max_size=20))
def test_fuzzed_payloads_never_stop_the_collector(running: tuple[Path, subprocess.Popen[bytes], object],
                                                   batch: list[bytes]) -> None:
    db, proc, pub = running
    before_q = count(db, "SELECT COALESCE(SUM(count), 0) FROM quarantine")
    before_m = count(db, "SELECT COUNT(*) FROM messages")
    fresh = []
    for p in batch:  # a fuzzed payload that happens to be valid must be a new message, not a redelivery
        try:
            schema.decode_message(p, TOPIC)
            fresh.append(True)
        except schema.SchemaViolation:
            fresh.append(False)
    marker = _good(0)
    _publish(pub, [(TOPIC, p) for p in batch] + [(TOPIC, schema.encode(marker))])
    assert wait_for(lambda: count(db, f"SELECT COUNT(*) FROM messages WHERE msg_id = '{marker['msg_id']}'") == 1)
    assert proc.poll() is None
    quarantined = count(db, "SELECT COALESCE(SUM(count), 0) FROM quarantine") - before_q
    stored = count(db, "SELECT COUNT(*) FROM messages") - before_m - 1
    assert quarantined == fresh.count(False)
    assert stored <= fresh.count(True)
    assert count(db, "SELECT COUNT(*) FROM quarantine WHERE reason = ''") == 0
