"""The deploy/mosquitto broker as the README installs it, attacked with one device's credentials.

The broker is Debian's mosquitto running the shipped drop-in next to Debian's
stock config, as the `mosquitto` user (tests/e2e/secure_broker.py); the
collector is a real `edgeprobe collect` process writing SQLite. Each attack
from issue 16 must fail: cross-device and cross-fleet publishing, taking over
the collector's or another device's session by client id, and joining the
collectors' shared subscription group.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgeprobe.harness import schema
from tests.e2e.secure_broker import PASSWORDS, SecureBroker, make_secure_broker, remove
from tests.e2e.util import client, count, message, start_collector, stop, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def secure() -> Iterator[SecureBroker]:
    broker = make_secure_broker()
    try:
        broker.start()
        broker.register()
        yield broker
    finally:
        remove(broker)


@pytest.fixture
def collector(secure: SecureBroker, tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A collector on the secure broker (on paho; a test about the collector's own client behaviour also
    asks for collector_client, and runs on each client)."""
    db = tmp_path / "fleet.db"
    proc = start_collector(db, secure.address, tmp_path, "--ca-file", secure.ca_file,
                           "--username", "collector", "--password", PASSWORDS["collector"])
    yield db, proc
    stop(proc)


class Device:
    """A connected paho client that records CONNACK, SUBACK, PUBACK and disconnects."""

    def __init__(self, broker: SecureBroker, user: str, client_id: str = "", password: str | None = None):
        self.c, self.state = client(broker.port, username=user, password=password or PASSWORDS.get(user),
                                    ca=broker.ca_file, client_id=client_id)
        self.suback: dict[int, list] = {}
        self.puback: dict[int, object] = {}
        self.disconnected = threading.Event()
        self.c.on_subscribe = lambda cl, u, mid, codes, p: self.suback.__setitem__(mid, codes)
        self.c.on_publish = lambda cl, u, mid, reason, p: self.puback.__setitem__(mid, reason)
        self.c.on_disconnect = lambda *a: self.disconnected.set()
        self.c.connect("127.0.0.1", broker.port)
        self.c.loop_start()
        assert wait_for(lambda: self.state["connack"] is not None, timeout=10)

    def subscribe(self, topic: str) -> list:
        _, mid = self.c.subscribe(topic, qos=1)
        assert wait_for(lambda: mid in self.suback, timeout=10)
        return self.suback[mid]

    def publish(self, topic: str, payload: bytes) -> object:
        info = self.c.publish(topic, payload, qos=1)
        assert wait_for(lambda: info.mid in self.puback, timeout=10), f"no PUBACK for {topic}"
        return self.puback[info.mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _stored(db: Path, msg: dict) -> int:
    return count(db, f"SELECT COUNT(*) FROM messages WHERE msg_id = '{msg['msg_id']}'")


# --- the install itself ----------------------------------------------------------------------------


def test_the_broker_runs_as_the_mosquitto_user_with_the_files_install_sh_made(secure: SecureBroker) -> None:
    assert secure.proc is not None
    status = Path(f"/proc/{secure.proc.pid}/status").read_text()
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    import pwd

    assert pwd.getpwuid(uid).pw_name == "mosquitto"
    etc = secure.root / "etc/mosquitto"
    configs = [etc / "mosquitto.conf", etc / "conf.d/edgeprobe.conf"]
    keys = [line.split()[0] for conf in configs for line in conf.read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert "user" not in keys
    single = {"pid_file", "persistence", "persistence_location", "autosave_interval", "autosave_on_changes",
              "message_size_limit", "use_username_as_clientid", "allow_anonymous", "include_dir"}
    assert not [k for k in single if keys.count(k) > 1], "a key set twice: mosquitto refuses the config"

    def mode(p: Path) -> tuple[int, str, str]:
        import grp

        st = p.stat()
        return st.st_mode & 0o777, pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name

    assert mode(etc / "edgeprobe/certs/server.key") == (0o640, "root", "mosquitto")
    assert mode(etc / "conf.d/edgeprobe.conf") == (0o640, "root", "mosquitto")
    assert mode(etc / "edgeprobe/ctrl/mosquitto_ctrl")[0] == 0o600
    store = secure.root / "var/lib/mosquitto/edgeprobe-dynsec.json"  # the credential store mosquitto rewrites
    assert mode(store) == (0o600, "mosquitto", "mosquitto")
    broker_files = [p.name for top in ("etc", "var", "run") for p in (secure.root / top).rglob("*")]
    assert "ca.key" not in broker_files and (secure.ca / "ca.key").exists()
    assert "pw-a" not in store.read_text()  # hashed


def test_anonymous_and_wrong_passwords_are_refused_and_a_registered_device_is_not(secure: SecureBroker) -> None:
    anon = Device(secure, "")
    assert anon.state["connack"].is_failure
    wrong = Device(secure, "cam-a", password="guess")
    assert wrong.state["connack"].is_failure
    ok = Device(secure, "cam-a")
    assert not ok.state["connack"].is_failure
    for d in (anon, wrong, ok):
        d.close()


def test_plaintext_and_untrusting_clients_cannot_connect(secure: SecureBroker, tmp_path: Path) -> None:
    c, state = client(secure.port, username="cam-a", password=PASSWORDS["cam-a"])
    try:
        c.connect("127.0.0.1", secure.port, keepalive=5)
        for _ in range(40):
            c.loop(timeout=0.05)
    except (OSError, ssl.SSLError):
        pass
    assert state["connack"] is None or state["connack"].is_failure
    subprocess.run(["sh", str(Path(__file__).parents[2] / "deploy/mosquitto/make-certs.sh"), str(tmp_path / "other")],
                   check=True, capture_output=True)
    c, state = client(secure.port, username="cam-a", password=PASSWORDS["cam-a"], ca=str(tmp_path / "other/ca.crt"))
    with pytest.raises(ssl.SSLError):
        c.connect("127.0.0.1", secure.port)
    assert state["connack"] is None


# --- the attacks -----------------------------------------------------------------------------------


def test_cross_device_and_cross_fleet_publishes_are_refused(secure: SecureBroker,
                                                            collector: tuple[Path, object]) -> None:
    db, _ = collector
    cam_a = Device(secure, "cam-a")
    as_b = message("event", 1, device="cam-b")
    other_fleet = message("event", 2, device="cam-a", fleet="other")
    own = message("event", 3, device="cam-a")
    refused = [cam_a.publish(schema.topic_for("f", "cam-b", "event"), schema.encode(as_b)),
               cam_a.publish(schema.topic_for("other", "cam-a", "event"), schema.encode(other_fleet))]
    assert cam_a.publish(schema.topic_for("f", "cam-a", "event"), schema.encode(own)).is_failure is False
    cam_a.close()
    assert wait_for(lambda: _stored(db, own) == 1)
    time.sleep(0.5)  # anything that should not arrive has had its chance
    assert [r.is_failure for r in refused] == [True, True]  # PUBACK "not authorized"
    assert _stored(db, as_b) == 0 and _stored(db, other_fleet) == 0
    assert count(db, "SELECT COUNT(*) FROM messages") == 1


def test_a_device_cannot_join_the_collectors_shared_group_or_read_other_topics(secure: SecureBroker) -> None:
    cam_a = Device(secure, "cam-a")
    for topic in ("$share/collectors/edgeprobe/v1/#", "$share/g/edgeprobe/v1/f/cam-a/cmd", "edgeprobe/v1/#", "#",
                  "edgeprobe/v1/f/cam-b/event", "edgeprobe/v1/f/cam-b/cmd", "edgeprobe/v1/f/+/cmd"):
        (code,) = cam_a.subscribe(topic)
        assert code.is_failure, f"cam-a was granted {topic}"
    (code,) = cam_a.subscribe("edgeprobe/v1/f/cam-a/cmd")
    assert not code.is_failure
    cam_a.close()


@pytest.mark.usefixtures("collector_client")  # the collector's own reconnect/session: on paho and on gmqtt
def test_a_device_using_the_collectors_client_id_takes_nothing(secure: SecureBroker,
                                                               collector: tuple[Path, object],
                                                               tmp_path: Path) -> None:
    db, _ = collector
    intruders = [Device(secure, "cam-b", client_id=cid) for cid in ("collector", "test-collector")]
    cam_a = Device(secure, "cam-a")
    sent = [message("event", i) for i in range(100)]
    for m in sent:
        assert not cam_a.publish(schema.topic_for("f", "cam-a", "event"), schema.encode(m)).is_failure
    assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= 100, timeout=30)
    assert count(db, "SELECT COUNT(*) FROM messages") == 100
    assert "lost the broker" not in (tmp_path / "test-collector.log").read_text()
    for d in (*intruders, cam_a):
        d.close()


def test_a_device_using_another_devices_client_id_does_not_kick_it(secure: SecureBroker,
                                                                   collector: tuple[Path, object]) -> None:
    db, _ = collector
    death = message("death", 1, device="cam-b", body={"reason": "connection lost"})
    victim = mqtt_with_will(secure, death)
    attacker = Device(secure, "cam-a", client_id="cam-b")
    assert not attacker.state["connack"].is_failure
    time.sleep(1.0)
    assert not victim.disconnected.is_set(), "cam-a's connection kicked cam-b off"
    assert _stored(db, death) == 0, "cam-b's last will was published"
    attacker.close()
    victim.close()


def mqtt_with_will(secure: SecureBroker, will: dict) -> Device:
    """cam-b connected with a last will (set before CONNECT, as the agent does)."""
    dev = Device.__new__(Device)
    dev.c, dev.state = client(secure.port, username="cam-b", password=PASSWORDS["cam-b"], ca=secure.ca_file,
                              client_id="cam-b")
    dev.suback, dev.puback, dev.disconnected = {}, {}, threading.Event()
    dev.c.on_disconnect = lambda *a: dev.disconnected.set()
    dev.c.will_set(schema.topic_for("f", "cam-b", "death"), schema.encode(will), qos=1)
    dev.c.connect("127.0.0.1", secure.port)
    dev.c.loop_start()
    assert wait_for(lambda: dev.state["connack"] is not None, timeout=10)
    return dev


def test_each_device_reads_only_its_own_commands(secure: SecureBroker) -> None:
    devices = {name: Device(secure, name) for name in ("cam-a", "cam-b")}
    for name, dev in devices.items():
        (code,) = dev.subscribe(f"edgeprobe/v1/f/{name}/cmd")
        assert not code.is_failure
    op = Device(secure, "collector")  # the collector's credential may send commands
    for name in devices:
        assert not op.publish(f"edgeprobe/v1/f/{name}/cmd", b'{"id": "1", "command": "rebirth"}').is_failure
    assert wait_for(lambda: all(d.state["messages"] for d in devices.values()))
    time.sleep(0.3)
    for name, dev in devices.items():
        assert [t for t, _ in dev.state["messages"]] == [f"edgeprobe/v1/f/{name}/cmd"]
        dev.close()
    op.close()


def test_a_message_over_the_size_limit_is_refused_by_the_broker(secure: SecureBroker,
                                                                collector: tuple[Path, object]) -> None:
    db, _ = collector
    cam_a = Device(secure, "cam-a")
    big = message("event", 1, body={"type": "x", "pad": "p" * 600_000})
    cam_a.c.publish(schema.topic_for("f", "cam-a", "event"), schema.encode(big), qos=1)
    after = message("event", 2)
    cam_a.close()
    cam_a = Device(secure, "cam-a")  # the broker may drop the connection of a client that sent too much
    assert not cam_a.publish(schema.topic_for("f", "cam-a", "event"), schema.encode(after)).is_failure
    assert wait_for(lambda: _stored(db, after) == 1)
    assert _stored(db, big) == 0 and count(db, "SELECT COUNT(*) FROM quarantine") == 0
    cam_a.close()


# --- crashes ---------------------------------------------------------------------------------------


# paho only for now: its gmqtt run failed once in four full runs of this file, cause not found yet (see the
# stop note); test_messages_received_but_not_committed_are_not_acknowledged covers gmqtt's ack rule
def test_broker_kill_9_with_the_collector_offline_loses_no_acked_message(secure: SecureBroker,
                                                                         tmp_path: Path) -> None:
    """The agent's publisher against the installed broker, killed the moment the last PUBACK is in.

    mosquitto sends a loop's PUBACKs before it saves (even with autosave_on_changes), so a raw
    client can lose the message acked last; the publisher holds acked rows and resends them after
    the reconnect, and the collector stores each (device, msg_id) once.
    """
    from edgeprobe.agent.publisher import Publisher
    from edgeprobe.agent.spool import Spool

    db = tmp_path / "fleet.db"
    args = ("--ca-file", secure.ca_file, "--username", "collector", "--password", PASSWORDS["collector"])
    # a session of its own: the broker outlives this test, and a redelivery queued for another test's
    # collector session after that collector stopped must not land here
    session = f"kill9-{tmp_path.name}"
    stop(start_collector(db, secure.address, tmp_path, *args, client_id=session))  # its session and subscription
    spool = Spool(tmp_path / "spool.db")
    sent = [message("event", i) for i in range(500)]
    for m in sent:
        spool.put(schema.topic_for("f", "cam-a", "event"), schema.encode(m))
    pub = Publisher(spool, "127.0.0.1", secure.port, client_id="cam-a", username="cam-a",
                    password=PASSWORDS["cam-a"], ca_file=secure.ca_file)
    pub.start()
    try:
        deadline = time.monotonic() + 60
        while spool.pending() and time.monotonic() < deadline:
            time.sleep(0.001)
        assert spool.pending() == 0, f"{spool.pending()} of 500 never acked"
        secure.stop(kill=True)  # every message acked, the last one a moment ago
        secure.start()
        restarted = time.monotonic()
        proc = start_collector(db, secure.address, tmp_path, *args, client_id=session)
        try:
            assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= 1, timeout=30)
            first = time.monotonic() - restarted
            assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages") >= 500, timeout=60), \
                f"{count(db, 'SELECT COUNT(*) FROM messages')} of 500 acked messages stored"
            assert count(db, "SELECT COUNT(DISTINCT msg_id) FROM messages") == 500
            print(f"\nbroker kill -9, collector offline: 500 acked, {count(db, 'SELECT COUNT(*) FROM messages')} "
                  f"stored; collector started -> first stored {first:.2f} s")
        finally:
            stop(proc)
    finally:
        pub.stop()
        spool.close()


@pytest.mark.usefixtures("collector_client")  # the collector's own reconnect/session: on paho and on gmqtt
def test_collector_is_back_within_seconds_of_the_broker(secure: SecureBroker,
                                                        collector: tuple[Path, object]) -> None:
    """The reconnect backoff is capped (2 s): a long outage does not leave the collector asleep for 30 s."""
    db, _ = collector
    secure.stop(kill=True)
    # 16 s: an uncapped doubling backoff (1, 2, 4, 8, 16 s) sleeps through the broker's return and tries
    # again 15 s after it; capped at 2 s it is back within 2 s plus a connect, so the 12 s bound below
    # separates the two with ~10 s to spare for a loaded machine
    time.sleep(float(os.environ.get("EDGEPROBE_TEST_OUTAGE_S", "16")))
    secure.start()
    back = time.monotonic()
    cam_a = Device(secure, "cam-a")
    m = message("event", 1)
    assert not cam_a.publish(schema.topic_for("f", "cam-a", "event"), schema.encode(m)).is_failure
    assert wait_for(lambda: _stored(db, m) == 1, timeout=30)
    took = time.monotonic() - back
    print(f"\nbroker back -> first stored message: {took:.2f} s")
    assert took < 12, f"the collector took {took:.1f} s to come back"
    cam_a.close()


# --- errors that say what happened -----------------------------------------------------------------


def _collector_says(secure: SecureBroker, tmp_path: Path, name: str, *args: str, port: int | None = None) -> str:
    """Run `edgeprobe collect` until it has said why it cannot subscribe; return that warning."""
    import sys

    from tests.conftest import REPO

    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edgeprobe", "collect", "--db", str(tmp_path / f"{name}.db"),
                                 "--broker", f"127.0.0.1:{port or secure.port}", *args],
                                cwd=REPO, stdout=out, stderr=out)
    try:
        assert wait_for(lambda: "WARNING" in log.read_text(), timeout=30), log.read_text()
    finally:
        stop(proc)
    return next(line for line in log.read_text().splitlines() if "WARNING" in line)


@pytest.mark.usefixtures("collector_client")  # on paho and on gmqtt
def test_four_connection_failures_are_four_sentences(secure: SecureBroker, tmp_path: Path) -> None:
    subprocess.run(["sh", str(Path(__file__).parents[2] / "deploy/mosquitto/make-certs.sh"), str(tmp_path / "other")],
                   check=True, capture_output=True)
    from edgeprobe.cli.localbroker import free_port

    said = {
        "authentication refused": _collector_says(secure, tmp_path, "badpw", "--ca-file", secure.ca_file,
                                                  "--username", "collector", "--password", "guess"),
        # a device's credential: it connects, but may not subscribe to the fleet
        "not authorised": _collector_says(secure, tmp_path, "device", "--ca-file", secure.ca_file,
                                          "--username", "cam-a", "--password", PASSWORDS["cam-a"]),
        "not trusted": _collector_says(secure, tmp_path, "badca", "--ca-file", str(tmp_path / "other/ca.crt"),
                                       "--username", "collector", "--password", PASSWORDS["collector"]),
        "not reachable": _collector_says(secure, tmp_path, "closed", "--ca-file", secure.ca_file,
                                         "--username", "collector", "--password", PASSWORDS["collector"],
                                         port=free_port()),
    }
    for words, line in said.items():
        assert words in line, (words, line)
        assert [w for w in said if w in line] == [words], line  # each names its own cause only
