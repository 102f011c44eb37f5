from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

from edgeprobe.collector.store import Incoming, Store
from edgeprobe.harness import schema
from tests.conftest import Databases


def _incoming(msg: dict, topic: str | None = None) -> Incoming:
    return Incoming(topic or schema.topic_for(msg["fleet"], msg["device_id"], msg["kind"]),
                    schema.encode(msg), dt.datetime.now(dt.timezone.utc))


def _msg(kind: str, seq: int, body: dict, device: str = "cam-1") -> dict:
    return schema.make_envelope(
        model_sha256="a" * 64, config_sha256="b" * 64,
        kind=kind, device_id=device, fleet="f", session_id="s", seq=seq, body=body)


BIRTH = {"model": {}, "source": {}, "host": {}, "capabilities": {}}


def test_redelivery_changes_nothing(databases: Databases) -> None:
    store = Store(databases.fresh())
    m = _msg("birth", 0, BIRTH)
    assert store.ingest([_incoming(m)]) == (1, 0)
    assert store.ingest([_incoming(m), _incoming(m)]) == (0, 0)
    assert store.counts()["messages"] == 1


def test_a_batch_mixing_redeliveries_and_new_messages_stores_and_counts_only_the_new(tmp_path: Path) -> None:
    """SQLite learns which messages are new from the rows past the largest rowid: with redeliveries in the
    batch, and where the largest rowid is already SQLite's largest (new rows then get random rowids)."""
    for top in (None, 2**63 - 1):
        store = Store(tmp_path / f"top-{top}.db")
        old = [_msg("event", i, {"type": "x"}) for i in range(3)]
        assert store.ingest([_incoming(m) for m in old]) == (3, 0)
        if top is not None:
            store.db.execute("UPDATE messages SET rowid = ? WHERE msg_id = ?", (top, old[-1]["msg_id"]))
            store.db.conn.commit()
        new = [_msg("event", i, {"type": "y"}) for i in range(3, 6)]
        batch = [_incoming(m) for m in (old[0], new[0], old[2], new[1], new[2], new[1])]
        assert store.ingest(batch) == (3, 0)
        assert store.counts()["messages"] == 6
        kinds = dict(store.db.execute("SELECT kind, stored FROM device_kinds").fetchall())
        assert kinds == {"event": 6}  # the derived rows counted each message once
        store.close()


def test_indexes_no_query_reads_are_dropped_from_an_older_database(tmp_path: Path) -> None:
    Store(tmp_path / "f.db").close()
    conn = sqlite3.connect(tmp_path / "f.db")
    conn.execute("CREATE INDEX idx_messages_msg_id ON messages (msg_id)")
    conn.execute("CREATE INDEX idx_health_device_id ON health (device_id)")
    conn.commit()
    conn.close()
    store = Store(tmp_path / "f.db")
    names = {r[0] for r in store.db.execute("SELECT name FROM sqlite_master WHERE type = 'index'").fetchall()}
    assert "idx_messages_msg_id" not in names and "idx_health_device_id" not in names
    assert "messages_received_ts" in names  # retention's
    store.close()


def test_bad_payloads_go_to_quarantine_with_reason(databases: Databases) -> None:
    store = Store(databases.fresh())
    good = _msg("event", 1, {"type": "x"})
    spoofed = _msg("event", 2, {"type": "x"}, device="cam-2")
    batch = [
        Incoming("edgeprobe/v1/f/cam-1/event", b"{nope", dt.datetime.now(dt.timezone.utc)),
        Incoming("edgeprobe/v1/f/cam-1/event", b"\xff" * 200_000, dt.datetime.now(dt.timezone.utc)),
        _incoming(spoofed, topic="edgeprobe/v1/f/cam-1/event"),
        _incoming(good),
    ]
    assert store.ingest(batch) == (1, 3)
    rows = [dict(zip(("reason", "payload_bytes", "payload"), r, strict=True)) for r in store.db.execute(
        "SELECT reason, payload_bytes, payload FROM quarantine ORDER BY id").fetchall()]
    reasons = [r["reason"] for r in rows]
    assert reasons[0].startswith("not JSON") and reasons[1].startswith("not JSON")
    assert reasons[2] == ("topic 'edgeprobe/v1/f/cam-1/event' does not match payload "
                          "(expected 'edgeprobe/v1/f/cam-2/event')")
    assert rows[1]["payload_bytes"] == 200_000 and len(rows[1]["payload"]) <= 64 * 1024


def test_devices_and_seq_gaps(databases: Databases) -> None:
    store = Store(databases.fresh())
    store.ingest([_incoming(_msg("birth", 0, BIRTH)), _incoming(_msg("event", 1, {"type": "a"})),
                  _incoming(_msg("event", 4, {"type": "b"}))])
    assert store.db.execute("SELECT online, last_seq FROM devices WHERE device_id = 'cam-1'").fetchone() == (1, 4)
    (missing,) = store.db.execute("SELECT missing FROM device_seq WHERE device_id = 'cam-1'").fetchone()
    assert missing == 2
    store.ingest([_incoming(_msg("death", 5, {"reason": "stopped"}))])
    assert store.db.execute("SELECT online FROM devices WHERE device_id = 'cam-1'").fetchone() == (0,)
    (raw,) = store.db.execute("SELECT body FROM messages WHERE kind = 'death'").fetchone()
    body = json.loads(raw)
    assert body == {"reason": "stopped"}
