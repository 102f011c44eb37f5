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

Cold start is reported apart (session creation, first inference, warm-up
runs), never in the percentiles; warm-up ends after N runs or, with
``warmup_stable``, once consecutive blocks of runs agree. Frames are decoded
once before timing (their decode times are the ``decode`` stage), so file I/O
does not masquerade as model latency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..harness.budget import Budget, BudgetResult, BudgetSampler
from ..harness.errors import ConfigError, ModelError
from ..harness.latency import FLAGGED_STAGES, LatencyWindow
from ..harness.tasks import make_adapter
from .backends import Backend, load_backend
from .config import ModelConfig
from .guards import GuardMonitor, GuardReport, Guards
from .memory import current_rss_mb, peak_rss_mb
from .sources import Frame, open_source

Mode = Literal["single_stream", "paced", "throughput"]
MODES: tuple[str, ...] = ("single_stream", "paced", "throughput")

#: warm-up is "stable" when two consecutive blocks of this many runs have medians within STABLE_REL
STABLE_BLOCK = 10
STABLE_REL = 0.05


@dataclass
class BenchConfig:
    model: ModelConfig
    source: str
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


class _Adapter:
    """The task adapter, or nothing when the model's output fits no task (latency only)."""

    def __init__(self, task: str, backend: Backend):
        self.decode: Callable[[Sequence[np.ndarray]], Any] | None = None
        if task == "none":
            return
        try:
            labels = backend.labels_from_metadata()
            opts: dict[str, Any] = {"labels": labels} if labels else {}
            self.decode = make_adapter("classification" if task == "auto" else task, backend.output_specs,
                                       **opts).decode
        except (ConfigError, ModelError):
            if task != "auto":
                raise


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


def _warmup(run_once: Callable[[], int], cfg: BenchConfig) -> tuple[int, int, bool]:
    """Returns (runs, total ns, stabilised). Runs never enter the percentiles."""
    times: list[int] = []
    stable = False
    while len(times) < cfg.warmup_max:
        times.append(run_once())
        n = len(times)
        if not cfg.warmup_stable:
            if n >= cfg.warmup:
                break
            continue
        if n >= max(cfg.warmup, 2 * STABLE_BLOCK) and n % STABLE_BLOCK == 0:
            a = float(np.median(times[-2 * STABLE_BLOCK:-STABLE_BLOCK]))
            b = float(np.median(times[-STABLE_BLOCK:]))
            if abs(b - a) <= STABLE_REL * a:
                stable = True
                break
    return len(times), int(sum(times)), stable


class _Stopper:
    """Stops on a settled verdict for every budget, a sample cap or a time cap."""

    def __init__(self, cfg: BenchConfig):
        # The samplers only judge; the limits are this object's, so a limit is never mistaken for a verdict.
        self.samplers = {id(b): (b, BudgetSampler(b)) for b in cfg.budgets}
        self.open = dict(self.samplers)
        self.deadline = time.monotonic() + cfg.max_seconds
        self.max_samples = cfg.max_samples
        self.reason = ""

    def feed(self, durations: dict[str, int], n: int) -> bool:
        for key, (budget, sampler) in list(self.open.items()):
            if budget.stage in durations and sampler.add(durations[budget.stage]):
                del self.open[key]
        if self.samplers and not self.open:
            self.reason = "settled"
            return True
        if n >= self.max_samples:
            self.reason = "max_samples"
            return True
        if time.monotonic() >= self.deadline:
            self.reason = "max_seconds"
            return True
        return False

    def results(self) -> list[BudgetResult]:
        return [s.finish() for _, s in self.samplers.values()]


def run_bench(cfg: BenchConfig, on_progress: Callable[[int], None] | None = None) -> BenchResult:
    t_start = time.monotonic()
    rss_before = current_rss_mb()
    backend = load_backend(cfg.model)
    rss_loaded = current_rss_mb()
    _check_batch(backend, cfg.batch if cfg.mode == "throughput" else 1)
    adapter = _Adapter(cfg.task, backend)
    frames, source_desc, decode_ns = _load_frames(cfg.source, cfg.frames)
    tensors = [backend.preprocess(f.image).copy() for f in frames]  # the preprocessor reuses its tensor
    for stage in [b.stage for b in cfg.budgets]:
        allowed = {"inference"} if cfg.mode == "throughput" else {"preprocess", "inference", "postprocess", "e2e"}
        if stage not in allowed:
            raise ConfigError(f"stage {stage!r} is not measured in {cfg.mode} mode; use --stage with one of "
                              f"{', '.join(sorted(allowed))}")

    batch = np.concatenate([tensors[i % len(tensors)] for i in range(cfg.batch)]) if cfg.batch > 1 else tensors[0]
    t0 = time.perf_counter_ns()
    backend.infer(batch)
    first_ns = time.perf_counter_ns() - t0

    def one() -> int:
        t = time.perf_counter_ns()
        backend.infer(batch)
        return time.perf_counter_ns() - t

    warm_runs, warm_ns, stable = _warmup(one, cfg)
    monitor = GuardMonitor(Guards(cfg.sysfs_root))
    monitor.start()
    window = LatencyWindow()
    stopper = _Stopper(cfg)
    t_meas = time.perf_counter()
    if cfg.mode == "throughput":
        mode_figures = _throughput(backend, batch, cfg, window, stopper, monitor)
    elif cfg.mode == "paced":
        fps = cfg.fps or float(source_desc.get("fps") or 0.0)
        if fps <= 0:
            raise ConfigError(f"source {cfg.source} has no frame rate; pass --fps for paced mode")
        mode_figures = _paced(backend, adapter, frames, fps, window, stopper, monitor, on_progress)
    else:
        mode_figures = _single_stream(backend, adapter, frames, window, stopper, monitor, on_progress)
    wall = time.perf_counter() - t_meas
    guards = monitor.report()
    if decode_ns:
        window.samples["decode"] = decode_ns
    stages = {k: {kk: vv for kk, vv in s.as_dict().items() if kk != "hdr"}
              for k, s in window.summary().items()}
    flags = list(guards.flags)
    for name, s in stages.items():
        flags += [f"{name}: {w}" for w in s["warnings"] if name in FLAGGED_STAGES and w.startswith("unstable")]
    budgets = stopper.results()
    if mode_figures.get("samples_per_s") is None and cfg.mode != "throughput":
        n = len(window.samples.get("inference", []))
        mode_figures["inferences_per_s"] = n / wall if wall > 0 else 0.0
    return BenchResult(
        config=cfg, model=backend.describe(), source=source_desc, stages=stages,
        cold_start={"session_ms": backend.load_ns / 1e6, "first_inference_ms": first_ns / 1e6,
                    "warmup_runs": warm_runs, "warmup_ms": warm_ns / 1e6, "warmup_stable": stable,
                    "warmup_mode": "until_stable" if cfg.warmup_stable else "count"},
        memory=_memory(rss_before, rss_loaded),
        guards=guards, budgets=budgets, mode_figures=mode_figures, stopped_by=stopper.reason,
        wall_s=time.monotonic() - t_start, flags=flags, samples_ns={k: list(v) for k, v in window.samples.items()},
    )


def _memory(before: float, loaded: float) -> dict[str, float]:
    end = current_rss_mb()
    # the kernel's high-water mark is updated lazily and can trail the current figure by a page or two
    return {"rss_before_load_mb": round(before, 1), "model_rss_mb": round(loaded - before, 1),
            "rss_end_mb": round(end, 1), "peak_rss_mb": round(max(end, peak_rss_mb()), 1)}


def _single_stream(backend: Backend, adapter: _Adapter, frames: list[Frame], window: LatencyWindow,
                   stopper: _Stopper, monitor: GuardMonitor, on_progress: Callable[[int], None] | None
                   ) -> dict[str, Any]:
    clock = time.perf_counter_ns
    decode = adapter.decode
    n = 0
    while True:
        image = frames[n % len(frames)].image
        t0 = clock()
        x = backend.preprocess(image)
        t1 = clock()
        out = backend.infer(x)
        t2 = clock()
        if decode is not None:
            decode(out)
        t3 = clock()
        d = {"preprocess": t1 - t0, "inference": t2 - t1, "e2e": t3 - t0}
        if decode is not None:
            d["postprocess"] = t3 - t2
        window.add_frame(d)
        n += 1
        monitor.poll()
        if on_progress is not None and n % 64 == 0:
            on_progress(n)
        if stopper.feed(d, n):
            return {"frames": n}


def _paced(backend: Backend, adapter: _Adapter, frames: list[Frame], fps: float, window: LatencyWindow,
           stopper: _Stopper, monitor: GuardMonitor, on_progress: Callable[[int], None] | None) -> dict[str, Any]:
    clock = time.perf_counter_ns
    period = int(1e9 / fps)
    decode = adapter.decode
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
        t0 = clock()
        x = backend.preprocess(frames[index % len(frames)].image)
        t1 = clock()
        out = backend.infer(x)
        t2 = clock()
        if decode is not None:
            decode(out)
        t3 = clock()
        misses += t3 > capture + period
        d = {"capture_wait": wait, "preprocess": t1 - t0, "inference": t2 - t1, "e2e": t3 - capture}
        if decode is not None:
            d["postprocess"] = t3 - t2
        window.add_frame(d)
        processed += 1
        monitor.poll()
        if on_progress is not None and processed % 16 == 0:
            on_progress(processed)
        if stopper.feed(d, processed):
            issued = last_index + 1
            return {"fps": fps, "frames_issued": issued, "frames_processed": processed, "frames_dropped": dropped,
                    "deadline_misses": misses, "deadline_ms": period / 1e6,
                    "miss_rate": misses / processed, "drop_rate": dropped / issued if issued else 0.0}


def _throughput(backend: Backend, batch: np.ndarray, cfg: BenchConfig, window: LatencyWindow,
                stopper: _Stopper, monitor: GuardMonitor) -> dict[str, Any]:
    stop = threading.Event()
    lock = threading.Lock()
    per_thread: list[list[int]] = [[] for _ in range(cfg.concurrency)]
    total = [0]
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
                total[0] += 1
                if stopper.feed({"inference": d}, total[0]):
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

