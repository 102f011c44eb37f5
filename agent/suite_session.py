"""A suite's session: the deployed pipeline and the fixed frame set, loaded once and shared by every check.

Latency, probes (agent/suite_probes.py), golden files (agent/golden.py) and health all read the same frames
through the same pipeline, so every figure can be replayed from (frame index, perturbation, severity, seed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprobe.agent.backends import Backend
from edgeprobe.agent.pipeline import Pipeline, WarmUp, open_pipeline
from edgeprobe.agent.sources import Frame, open_source
from edgeprobe.harness import suite as S
from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.probe_view import probe_view

#: ``progress(phase, done, total)``; total None = unknown
Progress = Callable[[str, int, int | None], None]


@dataclass
class Session:
    """Model, adapter and frame set of one suite, loaded once."""

    loaded: S.LoadedSuite
    pipeline: Pipeline
    adapter: Any
    frames: list[Frame]
    #: what robustness, breaking-point and metamorphic probes perturb: each frame shrunk to cover the model's
    #: input (suite.probe_resolution, harness/probe_view.py); latency, golden and health use the frames as read
    probe_images: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        hw = self.pipeline.input_hw
        self.probe_images = [probe_view(f.image, hw, self.loaded.suite.probe_resolution) for f in self.frames]
        self.pipeline.adapter = self.adapter  # the tensor fallback, where no real adapter is installed

    @property
    def backend(self) -> Backend:
        return self.pipeline.backend

    def predict(self, image: np.ndarray) -> Any:
        return self.pipeline.predict(image)


def open_session(loaded: S.LoadedSuite, progress: Progress | None = None) -> Session:
    """Load the model and read the fixed frame set (ConfigError/ModelError/SourceError on bad input)."""
    suite = loaded.suite
    warmup = WarmUp(suite.latency.warmup)
    pipeline = open_pipeline(suite.model, suite.task, warmup=warmup, task_key=loaded.line_of("task"))
    frames = read_frames(suite.source, progress)
    return Session(loaded, pipeline, pipeline.adapter, frames)


def read_frames(spec: S.SourceSpec, progress: Progress | None = None) -> list[Frame]:
    source = open_source(spec.uri, loop=False, pace=False)
    frames: list[Frame] = []
    try:
        for frame in source:
            if frame.index < spec.skip or (frame.index - spec.skip) % spec.stride:
                continue
            frames.append(frame)
            if progress:
                progress("reading frames", len(frames), spec.frames)
            if len(frames) >= spec.frames:
                break
    finally:
        source.close()
    if not frames:
        raise ConfigError(f"source {spec.uri} gave no frames after skipping {spec.skip}; check source.uri and skip")
    return frames
