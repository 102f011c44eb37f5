"""Drains the spool to an MQTT broker; a row leaves only once the broker has held it.

A PUBACK is not proof that the broker will still have the message after a
crash: mosquitto handles a loop's network traffic (sending PUBACKs) before it
saves its store in the same loop (src/loop.c), so a kill -9 between the two
loses a message its sender saw acknowledged. The publisher therefore keeps an
acked row for ``hold_acked_s`` (default ``HOLD_ACKED_S``) more seconds of unbroken connection, and after
any reconnect sends every row it still holds again. The collector stores
each (device, msg_id) once, so a resend costs a duplicate delivery, never a
duplicate row: delivery is at least once from the spool to the database.

paho-mqtt runs its network loop in its own thread. ``on_publish`` may fire
before ``publish()`` has even returned the message id to us, so acks are
recorded in a set first and matched to spool rows afterwards: no ack can be
lost to that race, and a row is only deleted once both sides are known.
An ack whose message id never shows up is forgotten after ``ORPHAN_ACK_S``,
so that a message id reused after the 16-bit wrap-around cannot be mistaken
for acknowledged. A row republished after ``RESEND_AFTER_S`` keeps its old
message id too: whichever PUBACK arrives first deletes it.

Reconnects back off exponentially with jitter, so a fleet that lost its
broker does not come back in lock-step; the agent keeps measuring into the
spool meanwhile.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeprobe.agent.spool import Spool
from edgeprobe.harness.broker_errors import connack_sentence, probe

log = logging.getLogger("edgeprobe.agent.publisher")

#: republish a row whose PUBACK has not come back after this long
RESEND_AFTER_S = 30.0
BATCH = 200
ORPHAN_ACK_S = 10.0
#: how long an acked row stays in the spool (connected throughout) before it is forgotten: far longer
#: than a save on change takes, and longer than a timed autosave_interval of up to a few seconds
HOLD_ACKED_S = 5.0
#: a command received on the device's cmd topic: (topic, payload)
CommandSink = Callable[[str, bytes], None]


class Publisher:
    def __init__(
        self,
        spool: Spool,
        host: str,
        port: int,
        client_id: str,
        will_topic: str | None = None,
        will_payload: bytes | None = None,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 30,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        command_topic: str | None = None,
        on_command: CommandSink | None = None,
        hold_acked_s: float = HOLD_ACKED_S,
    ):
        self.spool = spool
        self.hold_acked_s = hold_acked_s
        self.host, self.port = host, port
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(ca_certs=ca_file, certfile=cert_file, keyfile=key_file)
        self.username, self.ca_file = username, ca_file  # for the sentence that says why a connection failed
        if will_topic and will_payload is not None:
            self.client.will_set(will_topic, will_payload, qos=1, retain=False)
        self.client.max_inflight_messages_set(100)
        # paho doubles the delay per failed attempt up to max_delay; the random
        # base spreads a fleet's reconnects apart (jitter) after a broker outage.
        self.client.reconnect_delay_set(min_delay=random.uniform(0.5, 1.5), max_delay=30)  # type: ignore[arg-type]
        self.command_topic, self.on_command = command_topic, on_command
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_connect_fail = self._on_connect_fail
        self.keepalive = keepalive
        self._lock = threading.Lock()
        self._acked: dict[int, float] = {}  # mid -> when its PUBACK arrived
        self._held: dict[int, float] = {}  # spool row -> when it was acked (rows kept for HOLD_ACKED_S)
        self._resend_held = True  # at the first connect, too: a previous run may have left held rows
        self._inflight: dict[int, tuple[int, float]] = {}  # mid -> (row id, sent at)
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._unreachable_reported = False
        self._thread = threading.Thread(target=self._drain_loop, name="edgeprobe-publisher", daemon=True)
        self.published = 0

    # --- lifecycle -------------------------------------------------------

    def start(self) -> None:
        self.client.connect_async(self.host, self.port, keepalive=self.keepalive)
        self.client.loop_start()
        self._thread.start()

    def wake(self) -> None:
        """Tell the drain loop there is something new in the spool."""
        self._wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait until everything is acknowledged (nothing unsent, nothing held waiting to be resent) or timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._flushed():
                return True
            self._wake.set()
            time.sleep(0.05)
        return self._flushed()

    def _flushed(self) -> bool:
        # Held rows count until the connection they are to be resent on has taken them back: a publisher
        # that starts on a spool with held rows (or reconnects) must resend those before it is done.
        with self._lock:
            resend = self._resend_held
        return self.spool.pending() == 0 and not (resend and self.spool.held())

    def stop(self, disconnect: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if disconnect:
            self.client.disconnect()
        self.client.loop_stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # --- paho callbacks (network thread) ---------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._report_unreachable(connack_sentence(reason, self.host, self.port, self.username, "agent"))
            return
        if self._unreachable_reported:
            log.warning("connected to broker %s:%s; sending what was spooled", self.host, self.port)
        self._unreachable_reported = False
        with self._lock:
            # Anything in flight on the old connection is resent from the spool, and so is
            # anything acked so recently that the broker may have lost it with that connection.
            self._inflight.clear()
            self._acked.clear()
            self._resend_held = True
        if self.command_topic:
            client.subscribe(self.command_topic, qos=1)
        self._connected.set()
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self.on_command is None:
            return
        try:
            self.on_command(msg.topic, bytes(msg.payload))
        except Exception:  # a command must never take the network thread down
            log.exception("command on %s could not be queued", msg.topic)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._connected.clear()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if not self._unreachable_reported:  # probe once per outage: certificate not trusted, or not reachable
            self._report_unreachable(probe(self.host, self.port, self.ca_file, timeout_s=1.0)
                                     or f"broker {self.host}:{self.port} is not reachable")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            self._acked[mid] = time.monotonic()
        self._wake.set()

    def _report_unreachable(self, what: str) -> None:
        # Say it once per outage, not once per retry or per frame.
        if not self._unreachable_reported:
            self._unreachable_reported = True
            log.warning("%s; measuring and spooling locally, will keep retrying", what)

    # --- drain loop (own thread) -----------------------------------------

    def _drain_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=0.5)
            self._wake.clear()
            try:
                self._settle_acks()
                if self._connected.is_set():
                    self._requeue_or_forget_held()
                    self._send_batch()
            except Exception:  # never let the publisher thread die
                log.exception("publisher error; retrying")
                time.sleep(0.5 + random.random())
        self._settle_acks()

    def _settle_acks(self) -> None:
        now = time.monotonic()
        with self._lock:
            done = [mid for mid in self._acked if mid in self._inflight]
            rows = {self._inflight.pop(mid)[0] for mid in done}
            for mid in done:
                del self._acked[mid]
            # the same row under an older message id (republished): no longer in flight either
            for mid in [m for m, (row, _) in self._inflight.items() if row in rows]:
                del self._inflight[mid]
            for mid in [m for m, t in self._acked.items() if now - t > ORPHAN_ACK_S]:
                del self._acked[mid]
        if rows:
            self.spool.mark_acked(sorted(rows))
            self._held.update(dict.fromkeys(rows, now))
            self.published += len(rows)

    def _requeue_or_forget_held(self) -> None:
        """After a reconnect, send the held rows again; otherwise forget those held long enough.

        Runs on the drain thread only, like every other spool change here, so a
        row cannot be forgotten between a reconnect and its resend.
        """
        with self._lock:
            resend, self._resend_held = self._resend_held, False
        if resend:
            self._held.clear()
            again = self.spool.requeue_acked()
            if again:
                log.info("resending %d acknowledged messages the broker may have lost with the connection", again)
            return
        now = time.monotonic()
        done = [row for row, acked_at in self._held.items() if now - acked_at > self.hold_acked_s]
        if done:
            self.spool.delete(done)
            for row in done:
                del self._held[row]

    def _send_batch(self) -> None:
        now = time.monotonic()
        with self._lock:
            # rows whose newest send is older than RESEND_AFTER_S are sent again (old mids kept)
            newest: dict[int, float] = {}
            for row_id, sent in self._inflight.values():
                newest[row_id] = max(sent, newest.get(row_id, 0.0))
            busy = {row_id for row_id, sent in newest.items() if now - sent <= RESEND_AFTER_S}
        if len(busy) >= BATCH:
            return
        for row in self.spool.peek(BATCH - len(busy), exclude=busy):
            info = self.client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break  # disconnected meanwhile; the next connect resends
            with self._lock:
                self._inflight[info.mid] = (row.id, time.monotonic())
