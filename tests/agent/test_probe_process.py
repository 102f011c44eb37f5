"""The probe process: the same answers as probing in place, and a dead child never reaches the loop."""

from __future__ import annotations

import gc
import logging
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edgeprobe.agent.config import load_config
from edgeprobe.agent.probe_process import ProbeProcess
from edgeprobe.agent.prober import BreakingResult, ProbeResult
from edgeprobe.agent.runner import Agent
from tests.conftest import demo_config, read_frames


@pytest.fixture()
def agent(tmp_path: Path, orientation_model: Path, short_clip: Path,
          write_config: Callable[..., Path]) -> Agent:
    cfg = demo_config(orientation_model, short_clip, tmp_path / "spool.db",
                      probe={"every_n_frames": 1, "backpressure": "wait", "queue": 2,
                             "relations": [{"name": "rotate180"}],
                             "breaking_point": {"enabled": True, "frames": 3}})
    return Agent(load_config(write_config(cfg)))


def test_the_child_finds_what_probing_in_place_finds(agent: Agent, short_clip: Path) -> None:
    worker = agent.worker
    assert isinstance(worker, ProbeProcess)
    frames = read_frames(short_clip, 4)
    clean = [agent.pipeline.predict(f) for f in frames]
    for i, (frame, prediction) in enumerate(zip(frames, clean, strict=True)):
        assert worker.offer(frame, prediction, i, ("ctx", i))
        frame[:] = 0  # the loop reuses its buffer at once: the child must have its own copy
    worker.drain()
    results = [r for r in worker.take() if isinstance(r, ProbeResult)]
    assert [r.frame_index for r in results] == [0, 1, 2, 3]
    assert [r.context for r in results] == [("ctx", i) for i in range(4)]
    frames = read_frames(short_clip, 4)
    for r, frame, prediction in zip(results, frames, clean, strict=True):
        here = agent.prober.run(frame, prediction, r.frame_index)  # same seeds, same pixels, same model
        assert [(c.perturbation, c.severity, c.seed) for c in r.cells] == \
            [(c.perturbation, c.severity, c.seed) for c in here.cells]
        np.testing.assert_allclose([c.disagreement for c in r.cells], [c.disagreement for c in here.cells],
                                   atol=1e-6)
        assert r.relations == here.relations
        np.testing.assert_array_equal(r.view, here.view)
    # a search is sent as indices; the child bisects the views it kept
    assert worker.search([(r.frame_index, r.view, r.clean) for r in results[-3:]])
    worker.drain()
    (search,) = worker.take()
    assert isinstance(search, BreakingResult)
    assert {p["perturbation"] for p in search.points} == {p.name for p in agent.prober.cfg.perturbations}
    assert all(p["frames"] == 3 for p in search.points)
    worker.close()
    assert worker.proc.returncode == 0
    assert not worker.sender.directory.exists()


def test_a_killed_child_costs_dropped_probes_and_one_warning_never_an_exception(
        agent: Agent, short_clip: Path, caplog: pytest.LogCaptureFixture) -> None:
    worker = agent.worker
    assert isinstance(worker, ProbeProcess)
    frame = read_frames(short_clip, 1)[0]
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait()
    with caplog.at_level(logging.WARNING, logger="edgeprobe.probe"):
        for i in range(3):
            assert not worker.offer(frame, None, i)
        assert not worker.search([])
        worker.drain()  # returns: nothing to wait for
    assert agent.prober.dropped == 3
    assert sum("probe process exited" in r.getMessage() for r in caplog.records) == 1
    assert worker.take() == []
    worker.close()
    worker.close()


def test_an_agent_never_run_leaves_no_child_behind(tmp_path: Path, orientation_model: Path, short_clip: Path,
                                                   write_config: Callable[..., Path]) -> None:
    def build() -> tuple[subprocess.Popen[bytes], Path]:
        agent = Agent(load_config(write_config(demo_config(orientation_model, short_clip, tmp_path / "s.db"))))
        assert isinstance(agent.worker, ProbeProcess)
        return agent.worker.proc, agent.worker.sender.directory

    proc, directory = build()
    gc.collect()
    assert proc.poll() is not None  # the finalizer closed the channel and reaped the child
    assert not directory.exists()


def test_the_agent_run_with_the_probe_process_reports_every_due_frame(agent: Agent) -> None:
    stats = agent.run(max_frames=12)
    assert stats.probed_frames == 12  # wait mode: every frame was due and every one was probed
    assert agent.prober.run_dropped == 0 and agent.worker.errors == 0
    # the child's interpreter and session are memory the agent's own peak does not include: the run says both
    child = agent.worker.peak_rss_mb
    assert child > 20 and stats.probe_peak_rss_mb == child
    assert stats.peak_rss_mb > 20


def test_a_child_that_cannot_load_the_model_says_so_once_and_probing_stops(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from edgeprobe.agent.config import ModelConfig, ProbeConfig, TaskConfig
    from edgeprobe.agent.probe_process import WorkerSpec
    from edgeprobe.agent.prober import Prober

    cfg = ProbeConfig(every_n_frames=1)
    prober = Prober(cfg, lambda image: 0.0, lambda a, b: 0.0, 0.5)
    spec = WorkerSpec(ModelConfig(path=str(tmp_path / "gone.onnx")), TaskConfig(), cfg, None)
    with caplog.at_level(logging.WARNING, logger="edgeprobe.probe"):
        worker = ProbeProcess(prober, spec, size=1, wait=True)  # returns: the child said why and exited
        assert not worker.offer(np.zeros((4, 4, 3), np.uint8), 0.0, 0)
    messages = [r.getMessage() for r in caplog.records]
    assert any("could not start" in m and "gone.onnx" in m for m in messages)
    assert sum("probe process exited" in m for m in messages) == 1
    assert worker.errors == 1 and prober.dropped == 1
    worker.close()
