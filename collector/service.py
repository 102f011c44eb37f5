"""The collector process's MQTT side: stock paho (the default receiver), and the choice of client.

The batching and acknowledging rule is collector/batching.py's, the same for every client: messages
are acknowledged to the broker (manual PUBACK) only after the batch holding them is committed, and
the session is persistent, so a collector that crashes mid-batch gets those messages again instead
of losing them. Here is only what is paho's: its client, its callbacks, and ``ack``.
collector/gmqtt_service.py is the other receiver (``edgeprobe collect --client gmqtt``).
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgeprobe.collector.batching import (
    BATCH_MAX,
    BATCH_WAIT_S,
    KEEPALIVE_S,
    POLL_S,
    RECONNECT_MAX_S,
    SESSION_EXPIRY_S,
    STORE_RETRY_MAX_S,
    BatchingCollector,
    CollectorStats,
    Ingests,
)

__all__ = ["BATCH_MAX", "BATCH_WAIT_S", "CLIENTS", "POLL_S", "RECONNECT_MAX_S", "STORE_RETRY_MAX_S", "Collector",
           "CollectorStats", "Ingests", "new_collector", "require_client"]

log = logging.getLogger("edgeprobe.collector")

#: the MQTT clients a collector can receive with (``edgeprobe collect --client``); paho is the default
CLIENTS = ("paho", "gmqtt")


class Collector(BatchingCollector):
    """The paho receiver: stock paho through its public API only (no patched internals: those broke on
    paho releases), its network thread in ``loop_start``, manual PUBACKs by message id."""

    def __init__(self, store: Ingests, host: str, port: int, client_id: str = "edgeprobe-collector",
                 group: str | None = None, username: str | None = None, password: str | None = None,
                 ca_file: str | None = None, cert_file: str | None = None, key_file: str | None = None):
        super().__init__(store, host, port, client_id, group, username, password, ca_file, cert_file, key_file)
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

    def _start_client(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S  # keep our queue at the broker while we restart
        self.client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S, clean_start=False, properties=props)
        self.client.loop_start()

    def _stop_client(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _ack(self, tokens: list[Any]) -> None:
        for mid, qos in tokens:
            self.client.ack(mid, qos)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._refused_connack(reason)
            return
        client.subscribe(self.topic, qos=1)  # subscribed once the SUBACK grants it (_on_subscribe)
        self._connected(getattr(flags, "session_present", "?"))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        refused = [r for r in reasons if getattr(r, "is_failure", False)]
        self._suback(refused[0] if refused else None)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._lost(reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        # Only enqueue here: the network thread must never block on the database.
        # (bytes() of paho's bytes payload is the same object, no copy)
        self._arrived_message(msg.topic, bytes(msg.payload), (msg.mid, msg.qos) if msg.qos > 0 else None)


def require_client(client: str) -> None:
    """ConfigError (one sentence, exit 2) unless ``client`` is one of CLIENTS and importable here."""
    from edgeprobe.harness.errors import ConfigError

    if client not in CLIENTS:
        raise ConfigError(f"--client {client!r} is not a client the collector has; give one of {', '.join(CLIENTS)}")
    if client == "gmqtt":
        import importlib.util

        if importlib.util.find_spec("gmqtt") is None:
            raise ConfigError("--client gmqtt needs the gmqtt package, which is not installed; install it with "
                              "pip install 'edgeprobe[gmqtt]', or leave --client at paho")


def new_collector(client: str, store: Ingests, host: str, port: int, **kwargs: Any) -> BatchingCollector:
    """The collector receiving with ``client`` (one of CLIENTS; checked by ``require_client``)."""
    require_client(client)
    if client == "gmqtt":
        from edgeprobe.collector.gmqtt_service import GmqttCollector

        return GmqttCollector(store, host, port, **kwargs)
    return Collector(store, host, port, **kwargs)
