"""Commands sent to one device on ``edgeprobe/v1/<fleet>/<device>/cmd``.

A command is ``{"id": "...", "command": "<name>", "args": {...}}``. The
network thread only queues it; the agent loop runs it between frames (so a
handler may touch the prober or the current frame without locks) and the
reply goes out as an ``event`` message carrying the command's id, through the
spool like every other result. Anything unknown or malformed gets an error
event back and never takes the agent down.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Annotated, Any

import msgspec

from edgeprobe.agent.messages import Messenger
from edgeprobe.harness.registry import Registry

log = logging.getLogger("edgeprobe.agent.commands")

#: payloads above this are refused unread (a command is a few hundred bytes)
MAX_COMMAND_BYTES = 64 * 1024
#: commands waiting for the agent loop; beyond this, new ones are answered "busy"
MAX_QUEUED = 100

#: a handler gets the command's args and returns the reply's extra fields
Handler = Callable[[dict[str, Any]], dict[str, Any]]


class CommandError(Exception):
    """A command that cannot be carried out; the message goes back to the sender."""


class Command(msgspec.Struct, forbid_unknown_fields=True):
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    command: str
    args: dict[str, Any] = {}


_decoder = msgspec.json.Decoder(Command)


class Commands:
    """The registry the agent fills (name -> handler) and the queue between threads."""

    def __init__(self, messenger: Messenger):
        self.messenger = messenger
        #: the one registry type (harness/registry.py): a name registered twice is a bug, an unknown one is
        #: answered with the known ones and a did-you-mean
        self.handlers: Registry[Handler] = Registry("command", error=CommandError)
        #: filled by the network thread, emptied by the loop: deque's append and popleft are atomic, and an empty
        #: deque is one truth test for the loop (a Queue's get_nowait took its lock and raised Empty each poll)
        self._queue: deque[bytes] = deque()
        self.handled = 0

    @property
    def topic(self) -> str:
        return self.messenger.topic("cmd")

    def register(self, name: str, handler: Handler) -> None:
        self.handlers.register(name, handler)

    def submit(self, topic: str, payload: bytes) -> None:
        """Called from the MQTT network thread: queue only, never run here."""
        if len(self._queue) >= MAX_QUEUED:
            self._reply(None, "error", f"command queue full ({MAX_QUEUED}); try again later")
            return
        self._queue.append(payload)

    def poll(self) -> int:
        """Run every queued command (from the agent loop); returns how many ran."""
        n = 0
        pending = self._queue
        while pending:
            self.run(pending.popleft())
            n += 1
        return n

    def run(self, payload: bytes) -> dict[str, Any]:
        """Parse, dispatch and answer one command; every path ends in exactly one reply event."""
        self.handled += 1
        if len(payload) > MAX_COMMAND_BYTES:
            return self._reply(None, "error", f"command of {len(payload)} bytes refused (max {MAX_COMMAND_BYTES})")
        try:
            cmd = _decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            return self._reply(_salvage_id(payload), "error",
                               f"malformed command: {exc}; send {{\"id\": ..., \"command\": ..., \"args\": {{}}}}")
        try:  # a name over 64 characters is no command's, and is not echoed back whole
            handler = self.handlers.get(cmd.command if len(cmd.command) <= 64 else cmd.command[:64] + "...")
        except CommandError as exc:
            return self._reply(cmd.id, "error", str(exc), command=cmd.command[:64])
        try:
            result = handler(cmd.args)
        except CommandError as exc:
            return self._reply(cmd.id, "error", str(exc), command=cmd.command)
        except Exception as exc:  # a buggy handler must not stop the measurements
            log.exception("command %s failed", cmd.command)
            return self._reply(cmd.id, "error", f"{cmd.command} failed: {type(exc).__name__}: {exc}",
                               command=cmd.command)
        return self._reply(cmd.id, "ok", f"{cmd.command} done", command=cmd.command, result=result)

    def _reply(self, command_id: str | None, status: str, message: str, **extra: Any) -> dict[str, Any]:
        body = {"type": "command_result" if status == "ok" else "command_error", "message": message,
                "command_id": command_id, "status": status, **extra}
        return self.messenger.send("event", body)


def _salvage_id(payload: bytes) -> str | None:
    """The id of a command that failed validation, when it is still readable, so the reply can be matched."""
    try:
        obj = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    return value[:128] if isinstance(value, str) else None
