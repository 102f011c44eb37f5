"""The collector process: subscribe, validate, store in batches, then acknowledge.

Messages are acknowledged to the broker (manual PUBACK) only after the batch
holding them is committed to SQLite, and the session is persistent, so a
collector that crashes mid-batch gets those messages again instead of losing
them; the ``msg_id`` primary key absorbs the redelivery.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeprobe.collector.selfmetrics import kind_of_topic, new_commit_histogram
from edgeprobe.collector.store import Incoming
from edgeprobe.harness.broker_errors import connack_sentence, suback_sentence
from edgeprobe.harness.schema import TOPIC_ROOT

log = logging.getLogger("edgeprobe.collector")

#: A batch is committed when it holds BATCH_MAX messages, when its first message
#: has waited BATCH_WAIT_S, or when nothing more arrived for POLL_S, whichever comes
#: first. The broker sends at most ``max_inflight_messages`` (1000 in
#: deploy/mosquitto) un-acknowledged messages to one client, so a batch near that
#: window would stall the broker until its commit is acked; half of it lets one
#: batch be received while the previous one is committed. The POLL_S gap rule
#: commits as soon as the flow pauses (the broker waiting for acks, or a quiet
#: fleet) instead of idling to the deadline.
BATCH_MAX = 500
BATCH_WAIT_S = 0.05
POLL_S = 0.005
#: longest wait between two connection attempts while the broker is away
RECONNECT_MAX_S = 2
#: longest wait between two tries of a batch the database refused
STORE_RETRY_MAX_S = 5.0


class Ingests(Protocol):
    """Where batches go: a Store in this process, or collector/storeproc.py's StoreProcess (the CLI's)."""

    def ingest(self, batch: Sequence[Incoming]) -> tuple[int, int]: ...


@dataclass
class CollectorStats:
    received: int = 0
    stored: int = 0
    quarantined: int = 0
    batches: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)
    received_by_kind: collections.Counter[str] = field(default_factory=collections.Counter)
    commit_seconds: Any = field(default_factory=new_commit_histogram)
    last_lag_s: float = 0.0
    last_commit_ts: float = 0.0


class Collector:
    def __init__(self, store: Ingests, host: str, port: int, client_id: str = "edgeprobe-collector",
                 group: str | None = None, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None):
        self.store = store
        self.host, self.port = host, port
        self.topic = f"{TOPIC_ROOT}/#" if not group else f"$share/{group}/{TOPIC_ROOT}/#"
        # stock paho through its public API only (no patched internals: those broke on paho releases)
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
            protocol=mqtt.MQTTv5, manual_ack=True,
        )
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        # capped at RECONNECT_MAX_S: at 30 s the collector slept up to half a minute after the broker was back
        self.client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        # network thread -> writer: deque.append/popleft are atomic, so the hand-off takes
        # no lock per message; the event only wakes an idle writer
        self._queue: collections.deque[tuple[Incoming, int, int]] = collections.deque()
        self._arrived = threading.Event()
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        self._was_connected = False
        self.username, self.ca_file = username, ca_file
        #: the sentence for the broker's last refusal (None once connected)
        self.refused: str | None = None
        self.stats = CollectorStats()
        self._writer = threading.Thread(target=self._write_loop, name="edgeprobe-collector-writer", daemon=True)

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 7 * 24 * 3600  # keep our queue at the broker while we restart
        self.client.connect_async(self.host, self.port, keepalive=30, clean_start=False, properties=props)
        self.client.loop_start()
        self._writer.start()

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Store everything received so far, acknowledge it, then disconnect."""
        deadline = time.monotonic() + drain_timeout
        while self._queue and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        self._arrived.set()
        self._writer.join(timeout=drain_timeout)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            sentence = connack_sentence(reason, self.host, self.port, self.username, "collector")
            if sentence != self.refused:  # once per cause, not once per retry
                log.warning("%s", sentence)
            self.refused = sentence
            return
        client.subscribe(self.topic, qos=1)  # subscribed once the SUBACK grants it (_on_subscribe)
        if self._was_connected:  # said once per outage, so an operator can line losses up with them
            log.warning("collector reconnected to %s:%s (session present: %s)", self.host, self.port,
                        getattr(flags, "session_present", "?"))
        self._was_connected = True

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        refused = [r for r in reasons if getattr(r, "is_failure", False)]
        if refused:  # connected, but the broker will not let these credentials read the fleet
            sentence = suback_sentence(refused[0], self.host, self.port, self.username, self.topic)
            if sentence != self.refused:
                log.warning("%s", sentence)
            self.refused = sentence
            return
        self.refused = None
        self.subscribed.set()
        log.info("collector subscribed to %s on %s:%s", self.topic, self.host, self.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if self.subscribed.is_set() and not self._stop.is_set():
            log.warning("collector lost the broker %s:%s (%s); reconnecting", self.host, self.port, reason)
        self.subscribed.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Only enqueue here: the network thread must never block on the database.
        # (bytes() of paho's bytes payload is the same object, no copy)
        self.stats.received += 1
        self.stats.received_by_kind[kind_of_topic(msg.topic)] += 1
        item = Incoming(msg.topic, bytes(msg.payload), dt.datetime.now(dt.timezone.utc))
        self._queue.append((item, msg.mid, msg.qos))
        if not self._arrived.is_set():
            self._arrived.set()

    def _write_loop(self) -> None:
        pending = self._queue
        while not (self._stop.is_set() and not pending):
            if not pending:
                self._arrived.wait(timeout=0.2)
                self._arrived.clear()
                continue  # look again: a message may have come between the check and the clear
            deadline = time.monotonic() + BATCH_WAIT_S
            batch: list[tuple[Incoming, int, int]] = []
            while True:
                while pending and len(batch) < BATCH_MAX:
                    batch.append(pending.popleft())
                if len(batch) >= BATCH_MAX or self._stop.is_set():
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                time.sleep(min(POLL_S, left))
                if not pending:
                    break
            self._store(batch)

    def queue_depth(self) -> int:
        return len(self._queue)

    def _store(self, batch: list[tuple[Incoming, int, int]]) -> None:
        # Store.ingest quarantines whatever a message makes go wrong, so what reaches here is the
        # database itself failing (locked, disk full): nothing in the batch could be stored or
        # quarantined, so retry (capped backoff) and leave it unacknowledged -- never drop it.
        delay = 0.25
        t0 = time.perf_counter()
        while True:
            try:
                stored, quarantined = self.store.ingest([item for item, _, _ in batch])
                break
            except Exception:
                self.stats.errors += 1
                log.exception("the database refused a batch of %d; retrying in %.1f s", len(batch), delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, STORE_RETRY_MAX_S)
        self.stats.commit_seconds.observe(time.perf_counter() - t0)
        now = dt.datetime.now(dt.timezone.utc)
        self.stats.last_lag_s = (now - batch[0][0].received).total_seconds() if batch else 0.0
        self.stats.last_commit_ts = now.timestamp()
        self.stats.stored += stored
        self.stats.quarantined += quarantined
        self.stats.batches += 1
        for _, mid, qos in batch:
            if qos > 0:
                self.client.ack(mid, qos)
