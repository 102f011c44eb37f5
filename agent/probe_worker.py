"""Probes off the hot path: a background thread with its own model session.

The frame loop (the agent's, or an application's through the SDK) only
copies a frame that is due for probing into a small bounded queue; perturbed
inferences, metamorphic relations and breaking-point searches run here, on a
second model session (``probe.threads`` intra-op threads, default 1), so the
deployed session's thread pool and locks are never shared with probing.
Results come back as values (agent/prober.py's ProbeResult/BreakingResult)
that the loop collects between frames.

Backpressure is explicit: with ``drop`` a frame due while the queue is full
is counted and skipped (a deployed frame is never delayed by a probe); with
``wait`` the loop waits for room and each window waits for its probes, which
suits replaying a file as fast as it decodes (there is no deadline to miss,
and every window then carries exactly the probes of its own frames).
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeprobe.agent.frame_channel import shm_root
from edgeprobe.agent.idle_gate import IdleGate, LoopClock, gated
from edgeprobe.agent.prober import BreakingResult, Prober, ProbeResult

log = logging.getLogger("edgeprobe.probe")

Result = ProbeResult | BreakingResult


#: niceness added to the worker's thread: probing is best effort and gets the CPU the deployed path leaves
NICE = 19


def lower_priority() -> None:
    """Lower this thread's scheduling priority (Linux: a thread is a task with its own nice value).

    With ``probe.threads: 1`` ONNX Runtime runs the worker's inferences on this very thread, so the whole probe
    (perturbation, inference, breaking-point search) yields to the application's and the agent's own threads.
    Where the platform has no per-thread priority this is a no-op.
    """
    import os

    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + NICE))
    except (AttributeError, OSError):
        pass


class ProbeWorker:
    """One thread running a Prober's work; ``offer`` never raises and blocks only in ``wait`` mode."""

    def __init__(self, prober: Prober, *, size: int = 2, wait: bool = False, idle: bool = False):
        self.prober = prober
        self.wait = wait
        #: the loop stamps its frames here when probe inferences wait for its idle time (agent/idle_gate.py)
        self.clock: LoopClock | None = None
        if idle:
            self._clock_dir = tempfile.TemporaryDirectory(prefix="edgeprobe-clock-", dir=shm_root())
            page = Path(self._clock_dir.name) / "clock"
            self.clock = LoopClock(page)
            prober.predict = gated(prober.predict, IdleGate(page))
        self._jobs: queue.Queue[Callable[[], Result] | None] = queue.Queue(maxsize=size)
        self._done: deque[Result] = deque()
        #: probe jobs that raised (logged once each, counted; never raised into the loop)
        self.errors = 0
        #: a thread's memory is its process's: nothing apart to add to the agent's own peak
        self.peak_rss_mb = 0.0
        self._thread = threading.Thread(target=self._loop, name="edgeprobe-probe", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        lower_priority()
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                self._done.append(job())  # deque.append is atomic: the loop pops from the other end
            except Exception as exc:  # a probe that fails must not take the worker (or the app) down
                self.errors += 1
                if self.errors == 1:  # the same failure comes back with every due frame: name it once
                    log.exception("a probe job failed; later failures are counted (probe_errors)")
                else:
                    log.debug("probe job failed: %s", exc)
            finally:
                self._jobs.task_done()

    def _put(self, job: Callable[[], Result]) -> bool:
        if self.wait:
            self._jobs.put(job)
            return True
        try:
            self._jobs.put_nowait(job)
            return True
        except queue.Full:
            return False

    def offer(self, image: np.ndarray, prediction: Any, frame_index: int, context: Any = None) -> bool:
        """Queue a due frame (copied: sources and applications reuse their buffers); False if it was dropped."""
        frame = np.array(image, copy=True)
        ok = self._put(lambda: self.prober.run(frame, prediction, frame_index, context))
        if not ok:
            self.prober.dropped += 1
        return ok

    def search(self, sample: list[tuple[int, np.ndarray, Any]]) -> bool:
        """Queue a breaking-point search over a sample (its views are the worker's own copies already)."""
        return self._put(lambda: self.prober.search(sample))

    def take(self) -> list[Result]:
        """Results finished since the last call, oldest first."""
        out = []
        while self._done:
            out.append(self._done.popleft())
        return out

    def drain(self) -> None:
        """Wait until every queued job has finished."""
        self._jobs.join()

    def close(self, finish: bool = True) -> None:
        """Stop the thread, after the queued jobs when ``finish``; safe to call twice."""
        if not self._thread.is_alive():
            return
        if not finish:
            while True:
                try:
                    self._jobs.get_nowait()
                    self._jobs.task_done()
                except queue.Empty:
                    break
        self._jobs.put(None)
        self._thread.join()
        if self.clock is not None:
            self.clock.close()
            self._clock_dir.cleanup()
