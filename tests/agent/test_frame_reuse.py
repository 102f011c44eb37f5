"""A video decoded into one reused buffer: the same frames, and nothing downstream keeps a frame past its turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeprobe.agent.config import HealthMonitorConfig, MonitorConfig, build_config
from edgeprobe.agent.monitor import Monitor
from edgeprobe.agent.runner import Agent
from edgeprobe.agent.sources import VideoFileSource, open_source
from tests.conftest import demo_config


def test_a_video_decodes_into_one_buffer_with_the_same_pixels(short_clip: Path) -> None:
    reused = VideoFileSource(str(short_clip), reuse_buffer=True)
    fresh = VideoFileSource(str(short_clip))
    buffers: set[int] = set()
    frames = 0
    for a, b in zip(reused, fresh, strict=True):
        assert np.array_equal(a.image, b.image)  # compared before the next frame overwrites it
        buffers.add(id(a.image))
        frames += 1
    assert frames == 60 and len(buffers) == 1


def test_by_default_every_frame_is_its_own_array(short_clip: Path) -> None:
    """Collectors (bench, suites) keep frames in lists: without reuse_buffer, each stays as decoded."""
    source = open_source(str(short_clip))
    kept = [f.image for _, f in zip(range(5), source, strict=False)]
    source.close()
    assert len({id(k) for k in kept}) == 5 and not np.array_equal(kept[0], kept[4])


def _monitor(agent: Agent) -> Monitor:
    cfg = MonitorConfig(health=HealthMonitorConfig(every_n_frames=3, learn_frames=0))
    return Monitor(cfg, "reuse", agent.adapter, agent.backend.sha256)


def _summary(m: Monitor) -> dict[str, Any]:
    return {**m.health.summary(), "flips": list(m.run_flips), "sampled": m.health.sampled}


def test_the_monitor_gives_the_same_health_when_the_frame_buffer_is_overwritten(
        tmp_path: Path, orientation_model: Path, short_clip: Path) -> None:
    """Each sampled frame's motion is against its real predecessor: a monitor that kept a reference to the
    previous frame would compare the buffer with itself (motion 0, every sample 'frozen') once it is reused."""
    agent = Agent(build_config(demo_config(orientation_model, short_clip, tmp_path / "s.db"), {}, None))
    try:
        with_copies, with_one_buffer = _monitor(agent), _monitor(agent)
        source = VideoFileSource(str(short_clip))
        buffer: np.ndarray | None = None
        for i, frame in enumerate(source):
            answer = agent.pipeline.predict(frame.image)
            with_copies.observe(frame.image.copy(), answer, i)
            if buffer is None:
                buffer = np.empty_like(frame.image)
            np.copyto(buffer, frame.image)  # what a reused decode buffer does to the frame before
            with_one_buffer.observe(buffer, answer, i)
        source.close()
    finally:
        agent.source.close()
        agent.spool.close()
    got, want = _summary(with_one_buffer), _summary(with_copies)
    assert got == want
    assert want["sampled"] == 20 and want["frozen_frames"] == 0  # a real, moving street scene
