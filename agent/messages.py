"""Turns results into schema messages and puts them in the spool."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from edgeprobe import __version__
from edgeprobe.agent.spool import Spool
from edgeprobe.harness import schema


@dataclass
class Messenger:
    """Stamps identity, ordering and provenance on every message it spools."""

    spool: Spool
    device_id: str
    fleet: str
    #: 64 lowercase hex each: the collector refuses a message without them
    model_sha256: str
    config_sha256: str
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    on_put: Callable[[], None] | None = None
    sent: dict[str, int] = field(default_factory=dict)

    def build(self, kind: str, body: dict[str, Any], seq: int | None = None) -> dict[str, Any]:
        return schema.make_envelope(
            kind=kind,
            device_id=self.device_id,
            fleet=self.fleet,
            session_id=self.session_id,
            seq=self.spool.next_seq() if seq is None else seq,
            body=body,
            model_sha256=self.model_sha256,
            config_sha256=self.config_sha256,
            agent_version=__version__,
        )

    def topic(self, kind: str) -> str:
        return schema.topic_for(self.fleet, self.device_id, kind)

    def send(self, kind: str, body: msgspec.Struct | dict[str, Any], retain: bool = False) -> dict[str, Any]:
        """Check ``body`` against the schema's body type for ``kind`` (harness/schema.py), then spool it.

        Window and verdict bodies come as their Structs (harness/bodies.py); birth, death and event as dicts.
        """
        body = schema.check_body(kind, body)
        message: dict[str, Any] = {}

        def make(seq: int) -> bytes:
            message.update(self.build(kind, body, seq=seq))
            return schema.encode(message)

        self.spool.put_numbered(self.topic(kind), make, qos=1, retain=retain)
        self.sent[kind] = self.sent.get(kind, 0) + 1
        if self.on_put:
            self.on_put()
        return message
