"""The SDK's own process: everything edgeprobe does for an attached application, off the app's interpreter.

An attached application (agent/sdk.py) only hands over what it already has: per frame its stage timings, and
for the few frames something will look at (a frame the monitor samples, its predecessor, a probe-due frame)
the pixels and raw outputs, copied into shared-memory slots (agent/frame_channel.py). This process does the
rest: decodes the outputs with the task adapter, keeps the latency windows, the monitor (health, drift,
temporal flips), the probe worker (a thread with the model session of its own, at the lowest priority), the
reporter, the spool and MQTT.

Why a process: the SDK used to do this work on a thread of the application. Its Python work held the
interpreter lock, and the application's thread, coming back from a decode or an inference that released it,
waited for it: the app lost 3-7 % of its frames per second (examples/embed_app.py). Here the app's process
runs no edgeprobe thread at all and loads no model session for it.

Started with ``python -m edgeprobe.agent.sdk_process DIR DATA_FD RETURN_FD RESULT_FD``; the first message is
the resolved configuration. It answers ``ready`` (or ``failed`` with the one sentence a bad model or config
gives), periodic ``stats`` and, at the end, ``closed`` with its final counters. It ends when the app calls
``close()`` or when the app's end of the channel closes (the app exited or was killed): then it still sends
the last window and the death message and flushes the spool, so nothing measured is lost.
"""

from __future__ import annotations

import logging
import os
import platform
import select
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from edgeprobe import __version__
from edgeprobe.agent import transport
from edgeprobe.agent.config import LoadedConfig
from edgeprobe.agent.frame_channel import Received, Receiver, Writer
from edgeprobe.agent.memory import peak_rss_mb
from edgeprobe.agent.messages import Messenger
from edgeprobe.agent.monitor import Monitor
from edgeprobe.agent.pipeline import open_pipeline
from edgeprobe.agent.probe_process import open_worker
from edgeprobe.agent.prober import Prober
from edgeprobe.agent.reporter import Reporter
from edgeprobe.agent.spool import Spool
from edgeprobe.harness import perturbations, schema
from edgeprobe.harness.errors import EdgeprobeError
from edgeprobe.harness.latency import FLAGGED_STAGES

log = logging.getLogger("edgeprobe.sdk")

#: how often the process wakes to take what the app handed over. It is never woken per frame: woken by the
#: app's write, the scheduler ran it on the app's own core, cache-hot, and the app waited (observe() of a
#: kept frame took 0.36 ms at the median, 1.7 ms at p90, against 0.04 ms for the copy itself)
POLL_S = 0.02
#: seconds the final ``closed`` message may take to reach an app that is still reading
CLOSE_WRITE_S = 5.0

#: one frame as the app handed it over: (index, capture ns, stage timings ns, due for probing)
Row = tuple[int, int, dict[str, int], bool]


class SdkHost:
    """The attached app's monitor: the standalone agent's reporting parts, fed with the app's frames."""

    def __init__(self, loaded: LoadedConfig, app_pid: int, flush_timeout: float):
        cfg = self.cfg = loaded.config
        self.app_pid = app_pid
        self.flush_timeout = flush_timeout
        # The app runs its own session for the deployed path; this process's one session is the probe worker's.
        model = msgspec.structs.replace(cfg.model, threads=cfg.probe.threads)
        self.pipeline = open_pipeline(model, cfg.task)
        adapter = self.adapter = self.pipeline.adapter
        # This process is the isolation from the app: the worker is a thread here (at the lowest priority).
        probe_cfg = msgspec.structs.replace(cfg.probe, isolation="thread")
        self.prober = Prober(probe_cfg, self.pipeline.predict, adapter.disagreement, adapter.threshold,
                             adapter=adapter, input_hw=self.pipeline.input_hw)
        self.probing = probe_cfg.enabled and bool(self.prober.plan)
        self.worker = open_worker(self.prober, self.pipeline, cfg.task, wait=cfg.probe.backpressure == "wait",
                                  probing=self.probing, session_is_free=True, sees_loop=False)
        self.spool = Spool(cfg.spool.path, cfg.spool.max_rows, cfg.spool.max_bytes, exclusive=True)
        self.messenger = Messenger(self.spool, cfg.device_id, cfg.fleet, model_sha256=self.pipeline.backend.sha256,
                                   config_sha256=loaded.sha256)
        self.monitor = Monitor(cfg.monitor, cfg.device_id, adapter, self.pipeline.backend.sha256, cfg.probe.seed)
        self.reporter = Reporter(self.messenger, self.prober, self.worker, self.monitor, self._latency_extras,
                                 self._status, lambda: [])
        #: frames handed over, frames whose processing raised (counted, logged once)
        self.frames = 0
        self.errors = 0
        self.app_dropped = 0
        self._failed: set[str] = set()
        #: do the app's outputs have the shapes this process's session gives for the same frame? (None: not
        #: seen yet) Probes compare the app's answer with this session's on perturbed frames, so they must
        self._outputs_fit: bool | None = None
        self._win_first: int | None = None
        self._win_start, self._win_t0 = schema.utc_now(), time.monotonic()
        self._last = -1
        self.publisher = transport.start(cfg.broker, cfg.device_id, self.messenger, self.spool, self._birth_body())

    @property
    def probe_every(self) -> int:
        """Frames the app marks due itself (one in N); 0 when this process picks them (cpu_share) or none are."""
        p = self.prober.cfg
        return p.every_n_frames if self.probing and p.cpu_share is None else 0

    # --- frames ------------------------------------------------------------------------------------

    def take(self, msg: Received) -> None:
        """One batch of rows from the app; the last row's pixels and outputs are in the slot when it has them."""
        _, rows, pixels, has_outputs, app_dropped = msg.meta
        self.app_dropped = max(self.app_dropped, app_dropped)
        last = len(rows) - 1
        try:
            for k, row in enumerate(rows):
                image = outputs = None
                if pixels and k == last:
                    image = msg.arrays[0]
                    # a decoded prediction may be a view of the outputs: they must outlive the slot
                    outputs = [a.copy() for a in msg.arrays[1:]] if has_outputs else None
                self._guarded("frame", lambda: self._row(row, image, outputs))  # noqa: B023 (called at once)
        finally:
            msg.release()

    def _row(self, row: Row, image: np.ndarray | None, outputs: list[np.ndarray] | None) -> None:
        index, t_ns, timings, probe = row
        # The window closes when the frame after its last arrives, so probes still running when its last frame
        # came (and, at close, every probe) land in a window instead of after the last one.
        first = self._win_first
        if first is not None and (self._last - first + 1 >= self.cfg.windows.frames
                                  or time.monotonic() - self._win_t0 >= self.cfg.windows.seconds):
            self._guarded("window", lambda: self.reporter.emit(first, self._last, self._win_start))
            self._win_first = None
        if self._win_first is None:
            self._win_first, self._win_start, self._win_t0 = index, schema.utc_now(), time.monotonic()
        self._last = index
        self.frames += 1
        if timings and "e2e" not in timings:
            timings["e2e"] = sum(timings.values())
        if timings:
            self.reporter.latency.add_frame(timings)
        prediction = None
        if outputs is not None:
            try:
                prediction = self.adapter.decode(outputs)
            except Exception as exc:  # the frame still counts for the monitor: its sampling stays in step
                self._fail("decode", f"the app's outputs ({', '.join(str(o.shape) for o in outputs)}) do not "
                                     f"decode as {self.adapter.name} for this model: {exc}")
        self._guarded("monitor", lambda: self._monitor(image, prediction, t_ns))
        self.prober.seen()
        # cpu_share mode: probe among the frames copied anyway, when the share has room
        probe = probe or (self.probing and self.probe_every == 0 and image is not None and self.prober.wants(index))
        if probe and image is not None and prediction is not None and outputs is not None \
                and self._outputs_match(image, outputs):
            self.worker.offer(image, prediction, index, self.monitor.slice_keys)

    def _outputs_match(self, image: np.ndarray, outputs: list[np.ndarray]) -> bool:
        """Once, on the first frame due for probing: the app's outputs against this session's on that frame.

        An app that feeds a model with a dynamic input another size than ``model.input_size`` gets outputs of
        another shape (a text detector's mask), and every probe would fail comparing them ("masks differ in
        shape"); one sentence says what to set instead, and probing stops for the run.
        """
        if self._outputs_fit is None:
            mine = [np.shape(o) for o in self.pipeline.outputs(image)]
            theirs = [np.shape(o) for o in outputs]
            self._outputs_fit = mine == theirs
            if not self._outputs_fit:
                h, w = self.pipeline.input_hw
                self.errors += 1
                log.warning("the app's model outputs have shapes %s but this model gives %s at model.input_size "
                            "%dx%d: the app feeds its model frames of another size, so probes would compare "
                            "answers of different sizes; set model.input_size to the size the app resizes to "
                            "(height, width); probing is off for this run", theirs, mine, h, w)
        return self._outputs_fit

    def _monitor(self, image: np.ndarray | None, prediction: Any, t_ns: int) -> None:
        for event in self.monitor.observe(image, prediction, t_ns):
            self.messenger.send("event", event)

    def _fail(self, kind: str, sentence: str) -> None:
        """Count a failure and name it once (without a traceback: the sentence says what to fix)."""
        self.errors += 1
        if kind not in self._failed:
            self._failed.add(kind)
            log.warning("%s; later failures of this kind are counted in stats()['errors']", sentence)

    def _guarded(self, kind: str, step: Callable[[], object]) -> None:
        """Run one step of the SDK's own work; a bug in it is counted and logged once, never the end of it."""
        try:
            step()
        except Exception:
            self.errors += 1
            if kind not in self._failed:
                self._failed.add(kind)
                log.exception("edgeprobe's SDK could not do its %s work; it goes on, later failures are counted",
                              kind)

    def tick(self) -> None:
        """Between messages: fold finished probes into the window."""
        self._guarded("probe", self.reporter.collect)

    def finish(self, reason: str) -> None:
        """Probe what is queued, send the last window and the death message, flush the spool, stop."""
        self._guarded("probe", self.worker.drain)
        first = self._win_first
        if first is not None:
            self._guarded("window", lambda: self.reporter.emit(first, self._last, self._win_start))
            self._win_first = None
        self._guarded("probe", self.worker.close)
        self._guarded("death", lambda: self.messenger.send("death", {"reason": reason, "frames": self.frames}))
        self._guarded("spool", lambda: transport.stop(self.publisher, self.spool, self.flush_timeout))
        self._guarded("spool", self.spool.close)

    def counters(self) -> dict[str, Any]:
        return {"processed": self.frames, "errors": self.errors,
                "probe_dropped": self.prober.run_dropped + self.prober.dropped, "probe_errors": self.worker.errors,
                "messages": dict(self.messenger.sent)}

    # --- what the reporter asks ---------------------------------------------------------------------

    def _app_peak_rss_mb(self) -> float:
        """The application's peak resident memory (the process being monitored; this one's is apart)."""
        return peak_rss_mb(self.app_pid)

    def _status(self) -> dict[str, Any]:
        return {"spool_queued": self.spool.pending(), "spool_dropped": self.spool.dropped(),
                "rss_mb": self._app_peak_rss_mb(), "frames_dropped": self.app_dropped}

    def _latency_extras(self, body: schema.LatencyBody) -> None:
        body.mode = "embedded"
        body.flags = [f"{stage}: {w}" for stage, s in body.stages.items() for w in s.warnings
                      if stage in FLAGGED_STAGES and w.startswith("unstable")]
        body.peak_rss_mb = round(self._app_peak_rss_mb(), 1)

    def _birth_body(self) -> dict[str, Any]:
        return {
            "model": self.pipeline.backend.describe(),
            "source": {"kind": "embedded", "pid": self.app_pid},
            "host": {"platform": platform.platform(), "machine": platform.machine(),
                     "python": platform.python_version(), "cpus": os.cpu_count()},
            "capabilities": {
                "agent_version": __version__, "task": self.adapter.name, "perturbations": perturbations.names(),
                "probe": {"every_n_frames": self.cfg.probe.every_n_frames, "seed": self.cfg.probe.seed},
                "commands": [], "session_id": self.messenger.session_id, "embedded": True,
            },
        }


def _tell(out: Writer, message: Any, timeout: float = 0.0) -> None:
    """Send the app a message, flushing for up to ``timeout`` s (the writer does not block); an app that has
    gone reads nothing, and that is no error here: its channel's EOF ends the loop."""
    try:
        out.write(message)
        deadline = time.monotonic() + timeout
        while out.backlog and out.fd >= 0 and time.monotonic() < deadline:
            select.select([], [out.fd], [], 0.05)
            out.flush()
    except OSError:
        out.close()


def serve(receiver: Receiver, out: Writer) -> int:
    """Build the host from the first message, then process the app's frames until it closes or goes."""
    first = receiver.receive()
    assert first is not None
    _, loaded, app_pid, flush_timeout = first.meta
    try:
        host = SdkHost(loaded, app_pid, flush_timeout)
    except EdgeprobeError as exc:  # one sentence for the app's attach() to raise
        _tell(out, ("failed", type(exc).__name__, str(exc)), CLOSE_WRITE_S)
        return 2
    _tell(out, ("ready", host.probe_every), CLOSE_WRITE_S)
    reason = "closed"
    sent_windows = 0
    try:
        while True:
            try:
                msg = receiver.receive(timeout=0)
            except EOFError:
                reason = "application exited"  # gone without close(): what it measured still goes out
                break
            if msg is not None:
                if msg.meta[0] == "close":
                    break
                host.take(msg)
                continue  # take everything that has arrived before looking at probes
            host.tick()
            windows = host.messenger.sent.get("latency", 0)
            if windows != sent_windows:  # counters for the app's stats(), once a window; dropped if unread
                sent_windows = windows
                _tell(out, ("stats", host.counters()))
            time.sleep(POLL_S)
    finally:
        host.finish(reason)
        _tell(out, ("closed", host.counters()), CLOSE_WRITE_S)
    return 0


def main(argv: list[str]) -> int:
    """``python -m edgeprobe.agent.sdk_process DIR DATA_FD RETURN_FD RESULT_FD``."""
    logging.basicConfig(level=logging.WARNING, format="edgeprobe sdk: %(message)s")
    # The app comes first: on a saturated board monitoring falls behind (counted drops), not the app. 10, not 19:
    # a starved monitor sees nothing; the probe thread goes to 19 on its own.
    os.nice(10)
    directory, data_fd, return_fd, result_fd = argv
    receiver = Receiver(Path(directory), int(data_fd), int(return_fd))
    out = Writer(int(result_fd), block=False)
    try:
        return serve(receiver, out)
    except EOFError:  # the app went before it sent the configuration
        return 0
    finally:
        receiver.close()
        out.close()
        shutil.rmtree(directory, ignore_errors=True)  # an app killed before close() leaves the slot files


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
