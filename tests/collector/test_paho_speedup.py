"""The collector's paho speedups must parse exactly as paho does and never hold bytes back."""

from __future__ import annotations

import socket

import pytest
from edgeprobe.collector.paho_speedup import BufferedSocket, SharedTableProperties, install
from paho.mqtt import _packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

TOPIC = b"edgeprobe/v1/f/cam-1/health"


def _publish(props: bytes, payload: bytes = b'{"x": 1}') -> bytes:
    return len(TOPIC).to_bytes(2, "big") + TOPIC + (7).to_bytes(2, "big") + props + payload


def _props() -> Properties:
    p = Properties(PacketTypes.PUBLISH)
    p.MessageExpiryInterval = 60
    p.ContentType = "application/json"
    p.UserProperty = ("trace", "abc")
    return p


@pytest.mark.parametrize("props", [b"\x00", _props().pack()], ids=["none", "three"])
def test_shared_table_properties_decode_as_paho_does(props: bytes) -> None:
    plain = Properties(PacketTypes.PUBLISH)
    fast = SharedTableProperties(PacketTypes.PUBLISH)
    assert fast.unpack(props)[1] == plain.unpack(props)[1]
    assert fast.json() == plain.json() and str(fast) == str(plain)
    fast.unpack(b"\x00")  # a reused object forgets the previous message's properties
    assert fast.isEmpty()


def test_tables_are_shared_and_untouched_by_instances() -> None:
    a, b = SharedTableProperties(PacketTypes.PUBLISH), SharedTableProperties(PacketTypes.PUBLISH)
    a.unpack(_props().pack())
    assert a.names is b.names and not hasattr(b, "ContentType")
    with pytest.raises(Exception, match="does not apply"):  # paho's validation still runs
        a.SessionExpiryInterval = 5


def test_install_makes_paho_decode_with_shared_tables() -> None:
    assert install() and install()  # idempotent
    packet = _packet.decode_publish(0x32, _publish(_props().pack()), 5)
    assert isinstance(packet.properties, SharedTableProperties)
    assert packet.properties.json() == _props().json() and packet.payload == b'{"x": 1}' and packet.mid == 7


def test_buffered_socket_serves_small_reads_and_reports_what_it_holds() -> None:
    left, right = socket.socketpair()
    try:
        right.setblocking(False)
        buffered = BufferedSocket(right)
        left.sendall(b"\x32\x05hello\x40\x02\x00\x07")
        assert buffered.recv(1) == b"\x32"
        assert buffered.pending() == 10  # all of it was read at once; paho's loop must not wait in select
        assert buffered.recv(1) == b"\x05" and buffered.recv(5) == b"hello"
        assert buffered.recv(100) == b"\x40\x02\x00\x07"
        assert buffered.pending() == 0
        with pytest.raises(BlockingIOError):  # nothing buffered, nothing sent: as a plain non-blocking socket
            buffered.recv(1)
        assert buffered.fileno() == right.fileno() and buffered.send(b"ok") == 2 and left.recv(2) == b"ok"
        left.close()
        assert buffered.recv(1) == b""  # the peer closed
    finally:
        right.close()
