"""Device tracking from birth, death and seq, whatever order batches arrive in and whichever collector stores them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.collector.store import Incoming, Store
from edgeprobe.harness import schema

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
BIRTH = {"model": {}, "source": {}, "host": {}, "capabilities": {}}


def _msg(kind: str, seq: int, session: str, at: float, body: dict | None = None) -> Incoming:
    m = schema.make_envelope(
        model_sha256="a" * 64, config_sha256="b" * 64,
        kind=kind, device_id="cam-1", fleet="f", session_id=session, seq=seq,
                             body=body if body is not None else (BIRTH if kind == "birth" else
                                                                 {"reason": "lost"} if kind == "death"
                                                                 else {"type": "x"}),
                             ts=T0 + dt.timedelta(seconds=at))
    return Incoming(schema.topic_for("f", "cam-1", kind), schema.encode(m), T0)


def _story() -> list[Incoming]:
    """Session s1 starts, reports, dies (will); s2 starts; s1's will is also redelivered late."""
    will = _msg("death", 0, "s1", 0.001)
    return [_msg("birth", 0, "s1", 0), _msg("event", 1, "s1", 5), will, _msg("birth", 2, "s2", 60),
            _msg("event", 3, "s2", 61)]


def test_session_change_and_late_will(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    story = _story()
    store.ingest(story[:3])
    dev = store.db["devices"].get("cam-1")
    assert dev["online"] == 0 and dev["session_id"] == "s1" and dev["sessions"] == 1
    store.ingest(story[3:])
    store.ingest([story[2]])  # the old will once more: a redelivery, changes nothing
    dev = store.db["devices"].get("cam-1")
    assert dev["online"] == 1 and dev["session_id"] == "s2" and dev["sessions"] == 2
    assert dev["last_seq"] == 3 and dev["last_seen"] == (T0 + dt.timedelta(seconds=61)).isoformat()


@settings(max_examples=40, deadline=None)
@given(order=st.permutations(range(5)), cut=st.integers(0, 5))
def test_final_state_does_not_depend_on_arrival_order(tmp_path_factory: object, order: list[int], cut: int) -> None:
    story = _story()
    shuffled = [story[i] for i in order]
    store = Store(tmp_path_factory.mktemp("d") / "db.sqlite")  # type: ignore[attr-defined]
    store.ingest(shuffled[:cut])
    store.ingest(shuffled[cut:])
    dev = store.db["devices"].get("cam-1")
    assert (dev["online"], dev["session_id"], dev["last_seq"]) == (1, "s2", 3)
    assert dev["birth_ts"] == (T0 + dt.timedelta(seconds=60)).isoformat()


def test_two_writers_on_one_file_store_each_message_once(tmp_path: Path) -> None:
    a, b = Store(tmp_path / "db.sqlite"), Store(tmp_path / "db.sqlite")
    story = _story()
    assert a.ingest(story)[0] == 5
    assert b.ingest(story) == (0, 0)
    assert a.counts()["messages"] == 5
