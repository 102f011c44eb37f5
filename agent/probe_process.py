"""Probes in a process of their own: the deployed loop never waits for the probe's interpreter lock.

The thread worker (agent/probe_worker.py) keeps probing off the frame loop's time, but not off its lock: the
probe's Python work (perturbation glue, disagreement, breaking-point bisection) holds the interpreter lock,
and the loop, coming back from a decode or an inference that released it, waits for it. Measured on the demo
(benchmarks/probing.py), that wait raised the deployed path's e2e p50 by 16 % and its p99 by x1.6.

:class:`ProbeProcess` has the thread worker's interface (offer, search, take, drain, close) and runs the same
:class:`~edgeprobe.agent.prober.Prober` work in a child process started with ``python -m
edgeprobe.agent.probe_process`` (a fresh interpreter: nothing of the application is re-imported, unlike
multiprocessing's spawn, and no thread of the parent is forked). Due frames travel through shared-memory
slots (agent/frame_channel.py), one per queued frame (``probe.queue``); results come back pickled. The child
lowers its own priority to nice 19, so on a board whose cores are busy the probe gets what the deployed path
leaves. It keeps the views of its recent results, so a breaking-point search is sent as frame indices only.

If the child cannot start or dies, probing stops with one log line and due frames are counted as dropped;
the deployed path goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import subprocess
import sys
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from edgeprobe.agent.config import ModelConfig, ProbeConfig, TaskConfig
from edgeprobe.agent.frame_channel import Reader, Receiver, Sender, Writer, spawn_helper
from edgeprobe.agent.idle_gate import IdleGate, LoopClock, gated, use_idle_time
from edgeprobe.agent.memory import peak_rss_mb
from edgeprobe.agent.pipeline import Pipeline
from edgeprobe.agent.probe_worker import ProbeWorker
from edgeprobe.agent.prober import BreakingResult, Prober, ProbeResult
from edgeprobe.harness.errors import ModelError

log = logging.getLogger("edgeprobe.probe")

Result = ProbeResult | BreakingResult

#: the loop clock's page, next to the slot files
CLOCK = "clock"
#: seconds the child may take to load its model session before a waiting caller gives up on it
START_TIMEOUT_S = 120.0
#: seconds close() waits for the child to finish its queue and exit before it is killed
STOP_TIMEOUT_S = 30.0
#: seconds drain() waits for the jobs sent so far (a breaking-point search on a slow board takes tens)
DRAIN_TIMEOUT_S = 120.0


class WorkerSpec(msgspec.Struct):
    """What the child needs to build its own model session and prober (all plain, resolved configuration)."""

    model: ModelConfig
    task: TaskConfig
    probe: ProbeConfig
    input_hw: tuple[int, int] | None
    #: gate every probe inference on the loop's idle time (agent/idle_gate.py; the page is DIR/clock)
    idle: bool = False


class ProbeProcess:
    """A probe worker in a child process; ``offer`` never raises and blocks only in ``wait`` mode."""

    def __init__(self, prober: Prober, spec: WorkerSpec, *, size: int = 2, wait: bool = False):
        self.prober = prober
        self.wait = wait
        #: probe jobs that failed in the child, or due frames lost because the child is gone
        self.errors = 0
        self._done: deque[Result] = deque()
        #: the child's VmHWM, read when it is closed (a reaped child's /proc entry is gone): the agent's own
        #: peak does not include the probes' interpreter and session, which live here
        self.peak_rss_mb = 0.0
        self._drains = 0
        self._dead_logged = False
        data_r, data_w = os.pipe()
        ret_r, ret_w = os.pipe()
        res_r, res_w = os.pipe()
        self.sender = Sender(size, data_w, ret_r)
        self.results = Reader(res_r, block=False)
        self.proc = spawn_helper("edgeprobe.agent.probe_process", self.sender.directory, (data_r, ret_w, res_w))
        #: the loop stamps its frames here when probes wait for its idle time (None: they do not)
        self.clock = LoopClock(self.sender.directory / CLOCK) if spec.idle else None
        self.sender.send(("spec", msgspec.to_builtins(spec)))
        self._res_fd = res_r
        # an owner that never calls close() (an Agent built but never run) must not leave the child behind
        self._finalizer = weakref.finalize(self, _reap, self.proc, self.sender, self.results, self.clock)
        self._ready = False
        self._wait_ready(START_TIMEOUT_S)

    def _wait_ready(self, timeout: float) -> None:
        """Wait for the child's session: its imports and model load must not overlap the first measured frames
        (the thread worker's session is loaded before the loop starts too)."""
        deadline = time.monotonic() + timeout
        while not self._ready and not self._gone() and time.monotonic() < deadline:
            self._pump(timeout=0.05)
        if not self._ready and self.alive:
            log.warning("the probe process is not ready after %.0f s; due frames are dropped until it is", timeout)

    # --- the loop's side --------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _gone(self) -> bool:
        if self.alive:
            return False
        if not self._dead_logged:
            self._dead_logged = True
            log.warning("the probe process exited (code %s); probing stops, frames go on", self.proc.returncode)
        return True

    def _wait_for_slot(self) -> bool:
        while not self.sender.free_slots:
            if self._gone():
                return False
            self._pump(timeout=0.05)
        return True

    def offer(self, image: np.ndarray, prediction: Any, frame_index: int, context: Any = None) -> bool:
        """Copy a due frame into a slot for the child; False (counted as dropped) if none is free."""
        try:
            if self._gone() or (self.wait and not self._wait_for_slot()):
                ok = False
            else:
                ok = self.sender.send(("probe", frame_index, prediction, context), [np.ascontiguousarray(image)])
        except Exception:  # never into the loop
            log.exception("handing a frame to the probe process failed; continuing")
            ok = False
        if not ok:
            self.prober.dropped += 1
        return ok

    def search(self, sample: list[tuple[int, np.ndarray, Any]]) -> bool:
        """Queue a breaking-point search; the child holds the views of its own results, so indices suffice."""
        if self._gone():
            return False
        return self.sender.send(("search", [index for index, _, _ in sample]))

    def _pump(self, timeout: float = 0.0) -> None:
        """Move what the child has sent into ``_done`` (waiting up to ``timeout`` for something to arrive)."""
        self.sender.flush()
        if timeout > 0:
            select.select([self._res_fd], [], [], timeout)
        for msg in self.results.ready():
            kind = msg[0]
            if kind == "result":
                self._done.append(msg[1])
            elif kind == "error":
                self.errors += 1
                if self.errors == 1:
                    log.error("a probe job failed in the probe process: %s (later failures are counted)", msg[1])
            elif kind == "drained":
                self._drains = max(self._drains, msg[1])
            elif kind == "ready":
                self._ready = True

    def take(self) -> list[Result]:
        """Results finished since the last call, oldest first (never waits)."""
        self._pump()
        out = list(self._done)
        self._done.clear()
        return out

    def drain(self, timeout: float = DRAIN_TIMEOUT_S) -> None:
        """Wait until every job sent so far has finished (or the child is gone, or ``timeout``)."""
        token = self._drains + 1
        if self._gone() or not self.sender.send(("drain", token)):
            return
        deadline = time.monotonic() + timeout
        while self._drains < token and not self._gone() and time.monotonic() < deadline:
            self._pump(timeout=0.05)

    def close(self, finish: bool = True) -> None:
        """Stop the child, after its queued jobs when ``finish``; safe to call twice."""
        if self.proc.returncode is None:
            if finish:
                self.drain()
            self.peak_rss_mb = peak_rss_mb(self.proc.pid)
            if finish:
                self.sender.send(("stop",))
                self.sender.flush()
            self.sender.writer.close()  # EOF: the child stops after what it has read
            try:
                self.proc.wait(STOP_TIMEOUT_S if finish else 1.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._pump()
        self._finalizer()


def _reap(proc: subprocess.Popen[bytes], sender: Sender, results: Reader, clock: LoopClock | None) -> None:
    """Close the channel (the child sees EOF and exits), give it a moment, then make sure it is gone."""
    if clock is not None:
        clock.close()
    sender.close()
    results.close()
    if proc.poll() is None:
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


AnyWorker = ProbeWorker | ProbeProcess


def open_worker(prober: Prober, pipeline: Pipeline, task: TaskConfig, *, wait: bool, probing: bool = True,
                session_is_free: bool = False, sees_loop: bool = True) -> AnyWorker:
    """The probe worker ``probe.isolation`` asks for: a child process (default), or a thread on a second session
    of ``pipeline``'s model (or on ``pipeline`` itself when ``session_is_free``: nothing else runs it). With
    probing off nothing is started beyond an idle thread. ``sees_loop``: the caller runs the deployed session
    (its threads decide ``probe.schedule: auto``); the SDK does not see the app's session, and auto is any."""
    cfg = prober.cfg
    deployed_threads = pipeline.model_cfg.threads if pipeline.model_cfg is not None else 0
    idle = cfg.schedule == "idle" or (sees_loop and use_idle_time(cfg.schedule, deployed_threads, cfg.threads))
    if probing and cfg.isolation == "process":
        if pipeline.model_cfg is None:
            raise ModelError("the probe process needs the model configuration; open the pipeline with open_pipeline")
        return ProbeProcess(prober, WorkerSpec(pipeline.model_cfg, task, cfg, pipeline.input_hw, idle),
                            size=cfg.queue, wait=wait)
    if probing:
        prober.predict = (pipeline if session_is_free else pipeline.session(cfg.threads)).predict
    return ProbeWorker(prober, size=cfg.queue, wait=wait, idle=idle and probing)


# --- the child -----------------------------------------------------------------------------------------

def _serve(receiver: Receiver, out: Writer) -> None:
    from edgeprobe.agent.pipeline import open_pipeline  # the child's own session

    first = receiver.receive()
    assert first is not None  # (no timeout)
    spec = msgspec.convert(first.meta[1], WorkerSpec)
    model = msgspec.structs.replace(spec.model, threads=spec.probe.threads)
    pipeline = open_pipeline(model, spec.task)
    adapter = pipeline.adapter
    predict: Callable[[np.ndarray], Any] = pipeline.predict
    if spec.idle:
        predict = gated(predict, IdleGate(receiver.directory / CLOCK))
    prober = Prober(spec.probe, predict, adapter.disagreement, adapter.threshold, adapter=adapter,
                    input_hw=spec.input_hw)
    out.write(("ready", os.getpid()))
    recent: dict[int, tuple[int, np.ndarray, Any]] = {}
    keep = max(1, spec.probe.breaking_point.frames) * 2
    for msg in receiver:
        kind = msg.meta[0]
        try:
            if kind == "probe":
                _, index, prediction, context = msg.meta
                image = msg.arrays[0].copy()  # results keep pixels; the slot goes back to the loop now
                msg.release()
                result = prober.run(image, prediction, index, context)
                recent[index] = (index, result.view, result.clean)
                while len(recent) > keep:
                    del recent[next(iter(recent))]
                out.write(("result", result))
            elif kind == "search":
                sample = [recent[i] for i in msg.meta[1] if i in recent]
                out.write(("result", prober.search(sample) if sample else BreakingResult([], 0)))
            elif kind == "drain":
                out.write(("drained", msg.meta[1]))
            elif kind == "stop":
                return
        except Exception as exc:  # one failed job is reported, the next one still runs
            out.write(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            msg.release()


def main(argv: list[str]) -> int:
    """Entry point of the child: ``python -m edgeprobe.agent.probe_process DIR DATA_FD RETURN_FD RESULT_FD``."""
    os.nice(19)  # best effort: the probe gets the CPU the deployed path leaves
    directory, data_fd, return_fd, result_fd = argv
    receiver = Receiver(Path(directory), int(data_fd), int(return_fd))
    out = Writer(int(result_fd))
    try:
        _serve(receiver, out)
    except EOFError:
        pass
    except Exception as exc:  # e.g. the model cannot be loaded here: the parent logs it and drops its frames
        with contextlib.suppress(OSError):
            out.write(("error", f"the probe process could not start: {type(exc).__name__}: {exc}"))
        return 1
    finally:
        receiver.close()
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
