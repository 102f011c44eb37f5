"""Bad input to `edgeprobe collect`: one sentence, exit 2, no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.conftest import run_cli


def test_missing_ca_file(tmp_path: Path) -> None:
    r = run_cli("collect", "--db", str(tmp_path / "f.db"), "--ca-file", str(tmp_path / "nope.crt"), timeout=60)
    assert r.returncode == 2 and "--ca-file" in r.stderr and "Traceback" not in r.stderr


def test_metrics_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run_cli("collect", "--db", str(tmp_path / "f.db"), "--broker", "127.0.0.1:1",
                    "--metrics-port", str(port), timeout=60)
    assert r.returncode == 2 and "--metrics-port" in r.stderr and "Traceback" not in r.stderr
