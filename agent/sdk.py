"""The in-process SDK: monitor a production application's own loop without disturbing it.

::

    import edgeprobe
    probe = edgeprobe.attach("agent.yaml")      # model, task, probe, monitor, broker/spool; no source
    ...
    probe.observe(frame, outputs, timings={"preprocess": ns, "inference": ns})
    ...
    probe.close()

The application owns the camera and its model session. :meth:`Probe.observe`
only records what the app hands over into a bounded queue and returns
(microseconds): it copies a frame only when something will look at it (a
frame the monitor samples, or its predecessor, or one due for probing), never
blocks and never raises into the app; what a full queue drops is counted and
reported. A background thread decodes the app's outputs with the task adapter,
feeds the latency windows and the monitor, hands due frames to the probe
worker (its own model session, ``probe.threads``) and sends every window
through the same spool -> MQTT path and message schema as the standalone agent.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from edgeprobe import __version__
from edgeprobe.agent import transport
from edgeprobe.agent.config import LoadedConfig, load_config
from edgeprobe.agent.memory import peak_rss_mb
from edgeprobe.agent.messages import Messenger
from edgeprobe.agent.monitor import Monitor
from edgeprobe.agent.pipeline import open_pipeline
from edgeprobe.agent.probe_process import open_worker
from edgeprobe.agent.prober import Prober
from edgeprobe.agent.reporter import Reporter
from edgeprobe.agent.spool import Spool
from edgeprobe.harness import perturbations, schema
from edgeprobe.harness.latency import FLAGGED_STAGES

log = logging.getLogger("edgeprobe.sdk")

#: frames waiting for the SDK's thread; past this an observed frame is dropped (and counted), not waited for
QUEUE_FRAMES = 256
#: how often the SDK's thread looks at the queue (it is never woken per frame)
POLL_S = 0.02


class _Item(msgspec.Struct, array_like=True):
    index: int
    t_ns: int
    image: np.ndarray | None
    outputs: Sequence[np.ndarray] | None
    timings: dict[str, int]
    probe: bool


class Probe:
    """An attached monitor. Create it with :func:`attach`; call :meth:`observe` per frame and :meth:`close`."""

    def __init__(self, loaded: LoadedConfig, flush_timeout: float = 10.0):
        cfg = self.cfg = loaded.config
        self.flush_timeout = flush_timeout
        # The SDK's only model session is the probe worker's: the app runs its own for the deployed path.
        model = msgspec.structs.replace(cfg.model, threads=cfg.probe.threads)
        self.pipeline = open_pipeline(model, cfg.task)
        adapter = self.adapter = self.pipeline.adapter
        self.prober = Prober(cfg.probe, self.pipeline.predict, adapter.disagreement, adapter.threshold,
                             adapter=adapter, input_hw=self.pipeline.input_hw)
        probing = cfg.probe.enabled and bool(cfg.probe.perturbations)
        self.worker = open_worker(self.prober, self.pipeline, cfg.task, wait=cfg.probe.backpressure == "wait",
                                  probing=probing, session_is_free=True, sees_loop=False)
        self.spool = Spool(cfg.spool.path, cfg.spool.max_rows, cfg.spool.max_bytes)
        self.messenger = Messenger(self.spool, cfg.device_id, cfg.fleet, model_sha256=self.pipeline.backend.sha256,
                                   config_sha256=loaded.sha256)
        self.monitor = Monitor(cfg.monitor, cfg.device_id, adapter, self.pipeline.backend.sha256, cfg.probe.seed)
        self.reporter = Reporter(self.messenger, self.prober, self.worker, self.monitor, self._latency_extras,
                                 self._status, lambda: [])
        self.every = self.monitor.every
        #: observe() calls, frames dropped because the SDK's queue was full, errors swallowed to protect the app
        self.observed = 0
        self.dropped = 0
        self.errors = 0
        self.frames = 0
        self._queue: deque[_Item] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self.publisher = transport.start(cfg.broker, cfg.device_id, self.messenger, self.spool, self._birth_body())
        self._thread = threading.Thread(target=self._loop, name="edgeprobe-sdk", daemon=True)
        self._thread.start()

    # --- the application's thread ------------------------------------------------------------------

    def observe(self, frame: np.ndarray, outputs: Sequence[np.ndarray] | None = None,
                timings: Mapping[str, int] | None = None) -> None:
        """Hand over one frame the app processed, its raw model outputs and its stage timings (ns).

        ``timings`` are the app's own (e.g. ``preprocess``, ``inference``, ``postprocess``); ``e2e`` is their sum
        unless given. Returns at once; never raises.
        """
        try:
            i = self.observed
            self.observed += 1
            if self._closing:
                return
            if not isinstance(frame, np.ndarray):
                raise TypeError(f"observe() takes the frame as a numpy array, got {type(frame).__name__}")
            if len(self._queue) >= QUEUE_FRAMES:
                self.dropped += 1
                return
            # Copy only what will be looked at: a frame the monitor samples or its predecessor (motion, flips),
            # or one due for probing. Applications reuse their buffers, so a reference would not do.
            probe = self.prober.cfg.enabled and self.prober.wants(i)
            keep = probe or i % self.every == 0 or (i + 1) % self.every == 0
            t = {k: int(v) for k, v in timings.items()} if timings else {}
            self._queue.append(_Item(i, time.perf_counter_ns(), np.array(frame, copy=True) if keep else None,
                                     [np.array(o, copy=True) for o in outputs] if keep and outputs else None,
                                     t, probe))
            # no wake-up here: waking the SDK's thread would hand it the GIL in the middle of the app's frame;
            # it polls every POLL_S instead
        except Exception:  # the app must never see our failure
            self.errors += 1
            if self.errors == 1:
                log.exception("edgeprobe observe failed; the app goes on, later failures are counted")

    def close(self) -> None:
        """Finish: probe what is queued, send the last window and a death message, flush, stop. Safe twice."""
        if self._closed:
            return
        self._closing = True
        self._wake.set()
        self._thread.join()
        self._closed = True

    def stats(self) -> dict[str, Any]:
        """Counters for the app's own logs: frames observed, dropped, errors, messages sent per kind."""
        return {"observed": self.observed, "processed": self.frames, "dropped": self.dropped,
                "probe_dropped": self.prober.run_dropped + self.prober.dropped, "errors": self.errors,
                "probe_errors": self.worker.errors, "messages": dict(self.messenger.sent)}

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the SDK's thread ---------------------------------------------------------------------------

    def _loop(self) -> None:
        win_first: int | None = None
        win_start, win_t0 = schema.utc_now(), time.monotonic()
        last = -1
        try:
            while True:
                self._wake.wait(POLL_S)
                self._wake.clear()
                while self._queue:
                    item = self._queue.popleft()
                    try:
                        self._process(item)
                    except Exception:
                        self.errors += 1
                        if self.errors == 1:
                            log.exception("edgeprobe could not process a frame; later failures are counted")
                        continue
                    if win_first is None:
                        win_first, win_start, win_t0 = item.index, schema.utc_now(), time.monotonic()
                    last = item.index
                    full = last - win_first + 1 >= self.cfg.windows.frames
                    if full or time.monotonic() - win_t0 >= self.cfg.windows.seconds:
                        self.reporter.emit(win_first, last, win_start)
                        win_first = None
                self.reporter.collect()
                if self._closing and not self._queue:
                    break
        finally:
            self.worker.drain()
            if win_first is not None:
                self.reporter.emit(win_first, last, win_start)
            self.worker.close()
            self.messenger.send("death", {"reason": "closed", "frames": self.frames})
            transport.stop(self.publisher, self.spool, self.flush_timeout)
            self.spool.close()

    def _process(self, item: _Item) -> None:
        timings = dict(item.timings)
        if timings and "e2e" not in timings:
            timings["e2e"] = sum(timings.values())
        if timings:
            self.reporter.latency.add_frame(timings)
        self.frames += 1
        prediction = self.adapter.decode(item.outputs) if item.outputs is not None else None
        for event in self.monitor.observe(item.image, prediction, item.t_ns):
            self.messenger.send("event", event)
        self.prober.seen()
        if item.probe and item.image is not None and prediction is not None:
            self.worker.offer(item.image, prediction, item.index, self.monitor.slice_keys)

    def _status(self) -> dict[str, Any]:
        return {"spool_queued": self.spool.pending(), "spool_dropped": self.spool.dropped(),
                "rss_mb": peak_rss_mb(), "frames_dropped": self.dropped}

    def _latency_extras(self, body: schema.LatencyBody) -> None:
        body.mode = "embedded"
        body.flags = [f"{stage}: {w}" for stage, s in body.stages.items() for w in s.warnings
                      if stage in FLAGGED_STAGES and w.startswith("unstable")]
        body.peak_rss_mb = round(peak_rss_mb(), 1)

    def _birth_body(self) -> dict[str, Any]:
        return {
            "model": self.pipeline.backend.describe(),
            "source": {"kind": "embedded", "pid": os.getpid()},
            "host": {"platform": platform.platform(), "machine": platform.machine(),
                     "python": platform.python_version(), "cpus": os.cpu_count()},
            "capabilities": {
                "agent_version": __version__, "task": self.adapter.name, "perturbations": perturbations.names(),
                "probe": {"every_n_frames": self.cfg.probe.every_n_frames, "seed": self.cfg.probe.seed},
                "commands": [], "session_id": self.messenger.session_id, "embedded": True,
            },
        }


def attach(config: str | Path | LoadedConfig, overrides: dict[str, Any] | None = None,
           flush_timeout: float = 10.0) -> Probe:
    """Attach edgeprobe to this process's own loop (see the module docstring); raises ConfigError/ModelError
    with one sentence on a bad config, before the app's loop starts."""
    loaded = config if isinstance(config, LoadedConfig) else load_config(config, overrides)
    return Probe(loaded, flush_timeout)
