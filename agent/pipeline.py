"""The deployed path, written once: image -> preprocess -> inference -> decoded prediction.

Everything that runs the model the way it is deployed (the agent's loop, the
probe worker, ``bench``, acceptance suites, baseline recording, golden files)
goes through one :class:`Pipeline`, so what is measured, probed and signed off
is the same code. :func:`open_pipeline` loads the backend, resolves the labels
and the input size and builds the task adapter once.

Definitions that live here and nowhere else:

- **stages** (:data:`STAGES`): ``decode`` (the source's work before a frame
  arrives, measured by the source), ``preprocess``, ``inference``,
  ``postprocess`` (the adapter's decode) and ``e2e``.
- **e2e** runs from the moment the frame became available to the deployed path
  to the decoded result: the frame's capture time for a live source (so
  queueing behind a busy model shows), or the start of preprocess when frames
  were read beforehand (bench, suites). Decoding is not inside e2e: a camera
  grabber decodes too, before anything downstream sees the frame.
- **warm-up** (:class:`WarmUp`): the first ``runs`` timed runs of a pipeline,
  or with ``until_stable`` the runs until two consecutive blocks of
  :data:`STABLE_BLOCK` runs have medians within :data:`STABLE_REL`. Warm-up
  runs are flagged on their :class:`Timed` and never enter a percentile.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from edgeprobe.agent.backends import Backend, load_backend, open_adapter
from edgeprobe.agent.config import ModelConfig
from edgeprobe.harness.errors import ConfigError, ModelError

#: the deployed path's stages, in order; e2e spans preprocess..postprocess (plus queueing on a live source)
STAGES: tuple[str, ...] = ("decode", "preprocess", "inference", "postprocess", "e2e")

#: warm-up is "stable" when two consecutive blocks of this many runs have medians within STABLE_REL
STABLE_BLOCK = 10
STABLE_REL = 0.05


class WarmUp:
    """Counts a pipeline's warm-up runs: a fixed number, or until two blocks of runs agree."""

    def __init__(self, runs: int = 0, until_stable: bool = False, max_runs: int = 1000):
        self.runs = runs
        self.until_stable = until_stable
        self.max_runs = max(runs, max_runs) if until_stable else runs
        self.times: list[int] = []
        self.stable = False
        self.done = runs == 0 and not until_stable

    def add(self, ns: int) -> bool:
        """Record one run; True if it was a warm-up run (so it must not be recorded)."""
        if self.done:
            return False
        self.times.append(int(ns))
        n = len(self.times)
        if not self.until_stable:
            self.done = n >= self.runs
        elif n >= max(self.runs, 2 * STABLE_BLOCK) and n % STABLE_BLOCK == 0:
            a = float(np.median(self.times[-2 * STABLE_BLOCK:-STABLE_BLOCK]))
            b = float(np.median(self.times[-STABLE_BLOCK:]))
            self.stable = self.done = abs(b - a) <= STABLE_REL * a
        self.done = self.done or n >= self.max_runs
        return True

    @property
    def count(self) -> int:
        return len(self.times)

    @property
    def total_ns(self) -> int:
        return int(sum(self.times))


@dataclass(slots=True)
class Timed:
    """One run of the deployed path: the prediction, the raw outputs and the stage timings (ns)."""

    prediction: Any
    outputs: Sequence[np.ndarray]
    #: ``preprocess``, ``inference``, ``e2e``, ``postprocess`` when a task decodes, ``decode`` when given
    stages: dict[str, int]
    #: a warm-up run (pipeline's WarmUp): its timings must not enter any percentile
    warmup: bool = False


class Pipeline:
    """One model session and its task adapter; the only code that runs the deployed path."""

    def __init__(self, backend: Backend, adapter: Any, warmup: WarmUp | None = None,
                 model_cfg: ModelConfig | None = None):
        self.backend = backend
        #: the configuration the backend was loaded from (a second session is loaded from it)
        self.model_cfg = model_cfg
        #: None when the model's outputs fit no task (bench on an unknown model: latency only)
        self.adapter = adapter
        self.warm = warmup or WarmUp(0)
        #: the first timed inference (cold start), ns; None before the first run
        self.first_inference_ns: int | None = None

    @property
    def input_hw(self) -> tuple[int, int]:
        """The model's input (height, width), as the preprocessor resizes to it."""
        return self.backend.preprocessor.height, self.backend.preprocessor.width

    def outputs(self, image: np.ndarray) -> Sequence[np.ndarray]:
        """Raw output tensors for one image (golden files compare these)."""
        return self.backend.infer(self.backend.preprocess(image))

    def predict(self, image: np.ndarray) -> Any:
        """The deployed path untimed: what probes, relations and breaking-point searches compare."""
        outputs = self.backend.infer(self.backend.preprocess(image))
        return self.adapter.decode(outputs) if self.adapter is not None else outputs

    def timed(self, image: np.ndarray, available_ns: int | None = None, decode_ns: int = 0) -> Timed:
        """Run the deployed path once and time each stage (see the module docstring for what e2e means).

        ``available_ns`` is when the frame became available (``perf_counter_ns``: a live frame's capture time);
        None means now, i.e. e2e starts at preprocess. ``decode_ns`` > 0 is reported as the ``decode`` stage.
        """
        clock = time.perf_counter_ns
        t0 = clock()
        tensor = self.backend.preprocess(image)
        t1 = clock()
        outputs = self.backend.infer(tensor)
        t2 = clock()
        stages = {"preprocess": t1 - t0, "inference": t2 - t1}
        prediction: Any = outputs
        if self.adapter is not None:
            prediction = self.adapter.decode(outputs)
            t3 = clock()
            stages["postprocess"] = t3 - t2
        else:
            t3 = t2
        stages["e2e"] = t3 - (t0 if available_ns is None else available_ns)
        if decode_ns > 0:
            stages["decode"] = decode_ns
        if self.first_inference_ns is None:
            self.first_inference_ns = t2 - t1
        warm = self.warm  # once warm, a frame asks no more of it
        return Timed(prediction, outputs, stages, not warm.done and warm.add(stages["e2e"]))

    def session(self, threads: int = 1) -> Pipeline:
        """A second pipeline on the same model with its own runtime session (the probe worker's), ``threads``
        intra-op threads: running it never contends for the deployed session's locks or thread pool."""
        if self.model_cfg is None:
            raise ModelError("this pipeline was built without its model configuration; open it with open_pipeline")
        cfg = msgspec.structs.replace(self.model_cfg, threads=threads)
        return Pipeline(load_backend(cfg), self.adapter, model_cfg=cfg)


def open_pipeline(model_cfg: Any, task_cfg: Any | None, *, warmup: WarmUp | None = None,
                  optional_task: bool = False, task_key: str = "task") -> Pipeline:
    """Load the model and build its task adapter once.

    ``model_cfg`` is the ``model:`` section (agent config or suite: same keys); ``task_cfg`` the ``task:`` section,
    or None for latency only. With ``optional_task`` a model whose outputs do not fit the task runs without an
    adapter instead of failing (bench's ``--task auto``); ``task_key`` names the task section in error sentences.
    Raises ConfigError/ModelError with one sentence.
    """
    if not isinstance(model_cfg, ModelConfig):
        model_cfg = msgspec.convert(msgspec.to_builtins(model_cfg), ModelConfig)
    backend = load_backend(model_cfg)
    if task_cfg is None:
        return Pipeline(backend, None, warmup, model_cfg)
    try:
        adapter = open_adapter(backend, task_cfg)
    except (ConfigError, ModelError) as exc:
        if not optional_task:
            if isinstance(exc, ConfigError) and task_key != "task":
                raise ConfigError(f"{task_key}: {exc}") from None
            raise
        adapter = None
    return Pipeline(backend, adapter, warmup, model_cfg)
