"""A throwaway mosquitto on 127.0.0.1 for the demo, the tests and benchmarks.

Production brokers are configured from deploy/mosquitto; this one exists so a
laptop or CI machine can run the whole pipeline with real MQTT and no setup.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from edgeprobe.harness.errors import EdgeprobeError

# mosquitto's default max_queued_messages (1000) silently drops QoS 1
# messages for a slow or reconnecting subscriber; ours must never do that.
CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous true
log_dest stderr
log_type error
log_type warning
max_queued_messages 1000000
max_inflight_messages 1000
persistence {persistence}
persistence_location {data_dir}/
autosave_interval 1
"""


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalBroker:
    """Start mosquitto on a free port; stop it on exit. Restartable on the same port."""

    def __init__(self, port: int | None = None, persistence: bool = False, workdir: Path | None = None):
        binary = find_mosquitto()
        if binary is None:
            raise EdgeprobeError(
                "mosquitto is not installed; install Debian's `mosquitto` package (make does it as root)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="edgeprobe-broker-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "mosquitto.conf"
        config = CONFIG.format(port=self.port, persistence=str(persistence).lower(), data_dir=self.workdir)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # As root, mosquitto switches to user `mosquitto`, which cannot write our temp dir:
            # persistence then fails silently ("Permission denied" in its log) and a restart
            # forgets every session. Stay root for this throwaway broker.
            config += "user root\n"
        self.config_path.write_text(config)
        self.log_path = self.workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> LocalBroker:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([self.binary, "-c", str(self.config_path)], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EdgeprobeError(f"mosquitto exited at start; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise EdgeprobeError(f"mosquitto did not listen on {self.address} within {timeout:.0f} s; see {self.log_path}")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
