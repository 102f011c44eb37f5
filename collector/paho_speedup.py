"""Two cuts in paho's per-message cost on the collector's receive path.

Both keep paho's parsing and its protocol handling as they are; they only
remove work it repeats for every message.

**Properties.**
paho 2.x builds a fresh ``Properties`` for every MQTT v5 PUBLISH it receives,
and its constructor rebuilds two 27-entry lookup tables each time (some 6 us),
then ``unpack`` clears every possible property by name (another 4 us): about
11 us of the collector's ~73 us of CPU per message, in the network thread that
shares the GIL with the writer (profiled with py-spy under benchmarks/ingest.py).

``SharedTableProperties`` is the same class with those tables built once per
packet type and shared (nothing writes to them), and a ``clear`` that deletes
only the properties actually set. It parses and validates exactly as paho does:
every property still goes through paho's own ``unpack`` and ``__setattr__``.

**Reads.** paho reads each packet with three or four ``recv`` calls (the command
byte, each byte of the remaining length, then the rest), a system call each.
``BufferedClient`` hands paho a socket that reads up to 64 KiB at a time and
serves those calls from the buffer; its ``pending()`` tells paho's loop that
buffered bytes are waiting (the hook paho already uses for TLS), so nothing
sits in the buffer while the loop waits in ``select``.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties

try:  # a private module of paho 2.x: another version may not have it, and then nothing is replaced
    from paho.mqtt import _packet
except ImportError:  # pragma: no cover - depends on the installed paho
    _packet = None  # type: ignore[assignment]

#: the attributes paho's constructor sets; everything else on an instance is a property
_TABLE_ATTRS = frozenset(("packetType", "types", "names", "properties"))
_TABLES: dict[int, dict[str, Any]] = {}


class SharedTableProperties(Properties):
    """paho's ``Properties`` with its lookup tables built once per packet type."""

    def __init__(self, packetType: int) -> None:  # paho's parameter name
        tables = _TABLES.get(packetType)
        if tables is None:
            tables = _TABLES[packetType] = dict(Properties(packetType).__dict__)
        self.__dict__.update(tables)  # the shared, read-only tables; bypasses paho's validating __setattr__

    def clear(self) -> None:
        for name in [k for k in self.__dict__ if k not in _TABLE_ATTRS]:
            delattr(self, name)

    def unpack(self, buffer: bytes) -> tuple[Properties, int]:
        if buffer[:1] == b"\x00":  # no properties, the usual PUBLISH: length 0, one byte
            self.clear()
            return self, 1
        result: tuple[Properties, int] = super().unpack(buffer)
        return result


def install() -> bool:
    """Make paho's packet decoder build ``SharedTableProperties``; True if it now does.

    Only replaces the exact class this module was written against, so another
    paho version that changed ``_packet`` keeps its own behaviour.
    """
    if _packet is None:
        return False
    current = getattr(_packet, "Properties", None)
    if current is SharedTableProperties:
        return True
    if current is not Properties:
        return False
    _packet.Properties = SharedTableProperties  # type: ignore[misc]
    return True


class BufferedSocket:
    """A socket whose ``recv`` is served from one larger read (paho's ``SocketLike``, plus ``pending``)."""

    READ_SIZE = 65536

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._buf):
            # raises BlockingIOError / ssl.SSLWantReadError exactly as the socket does; paho handles both
            self._buf, self._pos = self._sock.recv(max(size, self.READ_SIZE)), 0
            if not self._buf:
                return b""  # the peer closed
        out = self._buf[self._pos:self._pos + size]
        self._pos += len(out)
        return out

    def pending(self) -> int:
        """Bytes readable without waiting: ours, plus what a TLS socket has decrypted."""
        inner = getattr(self._sock, "pending", None)
        return len(self._buf) - self._pos + (inner() if inner is not None else 0)

    def send(self, data: bytes | bytearray) -> int:
        sent: int = self._sock.send(data)
        return sent

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        fd: int = self._sock.fileno()
        return fd

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def __getattr__(self, name: str) -> Any:  # anything else paho or a callback asks of the socket
        return getattr(self._sock, name)


class BufferedClient(mqtt.Client):
    """paho's client, reading through a ``BufferedSocket`` (websockets keep paho's own wrapper)."""

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        return sock if self._transport == "websockets" else BufferedSocket(sock)
