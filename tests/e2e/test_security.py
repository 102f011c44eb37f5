"""The deploy/mosquitto configuration on a real mosquitto: TLS, no anonymous, per-device ACL."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgeprobe.agent.publisher import Publisher
from edgeprobe.agent.spool import Spool
from edgeprobe.harness import schema

from edgeprobe.localbroker import LocalBroker, find_mosquitto
from tests.e2e.secure_broker import PASSWORDS, ca_file, make_secure_broker
from tests.e2e.util import client, count, message, start_collector, stop, wait_for

pytestmark = pytest.mark.skipif(find_mosquitto() is None or shutil.which("openssl") is None,
                                reason="mosquitto or openssl not installed")


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[LocalBroker]:
    broker = make_secure_broker(tmp_path / "broker")
    with broker:
        yield broker


@pytest.fixture
def collector(secure: LocalBroker, tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    db = tmp_path / "fleet.db"
    proc = start_collector(db, secure.address, tmp_path, "--ca-file", ca_file(secure.workdir),
                           "--username", "collector", "--password", PASSWORDS["collector"])
    yield db, proc
    stop(proc)


def _connect(secure: LocalBroker, **kw: str | None) -> dict:
    c, state = client(secure.port, **kw)  # type: ignore[arg-type]
    c.connect_async("127.0.0.1", secure.port)
    c.loop_start()
    wait_for(lambda: state["connack"] is not None, timeout=10)
    c.disconnect()
    c.loop_stop()
    return state


def test_anonymous_client_is_refused(secure: LocalBroker) -> None:
    state = _connect(secure, ca=ca_file(secure.workdir))
    assert state["connack"] is not None and state["connack"].is_failure
    assert "authori" in str(state["connack"]).lower()


def test_wrong_password_is_refused(secure: LocalBroker) -> None:
    state = _connect(secure, username="cam-a", password="guess", ca=ca_file(secure.workdir))
    assert state["connack"] is not None and state["connack"].is_failure


def test_registered_device_over_tls_is_accepted(secure: LocalBroker) -> None:
    state = _connect(secure, username="cam-a", password=PASSWORDS["cam-a"], ca=ca_file(secure.workdir))
    assert state["connack"] is not None and not state["connack"].is_failure


def test_plaintext_client_cannot_connect_to_tls_listener(secure: LocalBroker) -> None:
    c, state = client(secure.port, username="cam-a", password=PASSWORDS["cam-a"])
    try:
        c.connect("127.0.0.1", secure.port, keepalive=5)
        for _ in range(40):
            c.loop(timeout=0.05)
    except (OSError, ssl.SSLError):
        pass
    assert state["connack"] is None or state["connack"].is_failure


def test_client_that_does_not_trust_the_ca_cannot_connect(secure: LocalBroker, tmp_path: Path) -> None:
    subprocess.run(["sh", str(Path(__file__).parents[2] / "deploy/mosquitto/make-certs.sh"), str(tmp_path / "other")],
                   check=True, capture_output=True)
    c, state = client(secure.port, username="cam-a", password=PASSWORDS["cam-a"], ca=str(tmp_path / "other/ca.crt"))
    with pytest.raises(ssl.SSLError):
        c.connect("127.0.0.1", secure.port)
    assert state["connack"] is None


def test_device_cannot_publish_as_another_device(secure: LocalBroker, collector: tuple[Path, object],
                                                 tmp_path: Path) -> None:
    db, _ = collector
    spool = Spool(tmp_path / "spool-a.db")
    # cam-a tries cam-b's topic (ACL drops it) and cam-b's identity on its own topic (collector quarantines it)
    impostor = message("event", 1, device="cam-b")
    spool.put(schema.topic_for("f", "cam-b", "event"), schema.encode(impostor))
    spoofed = message("event", 2, device="cam-b")
    spool.put(schema.topic_for("f", "cam-a", "event"), schema.encode(spoofed))
    own = message("event", 3, device="cam-a")
    spool.put(schema.topic_for("f", "cam-a", "event"), schema.encode(own))
    pub = Publisher(spool, "127.0.0.1", secure.port, client_id="cam-a", username="cam-a",
                    password=PASSWORDS["cam-a"], ca_file=ca_file(secure.workdir))
    pub.start()
    try:
        assert pub.flush(20), "the broker never acknowledged cam-a's messages"
    finally:
        pub.stop()
    assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= 1
                    and count(db, "SELECT COUNT(*) FROM quarantine") >= 1)
    time.sleep(0.5)  # let anything that should not arrive have its chance to
    assert count(db, "SELECT COUNT(*) FROM messages WHERE device_id = 'cam-b'") == 0
    assert count(db, f"SELECT COUNT(*) FROM messages WHERE msg_id = '{own['msg_id']}'") == 1
    assert count(db, "SELECT COUNT(*) FROM quarantine WHERE reason LIKE '%does not match payload%'") == 1
    assert count(db, "SELECT COUNT(*) FROM quarantine WHERE topic LIKE '%/cam-b/%'") == 0


def test_device_reads_only_its_own_commands(secure: LocalBroker) -> None:
    ca = ca_file(secure.workdir)
    spies = []
    for device in ("cam-a", "cam-b"):
        c, state = client(secure.port, username=device, password=PASSWORDS[device], ca=ca, client_id=f"spy-{device}")
        c.on_subscribe = lambda *a, s=state: s.update(subscribed=True)
        c.connect("127.0.0.1", secure.port)
        c.loop_start()
        c.subscribe("edgeprobe/v1/f/+/cmd", qos=1)
        spies.append((c, state))
    assert wait_for(lambda: all(s.get("subscribed") for _, s in spies))
    op, _ = client(secure.port, username="collector", password=PASSWORDS["collector"], ca=ca,
                          client_id="operator")
    op.connect("127.0.0.1", secure.port)
    op.loop_start()
    for device in ("cam-a", "cam-b"):
        op.publish(f"edgeprobe/v1/f/{device}/cmd", b'{"id": "1", "command": "rebirth"}', qos=1).wait_for_publish(10)
    assert wait_for(lambda: all(len(s["messages"]) >= 1 for _, s in spies))
    time.sleep(0.3)
    for (c, state), device in zip(spies, ("cam-a", "cam-b"), strict=True):
        c.loop_stop()
        c.disconnect()
        assert [t for t, _ in state["messages"]] == [f"edgeprobe/v1/f/{device}/cmd"]
    op.loop_stop()
    op.disconnect()
