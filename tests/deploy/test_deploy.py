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
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from edgeprobe.agent.sdnotify import Notifier

from tests.conftest import REPO, demo_config, run_cli

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


def test_compose_file() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"mosquitto", "collector"}
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


def _drain(sock: socket.socket) -> list[str]:
    out = []
    sock.settimeout(0.2)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except TimeoutError:
        return out


def test_notifier_speaks_the_sd_notify_protocol(notify_socket: socket.socket) -> None:
    n = Notifier({"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "2000000"})
    assert n.ready("measuring cam") and notify_socket.recv(4096) == b"READY=1\nSTATUS=measuring cam"
    assert n.interval == pytest.approx(1.0)
    assert n.tick() and notify_socket.recv(4096) == b"WATCHDOG=1"
    assert not n.tick()  # rate-limited to half the watchdog period
    assert n.stopping() and notify_socket.recv(4096) == b"STOPPING=1"


def test_notifier_is_inert_outside_systemd() -> None:
    n = Notifier({})
    assert not n.enabled and not n.ready() and not n.tick()
    # a watchdog meant for another process (WATCHDOG_PID) is not ours to feed
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).interval is None
    # a vanished socket never breaks the measuring loop
    assert not Notifier({"NOTIFY_SOCKET": "/nonexistent/socket"}).ready()


def test_agent_notifies_systemd_through_the_cli(tmp_path: Path, notify_socket: socket.socket,
                                                orientation_model: Path, short_clip: Path,
                                                write_config: Callable[..., Path]) -> None:
    cfg = write_config(demo_config(orientation_model, short_clip, tmp_path / "s.db"))
    # A long period: one WATCHDOG=1 (the first frame), so the test socket's small queue never fills.
    env = {"NOTIFY_SOCKET": notify_socket.getsockname(), "WATCHDOG_USEC": "60000000",
           "WATCHDOG_PID": ""}  # empty: any pid (the CLI runs in a child process here)
    proc = run_cli("run", "-c", str(cfg), "--no-broker", "--max-frames", "10", env=env)
    assert proc.returncode == 0, proc.stderr
    got = _drain(notify_socket)
    assert got[0].startswith("READY=1"), got
    assert got.count("WATCHDOG=1") == 1 and got[-1] == "STOPPING=1", got


def test_unit_and_readme_agree_on_paths() -> None:
    readme = (REPO / "README.md").read_text()
    assert "deploy/systemd/edgeprobe-agent.service" in readme
    assert os.path.basename(str(UNIT)) in readme
