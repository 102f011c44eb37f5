"""A real mosquitto installed from deploy/mosquitto exactly as the README says, under a temporary root.

Debian's stock /etc/mosquitto/mosquitto.conf is copied into the root with its
paths moved there (that is all that changes), install.sh puts the edgeprobe
drop-in next to it, and mosquitto starts as root and drops to the `mosquitto`
user, as Debian's service does: no `user root`. Devices and the collector are
registered with add-device.sh / add-collector.sh against the running broker.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from edgeprobe.cli.localbroker import LocalBroker, free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
STOCK = Path("/etc/mosquitto/mosquitto.conf")
PASSWORDS = {"cam-a": "pw-a", "cam-b": "pw-b", "collector": "pw-collector"}
FLEETS = {"cam-a": "f", "cam-b": "f"}
#: Debian's mosquitto package and its systemd unit make these, owned by the broker's user
DEBIAN_DIRS = ("var/lib/mosquitto", "var/log/mosquitto", "run/mosquitto")


def skip_reason() -> str | None:
    """Why the installed broker cannot be tested here (None: it can)."""
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        return "mosquitto is not installed"
    if shutil.which("openssl") is None or shutil.which("mosquitto_ctrl") is None:
        return "openssl or mosquitto_ctrl is missing"
    if os.geteuid() != 0:
        return "installing the broker config sets root:mosquitto ownership, which needs root"
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        return "there is no mosquitto user (Debian's mosquitto package makes it)"
    if not STOCK.is_file():
        return f"{STOCK} (Debian's stock config, which the drop-in is installed next to) is missing"
    return None


def run(*cmd: str | Path) -> str:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"{cmd}: {r.stdout}{r.stderr}"
    return r.stdout


class SecureBroker(LocalBroker):
    """The installed broker; ``root`` stands for / and ``ca`` for the admin machine's CA folder."""

    def __init__(self, root: Path):
        super().__init__(port=free_port(), workdir=root / "harness")
        self.root, self.ca = root, root / "ca"
        self.config_path = root / "etc/mosquitto/mosquitto.conf"

    @property
    def ca_file(self) -> str:
        return str(self.ca / "ca.crt")

    @property
    def installed_log(self) -> Path:
        return self.root / "var/log/mosquitto/mosquitto.log"

    def register(self) -> None:
        run("sh", DEPLOY / "add-collector.sh", "--root", self.root, "collector", PASSWORDS["collector"])
        for device, fleet in FLEETS.items():
            run("sh", DEPLOY / "add-device.sh", "--root", self.root, device, fleet, PASSWORDS[device])


def make_secure_broker() -> SecureBroker:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="edgeprobe-root-"))
    root.chmod(0o755)  # the mosquitto user must be able to walk into it, as into /
    user = pwd.getpwnam("mosquitto")
    for d in DEBIAN_DIRS:
        (root / d).mkdir(parents=True)
        os.chown(root / d, user.pw_uid, user.pw_gid)
    (root / "etc/mosquitto/conf.d").mkdir(parents=True)
    stock = STOCK.read_text()
    for prefix in ("/etc/mosquitto", "/var/lib/mosquitto", "/var/log/mosquitto", "/run/mosquitto"):
        stock = stock.replace(prefix, f"{root}{prefix}")
    (root / "etc/mosquitto/mosquitto.conf").write_text(stock)
    broker = SecureBroker(root)
    run("sh", DEPLOY / "make-certs.sh", broker.ca)  # the admin machine's CA folder, never copied whole
    run("sh", DEPLOY / "install.sh", "--root", root, "--port", str(broker.port), broker.ca)
    return broker


def remove(broker: SecureBroker) -> None:
    broker.stop()
    shutil.rmtree(broker.root, ignore_errors=True)
