"""Identity of a message and the bounds of the quarantine, on a real SQLite store and a real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest

from edgeprobe.collector.store import Incoming, Store
from edgeprobe.harness import schema
from tests.conftest import Databases

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
TOPIC = "edgeprobe/v1/f/cam-1/event"


def _msg(device: str = "cam-1", **fields: object) -> dict:
    m = schema.make_envelope(kind="event", device_id=device, fleet="f", session_id="s", seq=1, body={"type": "x"},
                             model_sha256="a" * 64, config_sha256="b" * 64)
    m.update(fields)
    return m


def _item(m: dict | bytes, topic: str = TOPIC) -> Incoming:
    return Incoming(topic, m if isinstance(m, bytes) else json.dumps(m).encode(), NOW)


CANONICAL = str(uuid.uuid4())


@pytest.mark.parametrize("msg_id", [
    "zzzzzzzz-zzzz-4zzz-8zzz-zzzzzzzzzzzz", CANONICAL.upper(), CANONICAL.replace("-", ""), f"{{{CANONICAL}}}",
    CANONICAL[:-1], f"urn:uuid:{CANONICAL}", "",
])
def test_msg_id_must_be_a_canonical_lowercase_uuid(msg_id: str) -> None:
    """Refused, not normalised: one message has one spelling of its key everywhere."""
    with pytest.raises(schema.SchemaViolation, match="msg_id"):
        schema.decode_message(json.dumps(_msg(msg_id=msg_id)).encode(), TOPIC)


@pytest.mark.parametrize("field", ["model_sha256", "config_sha256"])
@pytest.mark.parametrize("value", ["", "A" * 64, "a" * 63, "g" * 64, "a" * 65])
def test_hashes_must_be_64_lowercase_hex(field: str, value: str) -> None:
    with pytest.raises(schema.SchemaViolation, match=field):
        schema.decode_message(json.dumps(_msg(**{field: value})).encode(), TOPIC)


def test_the_same_uuid_in_another_spelling_is_not_stored_twice(databases: Databases) -> None:
    store = Store(databases.fresh())
    m = _msg(msg_id=CANONICAL)
    batch = [_item(m), _item(_msg(msg_id=CANONICAL.upper())), _item(_msg(msg_id=CANONICAL.replace("-", "")))]
    assert store.ingest(batch) == (1, 2)
    assert [r[0] for r in store.db.execute("SELECT msg_id FROM messages").fetchall()] == [CANONICAL]


def test_the_key_is_unique_per_device(databases: Databases) -> None:
    """A device reusing another device's msg_id neither shadows that message nor is dropped as its redelivery."""
    store = Store(databases.fresh())
    a, b = _msg(msg_id=CANONICAL), _msg(device="cam-2", msg_id=CANONICAL)
    assert store.ingest([_item(a), _item(b, "edgeprobe/v1/f/cam-2/event")]) == (2, 0)
    assert store.ingest([_item(b, "edgeprobe/v1/f/cam-2/event")]) == (0, 0)  # a redelivery is still a no-op
    rows = sorted(store.db.execute("SELECT device_id, msg_id FROM messages").fetchall())
    assert rows == [("cam-1", CANONICAL), ("cam-2", CANONICAL)]


def test_repeated_junk_is_one_quarantine_row_with_a_count(databases: Databases) -> None:
    store = Store(databases.fresh())
    junk = b"x" * 60_000
    assert store.ingest([_item(junk)] * 50) == (0, 50)
    assert store.ingest([_item(junk), _item(b"other")]) == (0, 2)
    rows = store.db.execute("SELECT count, payload_bytes FROM quarantine ORDER BY id").fetchall()
    assert rows == [(51, 60_000), (1, 5)]
    assert store.quarantine_stats() == {"rows": 2, "messages": 52, "dropped": 0}


def test_quarantine_is_capped_by_rows_oldest_dropped_and_counted(databases: Databases) -> None:
    store = Store(databases.fresh(), quarantine_max_rows=5)
    for i in range(8):
        store.ingest([_item(f"junk {i}".encode())])
    kept = [r[0] for r in store.db.execute("SELECT payload FROM quarantine ORDER BY id").fetchall()]
    assert kept == [f"junk {i}" for i in range(3, 8)]
    assert store.quarantine_stats()["dropped"] == 3


def test_quarantine_is_capped_by_bytes(databases: Databases) -> None:
    store = Store(databases.fresh(), quarantine_max_bytes=100_000)
    for i in range(10):
        store.ingest([_item(bytes([65 + i]) * 30_000)])
    (n, size) = store.db.execute("SELECT COUNT(*), SUM(LENGTH(payload)) FROM quarantine").fetchone()
    assert (n, size) == (3, 90_000)
    assert store.quarantine_stats()["dropped"] == 7
    # the newest survive
    assert store.db.execute("SELECT SUBSTR(payload, 1, 1) FROM quarantine ORDER BY id").fetchall() == [
        ("H",), ("I",), ("J",)]


def test_a_store_reopened_keeps_the_dropped_count(databases: Databases) -> None:
    store = Store(databases.fresh(), quarantine_max_rows=1)
    store.ingest([_item(b"one"), _item(b"two")])
    store.close()
    assert Store(databases.same()).quarantine_stats() == {"rows": 1, "messages": 1, "dropped": 1}


def test_the_dropped_count_is_a_prometheus_metric(databases: Databases) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from edgeprobe.collector.prometheus import registry_for

    store = Store(databases.fresh(), quarantine_max_rows=2)
    store.ingest([_item(f"junk {i}".encode()) for i in range(5)] + [_item(b"junk 4")])
    text = generate_latest(registry_for(databases.same())).decode()
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert values["edgeprobe_quarantine_dropped_rows_total"] == 3
    assert values["edgeprobe_quarantined_messages"] == 3  # "junk 3" once, "junk 4" twice


def test_commands_to_devices_are_not_quarantined(databases: Databases) -> None:
    """The collector's edgeprobe/v1/# subscription also sees the commands sent to devices."""
    store = Store(databases.fresh())
    cmd = Incoming("edgeprobe/v1/f/cam-1/cmd", b'{"id": "1", "command": "rebirth"}', NOW)
    assert store.ingest([cmd, _item(_msg())]) == (1, 0)
    assert store.counts()["quarantine"] == 0
