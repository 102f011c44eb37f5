"""A real mosquitto configured from deploy/mosquitto (TLS, passwords, ACL) for tests.

The production files are rendered with a temporary directory and a free port,
so the tests exercise exactly what an install uses.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from edgeprobe.localbroker import LocalBroker

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
PASSWORDS = {"cam-a": "pw-a", "cam-b": "pw-b", "collector": "pw-collector"}


def make_secure_broker(workdir: Path, persistence: bool = False) -> LocalBroker:
    etc = workdir / "etc"
    certs = etc / "certs"
    subprocess.run(["sh", str(DEPLOY / "make-certs.sh"), str(certs)], check=True, capture_output=True)
    for user, password in PASSWORDS.items():
        subprocess.run(["sh", str(DEPLOY / "add-device.sh"), str(etc / "passwd"), user, password], check=True,
                       capture_output=True)
    (etc / "acl").write_text((DEPLOY / "acl").read_text())
    broker = LocalBroker(persistence=persistence, workdir=workdir)
    conf = (DEPLOY / "mosquitto.conf").read_text()
    conf = conf.replace("/etc/mosquitto/edgeprobe", str(etc)).replace("/var/lib/mosquitto/", f"{workdir}/")
    conf = conf.replace("listener 8883", f"listener {broker.port} 127.0.0.1")
    conf = conf.replace("persistence true", f"persistence {str(persistence).lower()}")
    # tests run as root: keep mosquitto from switching to a user that cannot read the temp files
    conf += "\nuser root\nlog_dest stderr\nlog_type error\nlog_type warning\n"
    broker.config_path.write_text(conf)
    return broker


def ca_file(workdir: Path) -> str:
    return str(workdir / "etc" / "certs" / "ca.crt")
