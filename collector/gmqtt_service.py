"""The gmqtt receiver (``edgeprobe collect --client gmqtt``): the same collector on a cheaper MQTT client.

gmqtt is a maintained pure-Python asyncio MQTT 5 client (the ``gmqtt`` extra; the agent never
imports it). Counting QoS 1 messages it costs half of paho's CPU a message, and the collector's
network process on it ~60 % of the paho one's (30-34 against 51-52.5 us; benchmarks/ingest.py).

Only the client lives here; batching, committing and the rule that a message is acknowledged only
after its batch's commit are collector/batching.py's, as for paho. gmqtt acknowledges a QoS 1
message (with ``optimistic_acknowledgement=False``) when its ``on_message`` coroutine returns: each
message's coroutine queues the message with a future as its ack token and awaits that future; the
writer thread, once the batch is committed, resolves the batch's futures in one call on the
event loop, and gmqtt then sends their PUBACKs. A message whose batch never commits is never
acknowledged, so the broker delivers it again.

The event loop runs in a thread of its own (``edgeprobe-collector-network``), as paho's network
thread does. The first connection is tried until it succeeds (1 s, then every RECONNECT_MAX_S);
after that gmqtt reconnects by itself (unlimited, every GMQTT_RECONNECT_S, persistent session, clean
start off) and the subscription is made again on every CONNACK. One difference from paho: gmqtt
stops reconnecting after a CONNACK refusal it deems permanent (bad credentials, not authorised)
after the first connection was made; such a collector has logged that it lost the broker, stays up
unconnected, and needs a restart once the broker's password file is fixed (paho keeps trying every
RECONNECT_MAX_S and says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from typing import Any

from gmqtt import Client as GmqttClient
from gmqtt.mqtt.constants import UNLIMITED_RECONNECTS
from gmqtt.mqtt.handler import MQTTConnectError

from edgeprobe.collector.batching import (
    KEEPALIVE_S,
    RECONNECT_MAX_S,
    SESSION_EXPIRY_S,
    BatchingCollector,
    Ingests,
)

log = logging.getLogger("edgeprobe.collector")

#: gmqtt waits this long before each reconnect (a fixed wait, where paho's doubles from 1 s to
#: RECONNECT_MAX_S): a broker back within a second is used within a second
GMQTT_RECONNECT_S = 1

#: MQTT 5 CONNACK codes after which gmqtt does not reconnect by itself (malformed, protocol error,
#: unsupported version, client id not valid, bad user name or password, not authorized, banned, bad
#: authentication method, ...): the first connection is tried again by this module all the same, as
#: the paho receiver does, since an operator may fix the broker's password file meanwhile
_GMQTT_GIVES_UP = frozenset({0x81, 0x82, 0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C, 0x90, 0x95, 0x99, 0x9A, 0x9B, 0x9C,
                             0x9D})


class _Reason:
    """A refusal code as broker_errors' sentences read it (``value``, and the text it prints)."""

    def __init__(self, code: int, text: str):
        self.value, self._text = code, text

    def __str__(self) -> str:
        return self._text


class GmqttCollector(BatchingCollector):
    def __init__(self, store: Ingests, host: str, port: int, client_id: str = "edgeprobe-collector",
                 group: str | None = None, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None):
        super().__init__(store, host, port, client_id, group, username, password, ca_file, cert_file, key_file)
        # built now, so a file that is not PEM fails here (OSError/ValueError) as paho's tls_set does
        self._tls: ssl.SSLContext | None = None
        if ca_file:
            self._tls = ssl.create_default_context(cafile=ca_file)
            if cert_file:
                self._tls.load_cert_chain(cert_file, key_file)
        self._loop = asyncio.new_event_loop()
        self._client: Any = None
        self._done: asyncio.Event | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="edgeprobe-collector-network", daemon=True)

    # --- BatchingCollector's client part -------------------------------------------------------------

    def _start_client(self) -> None:
        self._thread.start()

    def _stop_client(self) -> None:
        if self._thread.is_alive() and self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(timeout=10)

    def _ack(self, tokens: list[Any]) -> None:
        # one call on the loop for the whole batch: each resolved future lets its message's coroutine
        # return 0 ("success"), and gmqtt sends that message's PUBACK
        with contextlib.suppress(RuntimeError):  # the loop has closed (stopping): delivered again, not lost
            self._loop.call_soon_threadsafe(_release, tokens)

    # --- the network thread --------------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._done = asyncio.Event()
        self._loop.set_exception_handler(self._loop_error)
        # gmqtt's warnings (each refused CONNACK, each PUBACK written to a socket that just closed) say what
        # the collector's sentences say better; its errors still come through
        logging.getLogger("gmqtt").setLevel(logging.ERROR)
        client = self._client = GmqttClient(self.client_id, clean_session=False, optimistic_acknowledgement=False,
                                            session_expiry_interval=SESSION_EXPIRY_S)
        client.set_config({"reconnect_retries": UNLIMITED_RECONNECTS, "reconnect_delay": GMQTT_RECONNECT_S})
        if self.username:
            client.set_auth_credentials(self.username, self.password)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        delay = 1.0
        while not self._done.is_set():
            try:
                await client.connect(self.host, self.port, ssl=self._tls or False, keepalive=KEEPALIVE_S)
                break
            except MQTTConnectError as exc:
                code = int(exc.args[0]) if exc.args else 0
                self._refused_connack(_Reason(code, getattr(exc, "message", str(exc))))
                if code not in _GMQTT_GIVES_UP:
                    break  # gmqtt tries again by itself
            except (OSError, asyncio.TimeoutError) as exc:  # the CLI says why (broker_errors.probe)
                log.debug("collector cannot connect to %s:%s (%s)", self.host, self.port, exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._done.wait(), timeout=delay)
            delay = min(delay * 2, RECONNECT_MAX_S)
        await self._done.wait()
        # the last batch's acks were handed to the loop before _done: a few turns of the loop let them
        # out (each resolved coroutine returns, then gmqtt's callback writes its PUBACK), then disconnect
        for _ in range(3):
            await asyncio.sleep(0)
        self._closing = True
        try:
            await client.disconnect()
        except Exception as exc:  # the connection already gone
            log.debug("gmqtt disconnect: %s", exc)
        # what is left is gmqtt's reconnect attempt and messages whose batch was never committed: cancelled,
        # so never acknowledged (the broker delivers them again)
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The loop's errors, but not those of cancelling what was left at stop (gmqtt's callbacks
        read a cancelled task's result)."""
        if not self._closing:
            loop.default_exception_handler(context)

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        client.subscribe(self.topic, qos=1)  # subscribed once the SUBACK grants it (_on_subscribe)
        self._connected(bool(flags))

    def _on_subscribe(self, client: Any, mid: int, granted: Any, properties: Any) -> None:
        refused = [q for q in granted if q >= 0x80]
        self._suback(_Reason(refused[0], f"reason code {refused[0]:#x}") if refused else None)

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        self._lost(exc or "connection closed")

    async def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        """Queue the message, then wait for its batch's commit; returning sends its PUBACK."""
        if qos == 0:  # nothing to acknowledge
            self._arrived_message(topic, payload, None)
            return 0
        done = self._loop.create_future()
        self._arrived_message(topic, payload, done)
        await done
        return 0


def _release(futures: list[asyncio.Future[None]]) -> None:
    for f in futures:
        if not f.done():
            f.set_result(None)
