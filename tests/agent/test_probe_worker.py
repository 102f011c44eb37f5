"""Probes off the hot path: the worker's backpressure, its failures, and where probe time is reported."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeprobe.agent.config import PerturbationConfig, ProbeConfig, load_config
from edgeprobe.agent.probe_worker import ProbeWorker
from edgeprobe.agent.prober import Prober, ProbeResult
from edgeprobe.agent.runner import Agent
from tests.conftest import demo_config


def _gated_prober(gate: threading.Event, started: threading.Event) -> Prober:
    def predict(image: np.ndarray) -> float:
        started.set()
        gate.wait(30)
        return float(image.mean())

    cfg = ProbeConfig(every_n_frames=1, resolution="native",
                      perturbations=[PerturbationConfig(name="gaussian_noise", severities=[1.0])])
    return Prober(cfg, predict, lambda a, b: abs(a - b) / 255, 0.5)


def test_drop_mode_never_waits_counts_what_it_drops_and_delivers_the_rest() -> None:
    gate, started = threading.Event(), threading.Event()
    prober = _gated_prober(gate, started)
    worker = ProbeWorker(prober, size=1, wait=False)
    frame = np.full((8, 8, 3), 100, np.uint8)
    assert worker.offer(frame, 100.0, 0)
    assert started.wait(30)  # the worker holds frame 0 inside the model: the queue's one slot is free
    assert worker.offer(frame, 100.0, 1)
    assert not worker.offer(frame, 100.0, 2) and not worker.offer(frame, 100.0, 3)  # full: dropped, not waited
    assert prober.dropped == 2
    frame[:] = 0  # the caller reuses its buffer: the queued copy must not change
    gate.set()
    worker.drain()
    results = worker.take()
    assert [r.frame_index for r in results if isinstance(r, ProbeResult)] == [0, 1]
    assert all(float(r.view.mean()) == 100.0 for r in results if isinstance(r, ProbeResult))
    worker.close()
    worker.close()  # twice is harmless


def test_a_failing_probe_is_counted_and_the_worker_goes_on() -> None:
    calls = [0]

    def predict(image: np.ndarray) -> float:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("model session lost")
        return 0.0

    cfg = ProbeConfig(every_n_frames=1, resolution="native",
                      perturbations=[PerturbationConfig(name="gaussian_noise", severities=[1.0])])
    worker = ProbeWorker(Prober(cfg, predict, lambda a, b: 0.0, 0.5), size=4, wait=True)
    frame = np.zeros((8, 8, 3), np.uint8)
    worker.offer(frame, 0.0, 0)
    worker.offer(frame, 0.0, 1)
    worker.drain()
    assert worker.errors == 1 and [r.frame_index for r in worker.take() if isinstance(r, ProbeResult)] == [1]
    worker.close()


def _spooled(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        return [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox ORDER BY id")]


def test_probe_time_breaking_points_included_is_reported_once_in_its_own_window(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    spool = tmp_path / "spool.db"
    cfg = demo_config(orientation_model, short_clip, spool, windows={"frames": 10, "warmup": 3},
                      probe={"breaking_point": {"enabled": True, "every_n_windows": 2, "frames": 3}})
    agent = Agent(load_config(write_config(cfg)))
    assert agent.worker.wait  # an unpaced file: each window waits for its own probes
    stats = agent.run(max_frames=40)
    msgs = _spooled(spool)
    latency = {m["body"]["window"]["first_frame"]: m["body"] for m in msgs if m["kind"] == "latency"}
    robust = {m["body"]["window"]["first_frame"]: m["body"] for m in msgs if m["kind"] == "robustness"}
    assert set(robust) == set(latency) and len(robust) == stats.windows == 4
    searches = 0
    for first, body in robust.items():
        searched = bool(body["breaking_points"])
        searches += searched
        probe = latency[first]["stages"]["probe"]
        # one probe sample per probed frame, plus the breaking-point search when it ran in this window
        assert probe["count"] == body["frames_probed"] + searched
        assert abs(probe["mean"] * probe["count"] - body["duty"]["probe_ms"]) <= 0.01 * body["duty"]["probe_ms"] + 0.01
    assert searches == 2  # every second window
    assert sum(b["frames_probed"] for b in robust.values()) == stats.probed_frames == 8


def test_drop_mode_in_the_agent_reports_drops_in_the_duty_cycle(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    spool = tmp_path / "spool.db"
    cfg = demo_config(orientation_model, short_clip, spool, probe={"backpressure": "drop", "queue": 1,
                                                                   "every_n_frames": 1})
    agent = Agent(load_config(write_config(cfg)))
    assert not agent.worker.wait
    stats = agent.run(max_frames=30)
    bodies = [m["body"] for m in _spooled(spool) if m["kind"] == "robustness"]
    dropped = sum(b["duty"]["frames_dropped"] for b in bodies)
    probed = sum(b["frames_probed"] for b in bodies)
    # every frame was due; each one was either probed or dropped (a full probe plan costs several frames' time)
    assert probed == stats.probed_frames and probed + dropped == 30 and probed >= 1


def test_drop_mode_keeps_the_probes_still_running_when_the_last_window_closes(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    # the run's last frame fills its window: the probes in flight then, and a breaking-point search started
    # by that window, finish after it was sent; they go out in one more robustness message, not nowhere
    spool = tmp_path / "spool.db"
    cfg = demo_config(orientation_model, short_clip, spool,
                      probe={"backpressure": "drop", "queue": 2, "every_n_frames": 1,
                             "breaking_point": {"enabled": True, "every_n_windows": 2, "frames": 2}})
    agent = Agent(load_config(write_config(cfg)))
    stats = agent.run(max_frames=40)  # two windows of 20
    messages = _spooled(spool)
    bodies = [m["body"] for m in messages if m["kind"] == "robustness"]
    probed = sum(b["frames_probed"] for b in bodies)
    dropped = sum(b["duty"]["frames_dropped"] for b in bodies)
    assert probed == stats.probed_frames and probed + dropped == 40
    assert sum(len(b["breaking_points"] or []) > 0 for b in bodies) == 1  # the search the second window started
    assert [m["kind"] for m in messages][-1] == "death"
