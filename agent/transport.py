"""Spool -> MQTT: the birth message, the publisher thread and its last will, and the flush at the end.

The standalone agent and the in-process SDK start and stop their transport
here, so both speak to the broker the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from edgeprobe.agent.config import BrokerConfig
from edgeprobe.agent.messages import Messenger
from edgeprobe.agent.spool import Spool
from edgeprobe.harness import schema

if TYPE_CHECKING:
    from edgeprobe.agent.commands import Commands
    from edgeprobe.agent.publisher import Publisher

log = logging.getLogger("edgeprobe.agent")


def start(broker: BrokerConfig, device_id: str, messenger: Messenger, spool: Spool, birth: dict[str, Any],
          commands: Commands | None = None) -> Publisher | None:
    """Spool the (retained) birth message and, with a broker configured, start publishing the spool."""
    sent = messenger.send("birth", birth, retain=True)
    if not broker.enabled:
        return None
    from edgeprobe.agent.publisher import Publisher  # paho and ssl load only when a broker is configured

    will = messenger.build("death", {"reason": "connection lost", "birth_seq": sent["seq"]}, seq=sent["seq"])
    b = broker
    publisher = Publisher(
        spool, b.host, b.port, client_id=f"edgeprobe-{device_id}",
        will_topic=messenger.topic("death"), will_payload=schema.encode(will),
        username=b.username, password=b.password, keepalive=b.keepalive,
        ca_file=b.ca_file, cert_file=b.cert_file, key_file=b.key_file,
        command_topic=commands.topic if commands else None, on_command=commands.submit if commands else None,
    )
    messenger.on_put = publisher.wake
    publisher.start()
    return publisher


def stop(publisher: Publisher | None, spool: Spool, flush_timeout: float) -> None:
    """Wait up to ``flush_timeout`` for the broker to acknowledge the spool; what is left stays for next time."""
    if publisher is None:
        return
    if publisher.connected and not publisher.flush(flush_timeout):
        log.warning("broker did not acknowledge everything in %.0f s; %d message(s) stay in the spool "
                    "for the next run", flush_timeout, spool.pending())
    elif not publisher.connected and spool.pending():
        log.warning("broker unreachable; %d message(s) kept in the spool %s for the next run",
                    spool.pending(), spool.path)
    publisher.stop()
