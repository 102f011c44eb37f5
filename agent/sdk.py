"""The SDK: monitor a production application's own loop without disturbing it.

::

    import edgeprobe
    probe = edgeprobe.attach("agent.yaml")      # model, task, probe, monitor, broker/spool; no source
    ...
    probe.observe(frame, outputs, timings={"preprocess": ns, "inference": ns})
    ...
    probe.close()

The application owns the camera and its model session. :meth:`Probe.observe` only hands over what the app
already has, and returns in microseconds: the frame's stage timings (batched, a pipe write every few
frames) and, for the frames something will look at (one the monitor samples, its predecessor, one due for
probing), a copy of the pixels and the raw outputs into a shared-memory slot. It never blocks and never
raises into the app; what cannot be handed over (no free slot: the SDK's process is behind) is counted and
reported. Everything else (decoding the outputs with the task adapter, latency windows, health, drift,
probes on a model session of its own, the spool and MQTT) runs in the SDK's own process
(agent/sdk_process.py), so the app's interpreter runs no edgeprobe thread and loads no model for it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import subprocess
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeprobe.agent.config import LoadedConfig, load_config
from edgeprobe.agent.frame_channel import Reader, Sender, spawn_helper
from edgeprobe.harness import errors

log = logging.getLogger("edgeprobe.sdk")

#: frames whose pixels can wait for the SDK's process at once (shared-memory slots, each made when first
#: needed: a process that keeps up uses two or three), and the shared memory they may take in all
SLOTS = 32
SLOT_BYTES = 64 << 20
#: seconds attach() waits for the SDK's process to load its model session
START_TIMEOUT_S = 120.0
#: the one pixel type observe() takes (numpy's dtype singleton: an identity test is the fast check)
_UINT8 = np.dtype(np.uint8)
#: frames whose timings go together in one message (a kept frame sends its batch at once)
BATCH_ROWS = 16
#: seconds close() waits beyond the spool's flush timeout before it stops the SDK's process
STOP_MARGIN_S = 30.0


class Probe:
    """An attached monitor. Create it with :func:`attach`; call :meth:`observe` per frame and :meth:`close`."""

    def __init__(self, loaded: LoadedConfig, flush_timeout: float = 10.0):
        self.cfg = loaded.config
        self.flush_timeout = flush_timeout
        self.every = self.cfg.monitor.health.every_n_frames
        #: observe() calls, frames not (wholly) handed over, errors swallowed to protect the app
        self.observed = 0
        self.dropped = 0
        self.errors = 0
        self._handed = 0
        self._lock = threading.Lock()
        self._warned: set[str] = set()
        #: rows not sent yet, shared with the finalizer, which sends them when the app exits without close()
        self._batch = _Batch()
        self._closing = False
        self._closed = False
        self._gone_logged = False
        self._counters: dict[str, Any] = {}
        data_r, data_w = os.pipe()
        ret_r, ret_w = os.pipe()
        res_r, res_w = os.pipe()
        self._sender = Sender(SLOTS, data_w, ret_r, max_bytes=SLOT_BYTES)
        self._results = Reader(res_r, block=False)
        self._proc = spawn_helper("edgeprobe.agent.sdk_process", self._sender.directory, (data_r, ret_w, res_w))
        # an app that never calls close() still gets its last window sent: the SDK's process sees the channel
        # close (here, or when this process ends) and finishes on its own
        self._finalizer = weakref.finalize(self, _release, self._sender, self._results, self._proc, self._batch)
        self._sender.send(("config", loaded, os.getpid(), flush_timeout))
        self._probe_every = self._wait_ready()

    def _wait_ready(self) -> int:
        """The SDK process's answer to the configuration: its model is loaded (or one sentence why not)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for msg in self._read():
                if msg[0] == "ready":
                    return int(msg[1])
                if msg[0] == "failed":
                    self._stop(kill=True)
                    cls = getattr(errors, msg[1], errors.EdgeprobeError)
                    raise (cls if isinstance(cls, type) and issubclass(cls, errors.EdgeprobeError)
                           else errors.EdgeprobeError)(msg[2])
            if self._proc.poll() is not None:
                self._stop(kill=True)
                raise errors.ModelError(f"edgeprobe's SDK process exited (code {self._proc.returncode}) before its "
                                        "model session was ready; its own error is on this process's stderr "
                                        "above")
            self._sender.flush()
            select.select([self._results.fd], [], [], 0.05)
        self._stop(kill=True)
        raise errors.ModelError(f"edgeprobe's SDK process did not load its model within {START_TIMEOUT_S:.0f} s")

    @property
    def pid(self) -> int:
        """The SDK's own process (for the app's supervision: it is a child of the app, like any it starts)."""
        return self._proc.pid

    def _read(self) -> list[Any]:
        """What the SDK's process has sent, without waiting; the latest counters are kept for stats()."""
        msgs = self._results.ready()
        for msg in msgs:
            if msg[0] in ("stats", "closed"):
                self._counters = msg[1]
        return msgs

    # --- the application's thread ------------------------------------------------------------------

    def observe(self, frame: np.ndarray, outputs: Sequence[np.ndarray] | None = None,
                timings: Mapping[str, int] | None = None) -> None:
        """Hand over one frame the app processed, its raw model outputs and its stage timings (ns).

        ``frame``: the uint8 image the model saw (HxW, HxWx1 or HxWx3, BGR as read by OpenCV); ``outputs``: the
        model's outputs in its output order, as ``session.run`` returns them; ``timings``: the app's own stage
        times in integer nanoseconds (e.g. ``preprocess``, ``inference``, ``postprocess``; ``e2e`` is their sum
        unless given). Returns at once and never raises: a frame it cannot use is counted in ``stats()["errors"]``
        and named once in the log. Safe from several threads (one at a time).
        """
        with self._lock:
            self.observed += 1
            if self._closing or self._gone_logged:
                return
            try:
                frame = _checked_frame(frame)
                outs = _checked_outputs(outputs)
                t = _checked_timings(timings)
                self._hand_over(frame, outs, t)
            except ObserveError as exc:
                self.errors += 1
                self._warn_once(exc.kind, f"edgeprobe observe() skipped a frame: {exc}; later ones are counted "
                                          "in stats()['errors']")
            except Exception:  # the app must never see our failure
                self.errors += 1
                if "internal" not in self._warned:
                    self._warned.add("internal")
                    log.exception("edgeprobe observe failed; the app goes on, later failures are counted")

    def _hand_over(self, frame: np.ndarray, outputs: list[np.ndarray] | None, timings: dict[str, int]) -> None:
        # Frames are numbered by what was handed over, not by observe() calls: the SDK's process counts the
        # rows it gets, and its monitor's sampling must fall on the frames whose pixels came with them.
        n = self._handed
        self._handed += 1
        probe = self._probe_every > 0 and n % self._probe_every == 0
        self._batch.rows.append((n, time.perf_counter_ns(), timings, probe))
        # Pixels only where they will be looked at: a frame the monitor samples or its predecessor (motion,
        # flips), or one due for probing. They are copied now: applications reuse their buffers.
        if probe or n % self.every == 0 or (n + 1) % self.every == 0:
            arrays = [frame, *outputs] if outputs else [frame]
            if self._send(True, bool(outputs), arrays):
                return
            self.dropped += 1  # no free slot or past the memory budget: the timings still go
            if sum(a.nbytes for a in arrays) > SLOT_BYTES:
                self._warn_once("huge", f"edgeprobe observe(): a {frame.shape} frame is larger than the SDK's "
                                        f"{SLOT_BYTES >> 20} MiB of shared memory; its pixels are not monitored")
        if len(self._batch.rows) >= BATCH_ROWS:
            self._send(False, False)

    def _warn_once(self, kind: str, sentence: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("%s", sentence)

    def _send(self, pixels: bool, has_outputs: bool, arrays: Sequence[np.ndarray] = ()) -> bool:
        """Send the pending rows (with the last one's arrays); False when refused (the rows stay pending)."""
        try:
            ok = self._sender.send(("frames", self._batch.rows, pixels, has_outputs, self.dropped), arrays)
        except OSError:  # the SDK's process is gone (a broken pipe)
            self._lost()
            return False
        if ok:
            self._batch.rows = []
        elif len(self._batch.rows) > 64 * BATCH_ROWS:  # the SDK's process has stalled: drop what waits, count it
            self.dropped += len(self._batch.rows)
            self._batch.rows = []
        return ok

    def _lost(self) -> None:
        if not self._gone_logged:
            self._gone_logged = True
            log.warning("edgeprobe's SDK process has exited (code %s); observe() does nothing from now on",
                        self._proc.poll())

    def close(self) -> None:
        """Finish: probe what is queued, send the last window and a death message, flush, stop. Safe twice;
        never raises."""
        with self._lock:
            if self._closed:
                return
            self._closing = True
            try:
                if self._batch.rows:
                    self._send(False, False)
                if self._proc.poll() is None:
                    self._sender.send(("close",))
                    deadline = time.monotonic() + self.flush_timeout + STOP_MARGIN_S
                    while time.monotonic() < deadline and not any(m[0] == "closed" for m in self._read()):
                        if self._proc.poll() is not None:
                            self._read()
                            break
                        self._sender.flush()
                        select.select([self._results.fd], [], [], 0.05)
            except OSError:  # the SDK's process went meanwhile: what it had spooled stays in the spool
                self._lost()
            except Exception:
                log.exception("edgeprobe close() failed; the app goes on")
            finally:
                self._stop(kill=False)
                self._closed = True

    def _stop(self, kill: bool) -> None:
        """Wait for the SDK's process to exit (it has been told to, or its channel is closing), then release."""
        self._finalizer()
        try:
            self._proc.wait(1.0 if kill else STOP_MARGIN_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def stats(self) -> dict[str, Any]:
        """Counters for the app's own logs: frames observed, dropped, errors, messages sent per kind (the SDK's
        process's figures as of its last window, or its final ones after close())."""
        if not self._closed:
            self._read()
        c = self._counters
        return {"alive": self._proc.poll() is None and not self._gone_logged, "observed": self.observed,
                "processed": c.get("processed", 0), "dropped": self.dropped,
                "probe_dropped": c.get("probe_dropped", 0), "errors": self.errors + c.get("errors", 0),
                "probe_errors": c.get("probe_errors", 0), "messages": dict(c.get("messages", {}))}

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ObserveError(ValueError):
    """What observe() cannot use, in one sentence; ``kind`` names the problem, so each is logged once."""

    def __init__(self, kind: str, sentence: str):
        super().__init__(sentence)
        self.kind = kind


def _checked_frame(frame: Any) -> np.ndarray:
    # the common case first, in exact types: observe() runs once a frame with the app's caches cold, where the
    # general checks (ABC isinstance, dtype comparison objects) cost ~15 us of its ~30
    if type(frame) is np.ndarray and frame.dtype is _UINT8 and frame.size:
        shape = frame.shape
        if len(shape) == 2 or (len(shape) == 3 and shape[2] in (1, 3)):
            return frame
    if not isinstance(frame, np.ndarray):
        raise ObserveError("frame", f"the frame must be a numpy array (the image the model saw), got "
                                    f"{type(frame).__name__}")
    if frame.dtype != np.uint8 or frame.size == 0 or not (
            frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] in (1, 3))):
        raise ObserveError("pixels", f"the frame must be a uint8 image, HxW, HxWx1 or HxWx3 (BGR, as OpenCV reads "
                                    f"it), got {frame.dtype} {frame.shape}; pass the frame before preprocessing")
    return frame


def _checked_outputs(outputs: Any) -> list[np.ndarray] | None:
    if outputs is None:
        return None
    if type(outputs) is list:
        for o in outputs:
            if type(o) is not np.ndarray:
                break
        else:
            return outputs  # what session.run returns (only copied from, at once)
    if isinstance(outputs, np.ndarray):
        return [outputs]  # one output handed over bare
    if isinstance(outputs, Mapping) or not isinstance(outputs, Sequence):
        raise ObserveError("outputs", f"the outputs must be a list of arrays in the model's output order (what "
                                      f"session.run returns), got {type(outputs).__name__}")
    return [np.asarray(o) for o in outputs]


def _checked_timings(timings: Any) -> dict[str, int]:
    if not timings:
        return {}
    if type(timings) is dict:
        for stage, value in timings.items():
            if type(value) is not int or value < 0 or type(stage) is not str:
                break
        else:
            return dict(timings)  # integer nanoseconds under string names: nothing to convert (a copy: apps reuse)
    if not isinstance(timings, Mapping):
        raise ObserveError("timings", f"timings must map a stage name to nanoseconds, got {type(timings).__name__}")
    out: dict[str, int] = {}
    for stage, value in timings.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not math.isfinite(value) or value < 0:
            raise ObserveError("timings", f"timing {stage!r} must be a number of nanoseconds >= 0, got {value!r}")
        if 0 < value < 1 and isinstance(value, (float, np.floating)):
            raise ObserveError("seconds", f"timing {stage!r} is {value!r}: timings are integer nanoseconds "
                                          "(time.perf_counter_ns()), not seconds")
        out[str(stage)] = int(value)
    return out


class _Batch:
    """The rows observe() has not sent yet (a holder the finalizer can see without keeping the Probe alive)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, dict[str, int], bool]] = []


def _release(sender: Sender, results: Reader, proc: subprocess.Popen[bytes], batch: _Batch) -> None:
    """Close this side of the channel: the SDK's process sees EOF, sends what it has and exits by itself.

    Run by close(), or when the app exits without it: then the rows not sent yet go first, and the slot files
    stay for the SDK's process to read (it removes them as it exits)."""
    running = proc.poll() is None
    if running and batch.rows:
        with contextlib.suppress(OSError):
            sender.send(("frames", batch.rows, False, False, 0))
            deadline = time.monotonic() + 2.0  # the last write of this process: let it through whole
            while sender.writer.backlog and time.monotonic() < deadline:
                select.select([], [sender.writer.fd], [], 0.05)
                sender.flush()
    sender.close(unlink=not running)
    results.close()


def attach(config: str | Path | LoadedConfig, overrides: dict[str, Any] | None = None,
           flush_timeout: float = 10.0) -> Probe:
    """Attach edgeprobe to this process's own loop (see the module docstring); raises ConfigError/ModelError
    with one sentence on a bad config, before the app's loop starts."""
    loaded = config if isinstance(config, LoadedConfig) else load_config(config, overrides)
    return Probe(loaded, flush_timeout)
