"""deploy/: the systemd unit (verified by systemd itself where installed), the container files and
compose file (parsed and linted: no engine builds here), and the sd_notify watchdog over a real socket."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from edgeprobe.agent.sdnotify import Heartbeat, Notifier
from tests.conftest import REPO, assert_clean_error, demo_config, run_cli

DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "systemd" / "edgeprobe-agent.service"
DOCKERFILES = {
    "agent.Dockerfile": "python:3.11-slim",
    "jetson.Dockerfile": "nvcr.io/nvidia/l4t-jetpack",
    "collector.Dockerfile": "python:3.11-slim",
}
SECRET = re.compile(r"(password|passwd|secret|token|api_?key)\s*[=:]\s*['\"]?[A-Za-z0-9+/]{6,}", re.IGNORECASE)


def _unit() -> configparser.ConfigParser:
    # strict=False: systemd allows repeated keys (Environment=), the last one read is enough here
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_unit_is_hardened() -> None:
    svc = _unit()["Service"]
    assert svc["DynamicUser"] == "yes" and svc["NoNewPrivileges"] == "yes"
    assert svc["ProtectSystem"] == "strict" and svc["ProtectHome"] == "yes"
    assert svc["StateDirectory"] == "edgeprobe"
    assert "--spool /var/lib/edgeprobe/spool.db" in svc["ExecStart"]  # the spool inside the StateDirectory
    assert svc["Restart"] == "on-failure"
    assert svc["Type"] == "notify" and int(svc["WatchdogSec"]) > 0
    assert svc["CapabilityBoundingSet"] == ""
    assert "LoadCredential" in svc and "${CREDENTIALS_DIRECTORY}/agent.yaml" in svc["ExecStart"]


def test_unit_survives_outages_and_yields_to_production() -> None:
    svc = _unit()["Service"]
    assert svc["RestartPreventExitStatus"] == "2"  # a config error is not restarted into a loop
    assert int(svc["Nice"]) > 0 and 0 < int(svc["CPUWeight"]) < 100  # below the production app's default 100
    assert svc["MemoryMax"].endswith(("M", "G")) and svc["MemoryHigh"].endswith(("M", "G"))
    assert int(svc["TimeoutStartSec"]) > 0  # extended by EXTEND_TIMEOUT_USEC while the model loads
    text = UNIT.read_text()
    for reason in ("EXTEND_TIMEOUT_USEC", "camera outage is not a hang", "production"):
        assert reason in text, reason  # each setting says why in a comment


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze missing (apt-get install systemd, ~10 MB; make test does it as root)")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this environment's edgeprobe.
    exe = Path(sys.executable).parent / "edgeprobe"
    assert exe.exists()
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/edgeprobe/venv/bin/edgeprobe", str(exe)))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    sec = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True,
                         text=True, timeout=60)
    if sec.returncode != 0 and "offline" in sec.stderr:
        pytest.skip(f"this systemd has no offline security analysis: {sec.stderr.strip()[:100]}")
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", sec.stdout)
    assert score, sec.stdout[-500:]
    assert float(score.group(1)) < 3.0  # systemd calls < 2 "OK", 10 "UNSAFE"


def _stages(text: str) -> list[list[str]]:
    """Instructions per build stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    stages: list[list[str]] = []
    for line in joined.splitlines():
        if not line.strip():
            continue
        if line.split()[0].upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(line.strip())
        else:
            assert line.split()[0].upper() == "ARG", f"{line!r} before FROM"
    return stages


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_lint(name: str) -> None:
    text = (DEPLOY / "docker" / name).read_text()
    stages = _stages(text)
    assert stages, name
    for stage in stages:
        base = stage[0].split()[1]
        assert base.startswith(DOCKERFILES[name]) or base.startswith("nvcr.io/nvidia/l4t-jetpack:"), base
        assert not base.endswith(":latest")
    final = stages[-1]
    users = [ln.split()[1] for ln in final if ln.split()[0].upper() == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{name}: final stage must drop root"
    entry = [ln for ln in final if ln.split()[0].upper() == "ENTRYPOINT"]
    assert entry and entry[0].split(None, 1)[1].startswith("["), "exec-form ENTRYPOINT, so signals reach the agent"
    assert not SECRET.search(text), SECRET.search(text)
    for ln in final:  # no ADD from URLs, no secrets in ENV
        assert not ln.upper().startswith("ADD "), ln
        if ln.upper().startswith("ENV "):
            assert not re.search(r"PASSWORD|TOKEN|SECRET", ln, re.IGNORECASE), ln
    # every COPY source exists in the repository
    for stage in stages:
        for ln in stage:
            parts = ln.split()
            if parts[0].upper() == "COPY" and not any(p.startswith("--from") for p in parts):
                for src in parts[1:-1]:
                    assert (REPO / src).exists(), f"{name}: COPY {src} does not exist"


@pytest.mark.parametrize("name", ["agent.Dockerfile", "jetson.Dockerfile"])
def test_agent_images_check_the_heartbeat(name: str) -> None:
    final = _stages((DEPLOY / "docker" / name).read_text())[-1]
    health = [ln for ln in final if ln.upper().startswith("HEALTHCHECK")]
    assert health and '["edgeprobe", "heartbeat"' in health[0], health
    env = " ".join(ln for ln in final if ln.upper().startswith("ENV "))
    assert "EDGEPROBE_HEARTBEAT_FILE=" in env and "EDGEPROBE_ASSETS=/opt/edgeprobe/models" in env


def test_jetson_image_keeps_the_boards_opencv() -> None:
    text = (DEPLOY / "docker" / "jetson.Dockerfile").read_text()
    assert "board-venv.sh /opt/edgeprobe/venv /src /usr/bin/python3" in text
    assert "opencv-python" not in " ".join(_stages(text)[-1])  # never PyPI's GStreamer-less wheel
    assert "-v /opt/edgeprobe/models:/opt/edgeprobe/models:ro" in text  # the run example mounts the models


def test_compose_file() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"mosquitto", "collector", "agent"}
    agent = services["agent"]
    assert agent["profiles"] == ["agent"]  # a fleet server's `docker compose up` starts no agent
    mounts = {v.split(":")[1]: v for v in agent["volumes"]}
    assert mounts["/etc/edgeprobe/agent.yaml"].endswith(":ro") and mounts["/opt/edgeprobe/models"].endswith(":ro")
    assert "/var/lib/edgeprobe" in mounts and (REPO / agent["build"]["dockerfile"]).is_file()
    assert services["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    mounts = [v.split(":")[0] for v in services["mosquitto"]["volumes"]]
    assert (DEPLOY / mounts[0]).resolve() == (DEPLOY / "mosquitto" / "mosquitto.conf").resolve()
    assert (DEPLOY / mounts[0]).is_file()
    assert (REPO / services["collector"]["build"]["dockerfile"]).is_file()
    env = services["collector"]["environment"]
    assert env["EDGEPROBE_MQTT_PASSWORD"].startswith("${"), "the password must come from the environment"
    assert not SECRET.search((DEPLOY / "compose.yaml").read_text())
    # the collector dials the TLS listener that deploy/mosquitto/mosquitto.conf opens
    port = re.search(r"^listener (\d+)", (DEPLOY / "mosquitto" / "mosquitto.conf").read_text(), re.MULTILINE)
    assert port and f"mosquitto:{port.group(1)}" in services["collector"]["command"]


# --- sd_notify ---------------------------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(10)
    return sock


def _drain(sock: socket.socket, quiet_s: float = 0.2) -> list[str]:
    """Everything queued, until nothing comes for quiet_s."""
    out = []
    sock.settimeout(quiet_s)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except TimeoutError:
        return out


def test_notifier_speaks_the_sd_notify_protocol(notify_socket: socket.socket) -> None:
    n = Notifier({"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "2000000"})
    assert n.ready("measuring cam") and notify_socket.recv(4096) == b"READY=1\nSTATUS=measuring cam"
    assert n.interval == pytest.approx(1.0) and n.timeout == pytest.approx(2.0)
    assert n.stopping() and notify_socket.recv(4096) == b"STOPPING=1"


def test_notifier_is_inert_outside_systemd() -> None:
    n = Notifier({})
    assert not n.enabled and not n.ready() and n.interval is None
    # a watchdog meant for another process (WATCHDOG_PID) is not ours to feed
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).interval is None
    # a vanished socket never breaks the measuring loop
    assert not Notifier({"NOTIFY_SOCKET": "/nonexistent/socket"}).ready()


def _states(got: list[str]) -> list[dict[str, str]]:
    return [dict(line.split("=", 1) for line in g.splitlines()) for g in got]


def test_heartbeat_pings_while_the_loop_beats_and_stops_when_it_hangs(notify_socket: socket.socket,
                                                                      tmp_path: Path) -> None:
    n = Notifier({"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "200000"})
    beat_file = tmp_path / "hb"
    hb = Heartbeat(n, file=beat_file)
    assert hb.interval == pytest.approx(0.1) and hb.stall_s == pytest.approx(0.2)
    with hb:
        with hb.loading("building the engine"):
            loading = _states(_wait_for_pings(notify_socket, 3))
        assert all(s["WATCHDOG"] == "1" and int(s["EXTEND_TIMEOUT_USEC"]) > 200_000 for s in loading), loading
        assert loading[0]["STATUS"].startswith("building the engine")
        for i in range(1, 4):
            hb.frame(i * 10)
            _wait_for_pings(notify_socket, 1)
        hb.idle()  # waiting for a camera is alive too
        waiting = _states(_wait_for_pings(notify_socket, 1))
        assert waiting[-1]["STATUS"] == "waiting for the camera (30 frames measured)"
        assert "EXTEND_TIMEOUT_USEC" not in waiting[-1]
        # no more beats: a hung loop; within a watchdog timeout the pings stop, and stay stopped
        threading.Event().wait(0.4)
        _drain(notify_socket)
        assert _drain(notify_socket, 0.5) == [] and not hb.alive()
        pings = hb.pings
    assert beat_file.is_file() and pings >= 7


def test_heartbeat_gives_up_extending_a_load_that_never_ends(notify_socket: socket.socket) -> None:
    n = Notifier({"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "200000"})
    with Heartbeat(n, max_load_s=0.3) as hb, hb.loading("building the engine"):
        _wait_for_pings(notify_socket, 1)
        threading.Event().wait(0.5)
        _drain(notify_socket)
        assert _drain(notify_socket, 0.4) == []  # systemd's start timeout can now do its job


def _wait_for_pings(sock: socket.socket, n: int, limit_s: float = 30.0) -> list[str]:
    """The next n datagrams (waits as long as a loaded machine needs, up to limit_s)."""
    sock.settimeout(limit_s)
    return [sock.recv(4096).decode() for _ in range(n)]


def test_heartbeat_cli_reads_the_files_age(tmp_path: Path) -> None:
    beat = tmp_path / "hb"
    assert_clean_error(run_cli("heartbeat"), r"no heartbeat file given; pass --file", code=2)
    assert_clean_error(run_cli("heartbeat", "--file", str(beat)), r"no heartbeat at .*hb: the agent has not",
                       code=1)
    beat.touch()
    os.utime(beat, (beat.stat().st_atime, beat.stat().st_mtime - 100))
    assert_clean_error(run_cli("heartbeat", "--file", str(beat), "--max-age", "30"),
                       r"is 10\d s old \(limit 30 s\): its loop is hung", code=1)
    beat.touch()
    ok = run_cli("heartbeat", env={"EDGEPROBE_HEARTBEAT_FILE": str(beat)})
    assert ok.returncode == 0 and ok.stdout.startswith("alive: heartbeat"), ok.stderr


def test_agent_notifies_systemd_through_the_cli(tmp_path: Path, notify_socket: socket.socket,
                                                orientation_model: Path, short_clip: Path,
                                                write_config: Callable[..., Path]) -> None:
    cfg = write_config(demo_config(orientation_model, short_clip, tmp_path / "s.db"))
    # A long period: the test socket's small queue never fills.
    env = {"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "60000000",
           "WATCHDOG_PID": ""}  # empty: any pid (the CLI runs in a child process here)
    proc = run_cli("run", "-c", str(cfg), "--no-broker", "--max-frames", "10", env=env)
    assert proc.returncode == 0, proc.stderr
    got = _states(_drain(notify_socket))
    # the model loads under an extended start timeout, READY=1 follows, STOPPING=1 ends the run
    ready = next(i for i, s in enumerate(got) if "READY" in s)
    assert "EXTEND_TIMEOUT_USEC" in got[0] and got[0]["STATUS"].startswith("loading the model"), got
    assert got[-1] == {"STOPPING": "1"} and ready < len(got) - 1, got


def test_unit_and_readme_agree_on_paths() -> None:
    readme = (REPO / "README.md").read_text()
    assert "deploy/systemd/edgeprobe-agent.service" in readme
    assert os.path.basename(str(UNIT)) in readme


def test_board_venv_refuses_a_python_without_the_boards_opencv(tmp_path: Path) -> None:
    # a python that sees no site packages stands in for a board where python3-opencv is not installed
    bare = tmp_path / "python-bare"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(0o755)
    proc = subprocess.run(["sh", str(DEPLOY / "board-venv.sh"), str(tmp_path / "venv"), str(REPO), str(bare)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "install the board's OpenCV first" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "venv").exists()
