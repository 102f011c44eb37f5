from __future__ import annotations

import datetime as dt
import json

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
