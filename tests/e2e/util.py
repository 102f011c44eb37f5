"""Small helpers for tests that drive real mosquitto, collector and agent processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edgeprobe.harness import schema
from tests.conftest import REPO


def wait_for(cond: Callable[[], bool], timeout: float = 20.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def count(db: Path | str, sql: str) -> int:
    """One number from the collector's database (a SQLite file or a PostgreSQL URL); -1 while it cannot say."""
    if str(db).startswith("postgresql://"):
        import psycopg

        try:
            with psycopg.connect(str(db), connect_timeout=10) as pg:
                row = pg.execute(sql).fetchone()
        except psycopg.Error:
            return -1
        return -1 if row is None or row[0] is None else int(row[0])
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:
        return -1


def message(kind: str, seq: int, device: str = "cam-a", fleet: str = "f", body: dict | None = None) -> dict:
    bodies = {"event": {"type": "test"}, "birth": {"model": {}, "source": {}, "host": {}, "capabilities": {}},
              "death": {"reason": "test"}}
    return schema.make_envelope(
        model_sha256="a" * 64, config_sha256="b" * 64,
        kind=kind, device_id=device, fleet=fleet, session_id="s1", seq=seq,
                                body=body if body is not None else bodies[kind])


def start_collector(db: Path | str, address: str, workdir: Path, *extra: str, client_id: str = "test-collector",
                    ) -> subprocess.Popen[bytes]:
    """`edgeprobe collect` as its own process, returned once it has subscribed."""
    ready = workdir / f"{client_id}.ready"
    ready.unlink(missing_ok=True)
    log = open(workdir / f"{client_id}.log", "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeprobe", "collect", "--db", str(db), "--broker", address,
         "--client-id", client_id, "--ready-file", str(ready), *extra],
        cwd=REPO, stdout=log, stderr=log,
    )
    log.close()
    ok = wait_for(lambda: ready.exists() or proc.poll() is not None, timeout=30)
    if not (ok and proc.poll() is None):
        stop(proc)  # one that never subscribed is reaped here: the caller never got it to stop
        raise AssertionError((workdir / f"{client_id}.log").read_text())
    return proc


@contextmanager
def collectors() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``start_collector`` for a test that runs several: every one started is stopped when the block ends,
    whether the test passed, failed in the middle, or a later collector failed to start."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: Any, **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = start_collector(*args, **kwargs)
        procs.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in procs:
            stop(proc)


def stop(proc: subprocess.Popen[bytes], sig: int = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def client(port: int, username: str | None = None, password: str | None = None, ca: str | None = None,
           client_id: str = "") -> tuple[mqtt.Client, dict]:
    """A paho client that records its CONNACK reason instead of retrying forever."""
    state: dict = {"connack": None, "messages": []}
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    if username:
        c.username_pw_set(username, password)
    if ca:
        c.tls_set(ca_certs=ca)
    c.on_connect = lambda cl, u, f, reason, p: state.update(connack=reason)
    c.on_message = lambda cl, u, msg: state["messages"].append((msg.topic, bytes(msg.payload)))
    return c, state
