"""No message can stop the store: whatever one payload does, it ends stored or quarantined, once.

The property tests throw arbitrary JSON and near-valid messages (extreme
integers, deep nesting, long strings, wrong types in real fields) at the real
decoder and a real store (a SQLite file and a real PostgreSQL), mixed with valid messages.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeprobe.collector.store import Incoming, Store
from edgeprobe.harness import schema
from tests.conftest import Databases

TOPIC = "edgeprobe/v1/f/cam-1/event"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _msg(seq: int = 1, kind: str = "event", body: dict[str, Any] | None = None,
         device: str = "cam-1") -> dict[str, Any]:
    return schema.make_envelope(
        model_sha256="a" * 64, config_sha256="b" * 64,
        kind=kind, device_id=device, fleet="f", session_id="s", seq=seq,
                                body={"type": "x"} if body is None else body)


def _item(payload: bytes, topic: str = TOPIC) -> Incoming:
    return Incoming(topic, payload, NOW)


def _nested(depth: int) -> bytes:
    """A valid envelope whose body is ``depth`` objects deep (built as text: json.dumps would recurse)."""
    head = json.dumps({**_msg(), "body": None})[:-len("null}")]
    return (head + '{"type": "x", "a": ' * depth + "1" + "}" * depth + "}").encode()


# --- the cases the issue measured -----------------------------------------------------------------


@pytest.mark.parametrize(("payload", "topic", "reason"), [
    (schema.encode(_msg(seq=2**63)), TOPIC, "seq"),
    (schema.encode(_msg(body={"type": "x", "n": 2**63})), TOPIC, "int64"),
    (schema.encode(_msg(seq=-1)), TOPIC, "seq"),
    (_nested(1000), TOPIC, "nested deeper"),
    (_nested(40), TOPIC, "nested deeper"),
    (schema.encode(_msg(kind="health", body={
        "window": {"start_ts": NOW.isoformat(), "end_ts": NOW.isoformat(), "first_frame": 0, "last_frame": 1,
                   "frames": 2**64}, "fps": 1, "brightness": 1, "contrast": 1, "sharpness": 1, "clipped": 0,
        "frozen_frames": 0, "spool_queued": 0, "spool_dropped": 0})), "edgeprobe/v1/f/cam-1/health", "frames"),
    (schema.encode(_msg(body={"type": "x", "message": "m" * 10_000})), TOPIC, "message"),
    (schema.encode(_msg(body={"type": "x", "blob": "b" * 70_000})), TOPIC, "string"),
    (b'{"pad": "' + b"x" * 600_000 + b'"}', TOPIC, "byte limit"),
])
def test_poison_is_quarantined_and_the_rest_of_the_batch_stored(databases: Databases, payload: bytes, topic: str,
                                                                 reason: str) -> None:
    store = Store(databases.fresh())
    before, after = _msg(seq=1), _msg(seq=3)
    assert store.ingest([_item(schema.encode(before)), _item(payload, topic), _item(schema.encode(after))]) == (2, 1)
    (stored_reason,) = store.db.execute("SELECT reason FROM quarantine").fetchone()
    assert reason in stored_reason
    ids = {r[0] for r in store.db.execute("SELECT msg_id FROM messages").fetchall()}
    assert ids == {before["msg_id"], after["msg_id"]}


def test_body_size_limit_is_configurable(databases: Databases) -> None:
    store = Store(databases.fresh(), max_message_bytes=2048)
    small, big = _msg(seq=1), _msg(seq=2, body={"type": "x", "message": "m" * 3000})
    assert store.ingest([_item(schema.encode(small)), _item(schema.encode(big))]) == (1, 1)
    (reason,) = store.db.execute("SELECT reason FROM quarantine").fetchone()
    assert "over the 2048-byte limit" in reason


def test_a_message_the_database_refuses_is_isolated_by_splitting_the_batch(databases: Databases) -> None:
    """A real trigger refuses one device's rows: that message alone is quarantined, the rest stored."""
    store = Store(databases.fresh())
    if databases.kind == "sqlite":
        store.db.execute("""CREATE TRIGGER refuse BEFORE INSERT ON messages WHEN NEW.device_id = 'poison'
                            BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END""")
    else:
        store.db.execute("""CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
                            BEGIN RAISE EXCEPTION 'refused by trigger'; END $$""")
        store.db.execute("""CREATE TRIGGER refuse BEFORE INSERT ON messages FOR EACH ROW
                            WHEN (NEW.device_id = 'poison') EXECUTE FUNCTION refuse()""")
    batch = [_msg(seq=i) for i in range(40)]
    poison = _msg(seq=7, device="poison")
    items = [_item(schema.encode(m)) for m in batch]
    items.insert(23, _item(schema.encode(poison), "edgeprobe/v1/f/poison/event"))
    assert store.ingest(items) == (40, 1)
    (reason, topic) = store.db.execute("SELECT reason, topic FROM quarantine").fetchone()
    assert "refused by trigger" in reason and topic == "edgeprobe/v1/f/poison/event"
    assert store.counts()["messages"] == 40
    # and the next batch is not held up by it either
    assert store.ingest([_item(schema.encode(_msg(seq=99)))]) == (1, 0)


def test_a_postgresql_that_cannot_write_raises_instead_of_quarantining(postgres: Any) -> None:
    """A table locked by another session past the lock timeout: like SQLite's busy timeout, the batch is not
    quarantined but raised, so the collector retries it and does not acknowledge it."""
    import psycopg

    url = postgres.create_database()
    store = Store(url)
    store.db.execute("SET lock_timeout = '50ms'")
    with psycopg.connect(url) as other:
        other.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(psycopg.OperationalError, match="lock timeout"):
            store.ingest([_item(schema.encode(_msg()))])
        other.rollback()
    assert store.ingest([_item(schema.encode(_msg(seq=2)))]) == (1, 0)
    assert store.quarantine_stats()["rows"] == 0
    store.close()


def test_a_database_that_cannot_write_raises_instead_of_quarantining(tmp_path: Path) -> None:
    """Locked past the busy timeout: nothing could be stored or quarantined, so the collector must not ack."""
    store = Store(tmp_path / "db.sqlite")
    store.db.execute("PRAGMA busy_timeout=50")
    store.db.conn.execute("PRAGMA busy_timeout=50")
    other = sqlite3.connect(tmp_path / "db.sqlite")
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            store.ingest([_item(schema.encode(_msg()))])
    finally:
        other.rollback()
        other.close()
    assert store.ingest([_item(schema.encode(_msg(seq=2)))]) == (1, 0)


# --- properties over generated input --------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
extreme_ints = st.sampled_from([2**63, 2**63 - 1, -(2**63) - 1, 2**64, -1, 10**30])
FIELDS = sorted(_msg())


@st.composite
def near_valid(draw: st.DrawFn) -> bytes:
    """A valid message with one or two fields replaced by something hostile."""
    msg = _msg(seq=draw(st.integers(0, 2**62)))
    for _ in range(draw(st.integers(1, 2))):
        field = draw(st.sampled_from([*FIELDS, "body.type", "body.message", "body.extra"]))
        value = draw(json_values | extreme_ints | st.text(min_size=300, max_size=5000))
        if field.startswith("body.") and isinstance(msg["body"], dict):
            msg["body"][field[5:]] = value
        else:
            msg[field.removeprefix("body.")] = value
    return json.dumps(msg).encode()


@st.composite
def deep(draw: st.DrawFn) -> bytes:
    return _nested(draw(st.integers(min_value=20, max_value=1500)))


hostile = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    near_valid(),
    deep(),
    st.binary(max_size=200),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.one_of(st.just(None), hostile), min_size=1, max_size=25))
def test_every_message_ends_stored_or_quarantined_exactly_once(databases: Databases, plan: list[bytes | None]) -> None:
    """None in the plan is a fresh valid message: all of those are stored, whatever sits around them."""
    # a fresh database per example (PostgreSQL: the same one, emptied)
    store = Store(databases.fresh())
    items, valid_ids = [], []
    for seq, entry in enumerate(plan):
        if entry is None:
            m = _msg(seq=seq)
            valid_ids.append(m["msg_id"])
            entry = schema.encode(m)
        items.append(_item(entry))
    accepted = []
    for it in items:  # what the schema lets through is stored, the rest quarantined
        with contextlib.suppress(schema.SchemaViolation):
            accepted.append(schema.decode_message(it.payload, it.topic)[0].msg_id)
    stored, quarantined = store.ingest(items)  # must not raise
    ids = [r[0] for r in store.db.execute("SELECT msg_id FROM messages").fetchall()]
    assert len(ids) == len(set(ids)) == stored
    assert set(valid_ids) <= set(ids)
    assert set(ids) == set(accepted)
    assert stored + quarantined == len(items) - (len(accepted) - len(set(accepted)))
    assert store.quarantine_stats()["messages"] == quarantined
    reasons = [r[0] for r in store.db.execute("SELECT reason FROM quarantine").fetchall()]
    assert all(reasons)
    # a second delivery of the same batch stores nothing new and adds no quarantine rows, only counts
    rows = store.counts()["quarantine"]
    assert store.ingest(items) == (0, quarantined)
    assert store.counts()["quarantine"] == rows and store.quarantine_stats()["messages"] == 2 * quarantined
    store.close()
