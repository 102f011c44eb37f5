"""The publisher's ack bookkeeping: paho's PUBACK callback may beat publish() returning the message id.

These drive the bookkeeping with a fake paho client (the race is not
reproducible on demand with a real broker); the fault tests in tests/e2e run
the same code against a real mosquitto.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as mqtt

from edgeprobe.agent import publisher as publisher_mod
from edgeprobe.agent.publisher import Publisher
from edgeprobe.agent.spool import Spool


class FakeClient:
    """publish() hands out mids like paho and may deliver the PUBACK before returning."""

    def __init__(self, pub: Publisher, ack_before_return: bool, mids: list[int] | None = None):
        self.pub, self.ack_before_return = pub, ack_before_return
        self.mids = mids
        self.next_mid = 1
        self.sent: list[tuple[int, bytes]] = []

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> Any:
        mid = self.mids.pop(0) if self.mids else self.next_mid
        self.next_mid += 1
        self.sent.append((mid, payload))
        if self.ack_before_return:
            self.pub._on_publish(None, None, mid, None, None)  # type: ignore[arg-type]
        return SimpleNamespace(rc=mqtt.MQTT_ERR_SUCCESS, mid=mid)


def _publisher(tmp_path: Path, n: int) -> tuple[Publisher, Spool]:
    spool = Spool(tmp_path / "spool.db")
    for i in range(n):
        spool.put("t", str(i).encode())
    pub = Publisher(spool, "127.0.0.1", 1, client_id="x")
    pub._connected.set()
    return pub, spool


def test_ack_arriving_before_publish_returns_still_deletes_the_row(tmp_path: Path) -> None:
    pub, spool = _publisher(tmp_path, 5)
    pub.client = FakeClient(pub, ack_before_return=True)  # type: ignore[assignment]
    pub._send_batch()
    pub._settle_acks()
    assert spool.pending() == 0 and pub.published == 5


def test_row_without_ack_stays(tmp_path: Path) -> None:
    pub, spool = _publisher(tmp_path, 3)
    pub.client = FakeClient(pub, ack_before_return=False)  # type: ignore[assignment]
    pub._send_batch()
    pub._settle_acks()
    assert spool.pending() == 3
    pub._on_publish(None, None, 2, None, None)  # type: ignore[arg-type]
    pub._settle_acks()
    assert [r.payload for r in spool.peek(10)] == [b"0", b"2"]


def test_orphan_ack_is_not_mistaken_for_a_reused_message_id(tmp_path: Path, monkeypatch: Any) -> None:
    pub, spool = _publisher(tmp_path, 1)
    pub._on_publish(None, None, 7, None, None)  # type: ignore[arg-type]  # an ack nobody is waiting for
    now = time.monotonic()
    monkeypatch.setattr(publisher_mod.time, "monotonic", lambda: now + publisher_mod.ORPHAN_ACK_S + 1)
    pub._settle_acks()  # forgotten
    pub.client = FakeClient(pub, ack_before_return=False, mids=[7])  # type: ignore[assignment]
    pub._send_batch()  # mid 7 again after the 16-bit wrap-around
    pub._settle_acks()
    assert spool.pending() == 1


def test_republished_row_is_deleted_by_whichever_ack_comes(tmp_path: Path, monkeypatch: Any) -> None:
    pub, spool = _publisher(tmp_path, 1)
    fake = FakeClient(pub, ack_before_return=False)
    pub.client = fake  # type: ignore[assignment]
    pub._send_batch()
    now = time.monotonic()
    monkeypatch.setattr(publisher_mod.time, "monotonic", lambda: now + publisher_mod.RESEND_AFTER_S + 1)
    pub._send_batch()  # stale: sent again under a new mid
    assert [m for m, _ in fake.sent] == [1, 2]
    pub._on_publish(None, None, 1, None, None)  # type: ignore[arg-type]  # the first send's late PUBACK
    pub._settle_acks()
    assert spool.pending() == 0 and pub._inflight == {}


def test_acked_rows_are_held_then_forgotten_once_the_broker_had_them_long_enough(tmp_path: Path,
                                                                                 monkeypatch: Any) -> None:
    pub, spool = _publisher(tmp_path, 3)
    pub.client = FakeClient(pub, ack_before_return=True)  # type: ignore[assignment]
    pub._requeue_or_forget_held()  # the first connect: nothing held yet
    pub._send_batch()
    pub._settle_acks()
    pub._requeue_or_forget_held()
    assert spool.pending() == 0 and spool.held() == 3  # acked, but kept
    now = time.monotonic()
    monkeypatch.setattr(publisher_mod.time, "monotonic", lambda: now + publisher_mod.HOLD_ACKED_S + 1)
    pub._requeue_or_forget_held()
    assert spool.held() == 0 and spool.pending() == 0


def test_a_reconnect_sends_the_held_rows_again(tmp_path: Path) -> None:
    pub, spool = _publisher(tmp_path, 3)
    fake = FakeClient(pub, ack_before_return=True)
    pub.client = fake  # type: ignore[assignment]
    pub._requeue_or_forget_held()
    pub._send_batch()
    pub._settle_acks()
    assert spool.held() == 3
    # the broker crashed right after its PUBACKs; paho reconnects
    pub._on_connect(fake, None, None, SimpleNamespace(is_failure=False), None)  # type: ignore[arg-type]
    pub._requeue_or_forget_held()
    assert spool.pending() == 3 and spool.held() == 0
    pub._send_batch()
    assert [p for _, p in fake.sent] == [b"0", b"1", b"2", b"0", b"1", b"2"]


def test_flush_is_not_done_while_held_rows_wait_for_their_resend(tmp_path: Path) -> None:
    """A restarted agent whose spool holds only acked rows has them to resend: flush must not return at once."""
    pub, spool = _publisher(tmp_path, 2)
    spool.mark_acked([r.id for r in spool.peek(10)])  # what a killed agent left: acked, held
    assert spool.pending() == 0 and spool.held() == 2
    assert not pub.flush(0.2)  # the resend after (re)connecting has not happened yet
    fake = FakeClient(pub, ack_before_return=True)
    pub.client = fake  # type: ignore[assignment]
    pub._requeue_or_forget_held()
    pub._send_batch()
    pub._settle_acks()
    assert pub.flush(0.2) and [p for _, p in fake.sent] == [b"0", b"1"]
