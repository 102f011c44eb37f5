"""The agent's main loop: frames -> model -> measurements -> spool -> MQTT.

Per frame it runs the deployed path through agent/pipeline.py (which times
each stage), feeds camera-health statistics, and on a duty cycle copies a
frame to the probe worker (agent/probe_worker.py), whose results it collects
between frames. Every window each part sends its own body and is reset:
latency, robustness (the prober), health and drift (the monitor). The
publisher drains the spool to the broker in its own thread.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from edgeprobe import __version__
from edgeprobe.agent import transport
from edgeprobe.agent.commands import CommandError, Commands
from edgeprobe.agent.config import LoadedConfig, require_source
from edgeprobe.agent.guards import GuardMonitor
from edgeprobe.agent.memory import current_rss_mb, peak_rss_mb
from edgeprobe.agent.messages import Messenger
from edgeprobe.agent.monitor import Monitor
from edgeprobe.agent.pipeline import Pipeline, WarmUp, open_pipeline
from edgeprobe.agent.probe_process import open_worker
from edgeprobe.agent.prober import Prober
from edgeprobe.agent.remote_check import run_check
from edgeprobe.agent.reporter import Reporter
from edgeprobe.agent.sources import Frame, FrameSource, open_source
from edgeprobe.agent.spool import Spool
from edgeprobe.harness import perturbations, schema
from edgeprobe.harness.latency import FLAGGED_STAGES, warm

if TYPE_CHECKING:
    from edgeprobe.agent.publisher import Publisher

log = logging.getLogger("edgeprobe.agent")

#: the loop looks at the command queue and the guards' clock at most this often (per frame they cost ~3-5 us,
#: ~0.1% of a 4 ms frame); a command still runs between frames, within this long of the frame it arrived during,
#: and the guards snapshot once a second (``GuardMonitor.every_s``) give or take this much
COMMAND_POLL_NS = 10_000_000


def rss_mb() -> float:
    """Peak resident set size of this process (VmHWM: getrusage's figure survives exec)."""
    return peak_rss_mb()


@dataclass
class RunStats:
    frames: int = 0
    warmup_runs: int = 0
    probed_frames: int = 0
    windows: int = 0
    wall_s: float = 0.0
    messages: dict[str, int] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    #: the probe process's own peak (0 when probes run on a thread of the agent, or not at all)
    probe_peak_rss_mb: float = 0.0
    spool_pending: int = 0
    first_result_s: float | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


class Agent:
    """Owns the model, the source, the spool and the publisher for one run."""

    def __init__(self, loaded: LoadedConfig):
        self.started_ns = time.perf_counter_ns()
        self.loaded = loaded
        cfg = self.cfg = loaded.config
        rss_before = current_rss_mb()
        self.pipeline: Pipeline = open_pipeline(cfg.model, cfg.task, warmup=WarmUp(cfg.windows.warmup))
        self.backend = self.pipeline.backend
        self.adapter = self.pipeline.adapter
        self.model_rss_mb = current_rss_mb() - rss_before
        self.guards = GuardMonitor()
        self.probing = cfg.probe.enabled and bool(cfg.probe.perturbations)
        # The worker (started below, with the source) runs its own session: perturbed inferences never queue on
        # the deployed session's thread pool; predict here is only for probing in place (tests, suites).
        self.prober = Prober(cfg.probe, self.pipeline.predict, self.adapter.disagreement, self.adapter.threshold,
                             adapter=self.adapter, input_hw=self.pipeline.input_hw)
        self.spool = Spool(cfg.spool.path, cfg.spool.max_rows, cfg.spool.max_bytes, exclusive=True)
        self.publisher: Publisher | None = None
        self.messenger = Messenger(
            self.spool, cfg.device_id, cfg.fleet, model_sha256=self.backend.sha256,
            config_sha256=loaded.sha256,
        )
        src = self.src = require_source(cfg, str(loaded.path or "config"))
        self.source: FrameSource = open_source(
            src.uri, loop=src.loop, pace=src.pace, on_event=lambda event: self.messenger.send("event", event),
            reuse_buffer=True, fail_fast=src.fail_fast, open_timeout_s=src.open_timeout_s,
            read_timeout_s=src.read_timeout_s, backoff_initial_s=src.backoff_initial_s,
            backoff_max_s=src.backoff_max_s)
        #: camera health, bands and alerts, frozen/replayed streams, temporal flips, drift, slices (agent/monitor.py)
        self.monitor = Monitor(cfg.monitor, cfg.device_id, self.adapter, self.backend.sha256, cfg.probe.seed)
        # last: nothing after it can fail and leave the probe process behind
        self.worker = open_worker(self.prober, self.pipeline, cfg.task, wait=self._probes_wait(),
                                  probing=self.probing)
        self.reporter = Reporter(self.messenger, self.prober, self.worker, self.monitor, self._latency_extras,
                                 self._agent_status, self._source_flags)
        self.latency = self.reporter.latency
        warm(cfg.windows.frames)  # the first window's summary would pay numpy's lazy imports inside the run
        self.robustness_run = self.reporter.robustness_run
        self.commands = Commands(self.messenger)
        self._last_frame: np.ndarray | None = None
        self._idle_health_t = time.monotonic()  # last health sent while a live camera gave no frames
        self._register_commands()

    def _probes_wait(self) -> bool:
        """Backpressure: wait for probes when replaying a file unpaced (no deadline to miss), else drop."""
        mode = self.cfg.probe.backpressure
        if mode != "auto":
            return mode == "wait"
        kind = self.source.describe().get("kind")
        return kind in ("video_file", "image_folder") and not self.src.pace

    # --- commands (run in the agent loop, between frames) -----------------

    def _register_commands(self) -> None:
        self.commands.register("set_duty_cycle", self._cmd_duty_cycle)
        self.commands.register("rebirth", lambda args: {"seq": self.messenger.send(
            "birth", self._birth_body(), retain=True)["seq"]})
        self.commands.register("snapshot", self._cmd_snapshot)
        self.commands.register("run_check", self._cmd_run_check)

    def _cmd_duty_cycle(self, args: dict[str, Any]) -> dict[str, Any]:
        n = args.get("every_n_frames")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise CommandError("set_duty_cycle needs args.every_n_frames, an integer >= 1")
        old, self.prober.cfg.every_n_frames = self.prober.cfg.every_n_frames, n
        return {"every_n_frames": n, "was": old}

    def _cmd_snapshot(self, args: dict[str, Any]) -> dict[str, Any]:
        import base64

        import cv2

        if self._last_frame is None:
            raise CommandError("no frame captured yet; send snapshot again once the agent is running")
        img = self._last_frame
        scale = min(1.0, 320 / max(img.shape[:2]))
        if scale < 1.0:
            img = cv2.resize(img, (int(img.shape[1] * scale), int(img.shape[0] * scale)),
                             interpolation=cv2.INTER_AREA)
        ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
        if not ok:
            raise CommandError("the frame could not be encoded as JPEG")
        return {"width": int(img.shape[1]), "height": int(img.shape[0]),
                "jpeg_base64": base64.b64encode(jpeg.tobytes()).decode("ascii")}

    def _cmd_run_check(self, args: dict[str, Any]) -> dict[str, Any]:
        return run_check(self.cfg.suite, self.messenger)

    # --- messages --------------------------------------------------------

    def _birth_body(self) -> dict[str, Any]:
        return {
            "model": self.backend.describe(),
            "source": self.source.describe(),
            "host": {"platform": platform.platform(), "machine": platform.machine(),
                     "python": platform.python_version(), "cpus": os.cpu_count()},
            "capabilities": {
                "agent_version": __version__,
                "task": self.adapter.name,
                "perturbations": perturbations.names(),
                "probe": {"every_n_frames": self.cfg.probe.every_n_frames, "seed": self.cfg.probe.seed},
                "commands": self.commands.handlers.names(),
                "session_id": self.messenger.session_id,
            },
        }

    def _agent_status(self) -> dict[str, Any]:
        """The agent's own figures every health body carries: spool, memory, the live source's state."""
        return {"spool_queued": self.spool.pending(), "spool_dropped": self.spool.dropped(), "rss_mb": rss_mb(),
                **self._source_status()}

    def _source_status(self) -> dict[str, Any]:
        """Live sources' dropped frames and outage state (optional health fields)."""
        status = getattr(self.source, "status", None)
        return status() if callable(status) else {}

    def _source_flags(self) -> list[str]:
        return ["offline"] if getattr(self.source, "offline", False) else []

    def _idle(self, stop: threading.Event) -> bool:
        """While a live camera is down: keep reporting health (flag 'offline') and answering commands."""
        now = time.monotonic()
        if now - self._idle_health_t >= self.cfg.windows.seconds:
            self._idle_health_t = now
            self.messenger.send("health", self.monitor.idle_health_body(self._agent_status(),
                                                                        self._source_flags() or ["no_frames"]))
        self.commands.poll()
        return stop.is_set()

    def _latency_extras(self, body: schema.LatencyBody) -> None:
        """Cold start, guards and run-level flags every latency message carries (schema: optional fields)."""
        guards = self.guards.report(restart=True)
        flags = list(guards.flags)
        flags += [f"{stage}: {w}" for stage, s in body.stages.items() for w in s.warnings
                  if stage in FLAGGED_STAGES and w.startswith("unstable")]
        g = guards.as_dict()
        g.pop("snapshots", None)
        body.mode = "paced" if self.src.pace else "single_stream"
        body.cold_start = schema.ColdStart(session_ms=self.backend.load_ns / 1e6,
                                           first_inference_ms=(self.pipeline.first_inference_ns or 0) / 1e6,
                                           warmup_runs=self.cfg.windows.warmup,
                                           model_rss_mb=round(self.model_rss_mb, 1), peak_rss_mb=round(rss_mb(), 1))
        body.guards = msgspec.convert(g, schema.Guards)
        body.flags = flags
        body.peak_rss_mb = round(rss_mb(), 1)

    # --- the loop --------------------------------------------------------

    def run(
        self,
        max_frames: int | None = None,
        stop: threading.Event | None = None,
        on_frame: Callable[[int], None] | None = None,
        flush_timeout: float = 10.0,
        on_idle: Callable[[], None] | None = None,
    ) -> RunStats:
        """Measure until the source ends, ``max_frames`` or ``stop``; ``on_frame`` after each measured frame,
        ``on_idle`` on each tick spent waiting for a live camera (both: signs of life for a watchdog)."""
        stats = RunStats()
        stop = stop or threading.Event()
        self.publisher = transport.start(self.cfg.broker, self.cfg.device_id, self.messenger, self.spool,
                                         self._birth_body(), self.commands)
        clock_ns = time.perf_counter_ns
        win_first, win_start, win_t0 = None, schema.utc_now(), clock_ns()
        frame: Frame | None = None
        t_run = time.perf_counter()
        reason = "finished"
        t_ask = clock_ns()
        next_poll = 0  # the first frame polls: commands queued before the run answer at once
        self._idle_health_t = time.monotonic()
        clock = self.worker.clock  # probes that wait for the loop's idle time learn it here
        if hasattr(self.source, "on_idle"):
            def idle() -> bool:
                if on_idle is not None:
                    on_idle()
                return self._idle(stop)

            self.source.on_idle = idle
        # what every frame touches, looked up once (a frame's own bookkeeping is a few microseconds of Python)
        timed, observe, add_frame = self.pipeline.timed, self.monitor.observe, self.latency.add_frame
        probing, prober, worker, reporter = self.probing, self.prober, self.worker, self.reporter
        window_frames, window_ns = self.cfg.windows.frames, int(self.cfg.windows.seconds * 1e9)
        try:
            for frame in self.source:
                if stop.is_set():
                    reason = "stopped"
                    break
                capture_wait = max(0, clock_ns() - t_ask - frame.decode_ns)  # blocked on the source
                if clock is not None:
                    clock.begin()
                run = timed(frame.image, frame.t_capture_ns, frame.decode_ns)
                if clock is not None:
                    clock.end()
                prediction = run.prediction
                if run.warmup:
                    self.latency.warmup_runs += 1
                    stats.warmup_runs += 1
                else:
                    if win_first is None:
                        win_first, win_start, win_t0 = frame.index, schema.utc_now(), clock_ns()
                    # decode is always a stage of the agent's windows (0 where the source does not time it)
                    add_frame({"decode": frame.decode_ns, **run.stages, "capture_wait": capture_wait})
                    for event in observe(frame.image, prediction, frame.t_capture_ns):
                        self.messenger.send("event", event)
                    if probing:  # with probing off no frame is ever due and no result can arrive
                        if prober.due(frame.index):  # the loop only copies the frame; the worker probes it
                            worker.offer(frame.image, prediction, frame.index, self.monitor.slice_keys)
                        stats.probed_frames += reporter.collect()
                    stats.frames += 1
                    if stats.first_result_s is None:
                        stats.first_result_s = (clock_ns() - self.started_ns) / 1e9
                    if frame.index - win_first + 1 >= window_frames or clock_ns() - win_t0 >= window_ns:
                        t_pub = clock_ns()
                        stats.probed_frames += reporter.emit(win_first, frame.index, win_start)
                        self.latency.add("publish", clock_ns() - t_pub)  # lands in the next window
                        stats.windows += 1
                        win_first = None
                self._last_frame = frame.image  # the decode buffer: commands (snapshot) run before the next decode
                t_now = clock_ns()
                if t_now >= next_poll:  # commands, and the guards' once-a-second snapshot, between frames
                    next_poll = t_now + COMMAND_POLL_NS
                    self.guards.poll()
                    self.commands.poll()
                if on_frame:
                    on_frame(stats.frames)
                if max_frames is not None and stats.frames >= max_frames:
                    break
                t_ask = clock_ns()
        finally:
            self.worker.drain()  # the run's last probes belong to its last window
            if win_first is not None and frame is not None:
                stats.probed_frames += self.reporter.emit(win_first, frame.index, win_start)
                stats.windows += 1
            elif frame is not None:  # the last frame filled its window, sent before its probes (drop mode) ended
                stats.probed_frames += self.reporter.emit_tail(frame.index, schema.utc_now())
            self.worker.close()
            stats.probe_peak_rss_mb = self.worker.peak_rss_mb
            stats.wall_s = time.perf_counter() - t_run
            self.messenger.send("death", {"reason": reason, "frames": stats.frames})
            transport.stop(self.publisher, self.spool, flush_timeout)
            self.source.close()
            stats.messages = dict(self.messenger.sent)
            stats.peak_rss_mb = rss_mb()
            stats.spool_pending = self.spool.pending()
            self.spool.close()
        return stats
