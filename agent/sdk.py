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

import logging
import os
import select
import subprocess
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
        self._rows: list[tuple[int, int, dict[str, int], bool]] = []
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
        self._finalizer = weakref.finalize(self, _release, self._sender, self._results)
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
                                        "model session was ready; run with the same config under `edgeprobe "
                                        "validate` to see why")
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

        ``timings`` are the app's own (e.g. ``preprocess``, ``inference``, ``postprocess``); ``e2e`` is their sum
        unless given. Returns at once; never raises.
        """
        try:
            i = self.observed
            self.observed += 1
            if self._closing or self._gone_logged:
                return
            if not isinstance(frame, np.ndarray):
                raise TypeError(f"observe() takes the frame as a numpy array, got {type(frame).__name__}")
            probe = self._probe_every > 0 and i % self._probe_every == 0
            t = {k: int(v) for k, v in timings.items()} if timings else {}
            self._rows.append((i, time.perf_counter_ns(), t, probe))
            # Pixels only where they will be looked at: a frame the monitor samples or its predecessor (motion,
            # flips), or one due for probing. They are copied now: applications reuse their buffers.
            if probe or i % self.every == 0 or (i + 1) % self.every == 0:
                arrays = [frame, *(np.asarray(o) for o in outputs)] if outputs else [frame]
                if self._send(True, bool(outputs), arrays):
                    return
                self.dropped += 1  # no free slot: the SDK's process is behind; the timings still go
            if len(self._rows) >= BATCH_ROWS:
                self._send(False, False)
        except Exception:  # the app must never see our failure
            self.errors += 1
            if self.errors == 1:
                log.exception("edgeprobe observe failed; the app goes on, later failures are counted")

    def _send(self, pixels: bool, has_outputs: bool, arrays: Sequence[np.ndarray] = ()) -> bool:
        """Send the pending rows (with the last one's arrays); False when refused (the rows stay pending)."""
        try:
            ok = self._sender.send(("frames", self._rows, pixels, has_outputs, self.dropped), arrays)
        except OSError:  # the SDK's process is gone (a broken pipe)
            self._lost()
            return False
        if ok:
            self._rows = []
        elif len(self._rows) > 64 * BATCH_ROWS:  # the SDK's process has stalled: drop what waits, count it
            self.dropped += len(self._rows)
            self._rows = []
        return ok

    def _lost(self) -> None:
        if not self._gone_logged:
            self._gone_logged = True
            log.warning("edgeprobe's SDK process has exited (code %s); observe() does nothing from now on",
                        self._proc.poll())

    def close(self) -> None:
        """Finish: probe what is queued, send the last window and a death message, flush, stop. Safe twice."""
        if self._closed:
            return
        self._closing = True
        try:
            if self._rows:
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
            self._stop(kill=False)
        finally:
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
        return {"observed": self.observed, "processed": c.get("processed", 0), "dropped": self.dropped,
                "probe_dropped": c.get("probe_dropped", 0), "errors": self.errors + c.get("errors", 0),
                "probe_errors": c.get("probe_errors", 0), "messages": dict(c.get("messages", {}))}

    def __enter__(self) -> Probe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _release(sender: Sender, results: Reader) -> None:
    """Close this side of the channel: the SDK's process sees EOF, sends what it has and exits by itself."""
    sender.close()
    results.close()


def attach(config: str | Path | LoadedConfig, overrides: dict[str, Any] | None = None,
           flush_timeout: float = 10.0) -> Probe:
    """Attach edgeprobe to this process's own loop (see the module docstring); raises ConfigError/ModelError
    with one sentence on a bad config, before the app's loop starts."""
    loaded = config if isinstance(config, LoadedConfig) else load_config(config, overrides)
    return Probe(loaded, flush_timeout)
