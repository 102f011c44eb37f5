"""The collector's rule, whichever MQTT client receives: batch what arrives, commit it, then acknowledge it.

One place for what every receiver must do alike (collector/service.py's paho receiver and
collector/gmqtt_service.py's gmqtt one supply only the client): QoS 1 messages are queued as they
arrive, a writer thread commits them in batches (BATCH_MAX messages, BATCH_WAIT_S after a batch's
first, or a POLL_S gap), and a batch's messages are acknowledged (manual PUBACK) only after its
commit, so a collector that crashes mid-batch gets them again instead of losing them; the
``msg_id`` primary key absorbs the redelivery. The figures the collector reports about itself
(collector/selfmetrics.py) and the sentences it logs about the broker are kept here too.
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
#: the persistent session's lifetime at the broker: our queue is kept while we restart
SESSION_EXPIRY_S = 7 * 24 * 3600
KEEPALIVE_S = 30


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


#: one received message as queued: what the store needs, and what the client needs to acknowledge it
#: (``ack``: the client's own token, e.g. paho's message id; None for QoS 0, which is not acknowledged)
Queued = tuple[Incoming, Any]


class BatchingCollector:
    """Queue, batch, commit, then acknowledge; a subclass connects a client and says how to acknowledge.

    A subclass calls ``_arrived_message`` from its client's message callback (never blocking there),
    implements ``_ack`` (acknowledge a committed batch's tokens), ``_start_client`` and ``_stop_client``,
    and reports the connection's life through ``_connected``, ``_refused_connack``, ``_suback`` and
    ``_lost``, which keep ``subscribed`` and ``refused`` as the CLI reads them.
    """

    def __init__(self, store: Ingests, host: str, port: int, client_id: str = "edgeprobe-collector",
                 group: str | None = None, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None):
        self.store = store
        self.host, self.port, self.client_id = host, port, client_id
        self.topic = f"{TOPIC_ROOT}/#" if not group else f"$share/{group}/{TOPIC_ROOT}/#"
        self.username, self.password = username, password
        self.ca_file, self.cert_file, self.key_file = ca_file, cert_file, key_file
        # network thread -> writer: deque.append/popleft are atomic, so the hand-off takes
        # no lock per message; the event only wakes an idle writer
        self._queue: collections.deque[Queued] = collections.deque()
        self._arrived = threading.Event()
        self._stop = threading.Event()
        self.subscribed = threading.Event()
        self._was_connected = False
        #: the sentence for the broker's last refusal (None once connected)
        self.refused: str | None = None
        self.stats = CollectorStats()
        self._writer = threading.Thread(target=self._write_loop, name="edgeprobe-collector-writer", daemon=True)

    # --- what a client supplies ---------------------------------------------------------------------

    def _start_client(self) -> None:
        raise NotImplementedError

    def _stop_client(self) -> None:
        raise NotImplementedError

    def _ack(self, tokens: list[Any]) -> None:
        """Acknowledge these messages to the broker (called from the writer thread, after their commit)."""
        raise NotImplementedError

    # --- life -----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._start_client()
        self._writer.start()

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Store everything received so far, acknowledge it, then disconnect."""
        deadline = time.monotonic() + drain_timeout
        while self._queue and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        self._arrived.set()
        self._writer.join(timeout=drain_timeout)
        self._stop_client()

    def queue_depth(self) -> int:
        return len(self._queue)

    # --- what a client reports ------------------------------------------------------------------------

    def _arrived_message(self, topic: str, payload: bytes, ack: Any) -> None:
        """One message from the network thread: count it and queue it; never block here."""
        self.stats.received += 1
        self.stats.received_by_kind[kind_of_topic(topic)] += 1
        self._queue.append((Incoming(topic, payload, dt.datetime.now(dt.timezone.utc)), ack))
        if not self._arrived.is_set():
            self._arrived.set()

    def _connected(self, session_present: Any) -> None:
        """CONNACK accepted (the client subscribes next; subscribed once the SUBACK grants it)."""
        if self._was_connected:  # said once per outage, so an operator can line losses up with them
            log.warning("collector reconnected to %s:%s (session present: %s)", self.host, self.port,
                        session_present)
        self._was_connected = True

    def _refused_connack(self, reason: Any) -> None:
        """CONNACK refused; ``reason`` has the MQTT 5 code as ``value`` and says itself as text."""
        self._say_refused(connack_sentence(reason, self.host, self.port, self.username, "collector"))

    def _suback(self, refused: Any | None) -> None:
        """SUBACK: None when granted, else the first refused reason."""
        if refused is not None:  # connected, but the broker will not let these credentials read the fleet
            self._say_refused(suback_sentence(refused, self.host, self.port, self.username, self.topic))
            return
        self.refused = None
        self.subscribed.set()
        log.info("collector subscribed to %s on %s:%s", self.topic, self.host, self.port)

    def _lost(self, reason: Any) -> None:
        if self.subscribed.is_set() and not self._stop.is_set():
            log.warning("collector lost the broker %s:%s (%s); reconnecting", self.host, self.port, reason)
        self.subscribed.clear()

    def _say_refused(self, sentence: str) -> None:
        if sentence != self.refused:  # once per cause, not once per retry
            log.warning("%s", sentence)
        self.refused = sentence

    # --- the writer -------------------------------------------------------------------------------------

    def _write_loop(self) -> None:
        pending = self._queue
        while not (self._stop.is_set() and not pending):
            if not pending:
                self._arrived.wait(timeout=0.2)
                self._arrived.clear()
                continue  # look again: a message may have come between the check and the clear
            deadline = time.monotonic() + BATCH_WAIT_S
            batch: list[Queued] = []
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

    def _store(self, batch: list[Queued]) -> None:
        # Store.ingest quarantines whatever a message makes go wrong, so what reaches here is the
        # database itself failing (locked, disk full): nothing in the batch could be stored or
        # quarantined, so retry (capped backoff) and leave it unacknowledged -- never drop it.
        delay = 0.25
        t0 = time.perf_counter()
        while True:
            try:
                stored, quarantined = self.store.ingest([item for item, _ in batch])
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
        tokens = [ack for _, ack in batch if ack is not None]
        if tokens:
            self._ack(tokens)
