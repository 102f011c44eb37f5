"""`edgeprobe bench`: measure one model on one source the way LoadGen, trtexec and benchmark_model do.

Three modes, after LoadGen's scenarios:

- ``single_stream``: the next frame is issued as soon as the previous result
  is out; e2e runs from issue (before preprocess) to the decoded result.
- ``paced``: frames arrive at the camera's fps whether or not the model is
  ready. A camera keeps only the newest frame, so a frame overtaken by the next
  one while the model was busy is dropped (counted), and a result later than
  one frame period after capture is a deadline miss (counted). e2e runs from
  the frame's capture time, so queueing shows; ``capture_wait`` is the time
  spent blocked waiting for the next frame.
- ``throughput``: ``concurrency`` threads each run pre-built batches of
  ``batch`` frames back to back (ONNX Runtime releases the GIL in ``run``);
  inferences/s and samples/s are reported, with per-batch latency.

Single-stream and paced runs go through the deployed path of
agent/pipeline.py, which also defines the stages, e2e and warm-up. Cold start
is reported apart (session creation, first inference, warm-up runs), never in
the percentiles; warm-up ends after N runs or, with ``warmup_stable``, once
consecutive blocks of runs agree. Frames are decoded once before timing (their
decode times are the ``decode`` stage), so file I/O does not masquerade as
model latency. One early-stopping driver (harness.budget.BudgetDriver) stops
every mode, as it stops suites' latency checks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from edgeprobe.agent.backends import Backend
from edgeprobe.agent.config import ModelConfig, TaskConfig
from edgeprobe.agent.guards import GuardMonitor, GuardReport, Guards
from edgeprobe.agent.memory import current_rss_mb, peak_rss_mb
from edgeprobe.agent.pipeline import Pipeline, WarmUp, open_pipeline
from edgeprobe.agent.sources import Frame, open_source
from edgeprobe.harness.budget import Budget, BudgetDriver, BudgetResult
from edgeprobe.harness.errors import ConfigError, ModelError
from edgeprobe.harness.latency import FLAGGED_STAGES, LatencyWindow

Mode = Literal["single_stream", "paced", "throughput"]
MODES: tuple[str, ...] = ("single_stream", "paced", "throughput")


@dataclass
class BenchConfig:
    model: ModelConfig
    #: a video file or image folder; None: frames generated at the model's input size (``generate``)
    source: str | None = None
    #: without a source: "noise" (seeded uniform uint8, distinct per frame) or "constant" (mid-grey)
    generate: Literal["noise", "constant"] = "noise"
    task: str = "auto"
    mode: Mode = "single_stream"
    #: paced mode: camera frames per second (default: the source's own fps)
    fps: float | None = None
    batch: int = 1
    concurrency: int = 1
    warmup: int = 10
    warmup_stable: bool = False
    warmup_max: int = 1000
    max_seconds: float = 30.0
    max_samples: int = 1_000_000
    #: distinct frames decoded and kept in memory, cycled through while measuring
    frames: int = 32
    budgets: list[Budget] = field(default_factory=list)
    sysfs_root: str = "/"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"bench mode {self.mode!r} is unknown; use one of {', '.join(MODES)}")
        for name in ("batch", "concurrency", "frames", "max_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.max_seconds <= 0:
            raise ConfigError("--max-seconds must be positive")
        if self.fps is not None and self.fps <= 0:
            raise ConfigError("--fps must be positive")
        if self.mode != "throughput" and (self.batch != 1 or self.concurrency != 1):
            raise ConfigError(f"{self.mode} runs one frame at a time; use --mode throughput for --batch/--concurrency")


@dataclass
class BenchResult:
    config: BenchConfig
    model: dict[str, Any]
    source: dict[str, Any]
    stages: dict[str, dict[str, Any]]
    cold_start: dict[str, Any]
    memory: dict[str, float]
    guards: GuardReport
    budgets: list[BudgetResult]
    mode_figures: dict[str, Any]
    stopped_by: str
    wall_s: float
    flags: list[str]
    #: raw per-stage samples (ns), for callers that compare with another measurement
    samples_ns: dict[str, list[int]] = field(default_factory=dict, repr=False)

    @property
    def verdict(self) -> str | None:
        if not self.budgets:
            return None
        statuses = {b.status for b in self.budgets}
        return "fail" if "fail" in statuses else "inconclusive" if "inconclusive" in statuses else "pass"

    def as_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": self.model, "source": self.source, "mode": c.mode, "batch": c.batch,
            "concurrency": c.concurrency, "threads": c.model.threads, "providers": self.model.get("providers"),
            "stages": self.stages, "cold_start": self.cold_start, "memory": self.memory,
            "mode_figures": self.mode_figures, "guards": self.guards.as_dict(),
            "budgets": [b.as_dict() for b in self.budgets], "verdict": self.verdict,
            "stopped_by": self.stopped_by, "wall_s": self.wall_s, "flags": self.flags,
        }


def _check_batch(backend: Backend, batch: int) -> None:
    b = backend.input_spec.shape[0]
    if b is not None and b != batch:
        hint = f"pass --mode throughput --batch {b}" if b > 1 else "drop --batch"
        raise ModelError(f"model input {backend.input_spec.name!r} has a fixed batch of {b} but the bench feeds "
                         f"{batch} frame(s) at a time; {hint}")


def _load_frames(uri: str, count: int) -> tuple[list[Frame], dict[str, Any], list[int]]:
    source = open_source(uri, loop=True)
    try:
        desc = source.describe()
        frames: list[Frame] = []
        for frame in source:
            frames.append(frame)
            if len(frames) >= count:
                break
    finally:
        source.close()
    return frames, desc, [f.decode_ns for f in frames if f.decode_ns > 0]


def _generated_frames(backend: Backend, fill: str, count: int) -> tuple[list[Frame], dict[str, Any], list[int]]:
    """Frames of the model's own input size, as onnxruntime_perf_test, trtexec and benchmark_model feed.

    No decode and no resize in preprocess (the frame already has the input's height and width), so
    the figures are the model's and its normalisation's. Noise is seeded (seed 0) so two runs time
    the same pixels; a constant frame is mid-grey. Content-dependent stages (NMS, decoding many
    detections) can take longer or shorter on real frames: the output says which input was used.
    """
    spec = backend.input_spec
    shape = (spec.height, spec.width) if spec.channels == 1 else (spec.height, spec.width, 3)
    if fill == "noise":
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(count)]
    else:
        images = [np.full(shape, 128, np.uint8)] * count
    now = time.perf_counter_ns()
    frames = [Frame(image=img, t_capture_ns=now, index=i, source_id=f"generated:{fill}")
              for i, img in enumerate(images)]
    what = "seeded uniform noise (seed 0)" if fill == "noise" else "constant mid-grey (128)"
    desc = {"kind": "generated", "uri": f"generated:{fill}", "fill": fill, "width": spec.width,
            "height": spec.height, "frames": len(set(map(id, images))),
            "note": f"{what} at the model's input size {spec.width}x{spec.height}: no decode, no resize; "
                    "content-dependent postprocessing may time differently on real frames"}
    return frames, desc, []


def _open(cfg: BenchConfig) -> Pipeline:
    """The deployed pipeline; ``--task auto`` decodes with the first registered layout that fits the outputs
    (so a detector's decode + NMS is measured as postprocess), the raw-tensor adapter when none does."""
    warm = WarmUp(cfg.warmup, cfg.warmup_stable, cfg.warmup_max)
    if cfg.task == "none":
        return open_pipeline(cfg.model, None, warmup=warm)
    return open_pipeline(cfg.model, TaskConfig(kind=cfg.task), warmup=warm, optional_task=cfg.task == "auto")


def run_bench(cfg: BenchConfig, on_progress: Callable[[int], None] | None = None) -> BenchResult:
    t_start = time.monotonic()
    rss_before = current_rss_mb()
    pipeline = _open(cfg)
    backend = pipeline.backend
    rss_loaded = current_rss_mb()
    _check_batch(backend, cfg.batch if cfg.mode == "throughput" else 1)
    frames, source_desc, decode_ns = (_load_frames(cfg.source, cfg.frames) if cfg.source is not None
                                      else _generated_frames(backend, cfg.generate, cfg.frames))
    for stage in [b.stage for b in cfg.budgets]:
        allowed = {"inference"} if cfg.mode == "throughput" else {"preprocess", "inference", "postprocess", "e2e"}
        if stage not in allowed:
            raise ConfigError(f"stage {stage!r} is not measured in {cfg.mode} mode; use --stage with one of "
                              f"{', '.join(sorted(allowed))}")

    if cfg.mode == "throughput":
        tensors = [backend.preprocess(f.image).copy() for f in frames[:cfg.batch]]  # preprocess reuses its tensor
        batch = np.concatenate([tensors[i % len(tensors)] for i in range(cfg.batch)]) if cfg.batch > 1 \
            else tensors[0]
        t0 = time.perf_counter_ns()
        backend.infer(batch)
        first_ns = time.perf_counter_ns() - t0
        while True:  # throughput runs the model alone, so its warm-up is on inference
            t0 = time.perf_counter_ns()
            backend.infer(batch)
            if not pipeline.warm.add(time.perf_counter_ns() - t0):
                break
    else:
        n = 0
        while not pipeline.warm.done:
            pipeline.timed(frames[n % len(frames)].image)
            n += 1
        first_ns = pipeline.first_inference_ns or 0
    monitor = GuardMonitor(Guards(cfg.sysfs_root))
    monitor.start()
    window = LatencyWindow()
    driver = BudgetDriver(cfg.budgets, max_samples=cfg.max_samples, max_seconds=cfg.max_seconds)
    t_meas = time.perf_counter()
    if cfg.mode == "throughput":
        mode_figures = _throughput(backend, batch, cfg, window, driver, monitor)
    elif cfg.mode == "paced":
        fps = cfg.fps or float(source_desc.get("fps") or 0.0)
        if fps <= 0:
            raise ConfigError(f"source {source_desc.get('uri', cfg.source)} has no frame rate; pass --fps for "
                              "paced mode")
        mode_figures = _paced(pipeline, frames, fps, window, driver, monitor, on_progress)
    else:
        mode_figures = _single_stream(pipeline, frames, window, driver, monitor, on_progress)
    wall = time.perf_counter() - t_meas
    guards = monitor.report()
    if decode_ns:
        window.samples["decode"] = decode_ns
    stages = {k: {kk: vv for kk, vv in s.as_dict().items() if kk != "hdr"}
              for k, s in window.summary().items()}
    flags = list(guards.flags)
    for name, s in stages.items():
        flags += [f"{name}: {w}" for w in s["warnings"] if name in FLAGGED_STAGES and w.startswith("unstable")]
    budgets = driver.results()
    if mode_figures.get("samples_per_s") is None and cfg.mode != "throughput":
        n = len(window.samples.get("inference", []))
        mode_figures["inferences_per_s"] = n / wall if wall > 0 else 0.0
    warm = pipeline.warm
    return BenchResult(
        config=cfg, model=backend.describe(), source=source_desc, stages=stages,
        cold_start={"session_ms": backend.load_ns / 1e6, "first_inference_ms": first_ns / 1e6,
                    "warmup_runs": warm.count, "warmup_ms": warm.total_ns / 1e6, "warmup_stable": warm.stable,
                    "warmup_mode": "until_stable" if cfg.warmup_stable else "count"},
        memory=_memory(rss_before, rss_loaded),
        guards=guards, budgets=budgets, mode_figures=mode_figures, stopped_by=driver.reason,
        wall_s=time.monotonic() - t_start, flags=flags, samples_ns={k: list(v) for k, v in window.samples.items()},
    )


def _memory(before: float, loaded: float) -> dict[str, float]:
    end = current_rss_mb()
    # the kernel's high-water mark is updated lazily and can trail the current figure by a page or two
    return {"rss_before_load_mb": round(before, 1), "model_rss_mb": round(loaded - before, 1),
            "rss_end_mb": round(end, 1), "peak_rss_mb": round(max(end, peak_rss_mb()), 1)}


def _single_stream(pipeline: Pipeline, frames: list[Frame], window: LatencyWindow, driver: BudgetDriver,
                   monitor: GuardMonitor, on_progress: Callable[[int], None] | None) -> dict[str, Any]:
    n = 0
    while True:
        d = pipeline.timed(frames[n % len(frames)].image).stages
        window.add_frame(d)
        n += 1
        monitor.poll()
        if on_progress is not None and n % 64 == 0:
            on_progress(n)
        if driver.feed(d):
            return {"frames": n}


def _paced(pipeline: Pipeline, frames: list[Frame], fps: float, window: LatencyWindow, driver: BudgetDriver,
           monitor: GuardMonitor, on_progress: Callable[[int], None] | None) -> dict[str, Any]:
    clock = time.perf_counter_ns
    period = int(1e9 / fps)
    origin = clock()
    last_index = -1
    processed = dropped = misses = 0
    while True:
        now = clock()
        index = (now - origin) // period
        wait = 0
        if index <= last_index:  # the next frame is not out yet: block like a camera read would
            index = last_index + 1
            wait_until = origin + index * period
            if wait_until - now > 1_000_000:
                time.sleep((wait_until - now - 500_000) / 1e9)
            while clock() < wait_until:
                pass
            wait = clock() - now
        capture = origin + index * period
        dropped += index - last_index - 1  # overtaken while the model was busy
        last_index = index
        d = pipeline.timed(frames[index % len(frames)].image, capture).stages
        misses += d["e2e"] > period
        d["capture_wait"] = wait
        window.add_frame(d)
        processed += 1
        monitor.poll()
        if on_progress is not None and processed % 16 == 0:
            on_progress(processed)
        if driver.feed(d):
            issued = last_index + 1
            return {"fps": fps, "frames_issued": issued, "frames_processed": processed, "frames_dropped": dropped,
                    "deadline_misses": misses, "deadline_ms": period / 1e6,
                    "miss_rate": misses / processed, "drop_rate": dropped / issued if issued else 0.0}


def _throughput(backend: Backend, batch: np.ndarray, cfg: BenchConfig, window: LatencyWindow,
                driver: BudgetDriver, monitor: GuardMonitor) -> dict[str, Any]:
    stop = threading.Event()
    lock = threading.Lock()
    per_thread: list[list[int]] = [[] for _ in range(cfg.concurrency)]
    start = threading.Barrier(cfg.concurrency + 1)

    def worker(mine: list[int]) -> None:
        clock = time.perf_counter_ns
        start.wait()
        while not stop.is_set():
            t = clock()
            backend.infer(batch)
            d = clock() - t
            mine.append(d)
            with lock:
                if driver.feed({"inference": d}):
                    stop.set()

    threads = [threading.Thread(target=worker, args=(per_thread[i],), daemon=True) for i in range(cfg.concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    while not stop.wait(0.5):
        monitor.poll()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    for mine in per_thread:
        for d in mine:
            window.add("inference", d)
    runs = sum(len(m) for m in per_thread)
    return {"batch": cfg.batch, "concurrency": cfg.concurrency, "runs": runs,
            "inferences_per_s": runs / wall if wall > 0 else 0.0,
            "samples_per_s": runs * cfg.batch / wall if wall > 0 else 0.0}

