"""Probe inferences in the deployed loop's idle time, when the board has no core to spare for them.

A probe in another thread or process is off the loop's time, not off its cores: with the deployed session
using every core (the demo: 2 intra-op threads on a 2-core board), a perturbed inference running alongside a
deployed one takes a core from it, and the deployed frame's e2e grows (benchmarks/probing.py measured p99
x1.6 with the probe in a thread and x1.8 in a process, p50 +9-15 %). A live camera leaves most of each frame
period idle (15 fps and a 5 ms frame: 61 ms of 67), which is enough for every probe the demo plans.

The loop's side (:class:`LoopClock`) stamps when each frame's deployed path began and ended, and the running
frame period, into a 64-byte shared page (a file the probe process maps too; a race between a write and a read
costs one wrong guess, corrected at the next poll). The probe's side (:class:`IdleGate`) is called before each
probe inference: it returns at once when the loop is idle and the inference (its running cost) fits before the
next frame is due, and otherwise sleeps in short steps. It also returns when the next frame is overdue by a
quarter period (the loop is waiting on something, possibly on the probe: a replayed file in ``wait`` mode) or
when no frame has come for a second (a camera outage: there is nothing to disturb).
"""

from __future__ import annotations

import mmap
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_PAGE = struct.Struct("<qqq")  # start_ns, end_ns, period_ns
PAGE_BYTES = 64
#: room left before the next frame is due, beyond the inference's running cost
MARGIN_NS = 1_000_000
#: how long the gate sleeps between looks at the page
POLL_S = 0.0005
#: no frame for this long: the loop is not running frames, nothing to disturb
STALE_NS = 1_000_000_000


def use_idle_time(schedule: str, deployed_threads: int, probe_threads: int, cpus: int | None = None) -> bool:
    """``probe.schedule``: idle, any, or auto (idle when the deployed session and the probe need more cores than
    the board has; a session's 0 threads means the runtime's default, one per core)."""
    if schedule != "auto":
        return schedule == "idle"
    cpus = cpus or os.cpu_count() or 1
    deployed = deployed_threads or cpus
    return deployed + probe_threads > cpus


def _open(path: Path, create: bool) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    try:
        if create:
            os.ftruncate(fd, PAGE_BYTES)
        return mmap.mmap(fd, PAGE_BYTES)
    finally:
        os.close(fd)


class LoopClock:
    """The deployed loop stamps its frames here (about a microsecond each)."""

    def __init__(self, path: Path):
        self.path = path
        self._map = _open(path, create=True)
        self._start = 0
        self._period = 0

    def _advance(self, start: int) -> None:
        if self._start:
            gap = start - self._start
            self._period = gap if not self._period else (7 * self._period + gap) // 8
        self._start = start

    def begin(self, now: int | None = None) -> None:
        """A frame's deployed path starts now."""
        self._advance(time.monotonic_ns() if now is None else now)
        _PAGE.pack_into(self._map, 0, self._start, 0, self._period)

    def end(self, now: int | None = None) -> None:
        """The frame's deployed path is done: the probe may use the time until the next one."""
        _PAGE.pack_into(self._map, 0, self._start, time.monotonic_ns() if now is None else now, self._period)

    def stamp(self, busy_ns: int) -> None:
        """A frame that took ``busy_ns`` has just ended (the SDK learns of an app's frame only afterwards)."""
        now = time.monotonic_ns()
        self._advance(now - max(0, busy_ns))
        _PAGE.pack_into(self._map, 0, self._start, now, self._period)

    def close(self) -> None:
        self._map.close()


class IdleGate:
    """The probe's side: wait, before an inference, until the loop is idle and the inference fits."""

    def __init__(self, path: Path, stale_ns: int | None = None):
        self._map = _open(path, create=False)
        self.stale_ns = STALE_NS if stale_ns is None else stale_ns
        #: running cost of one probe inference, ns (the gate learns it from :meth:`ran`)
        self.cost_ns = 0
        #: time spent waiting for idle time so far, ns
        self.waited_ns = 0

    def clear(self, now: int) -> bool:
        """Whether an inference may start at ``now`` (monotonic ns)."""
        start, end, period = _PAGE.unpack_from(self._map, 0)
        if start == 0 or now - max(start, end) > self.stale_ns:
            return True  # no frame yet, or none for a while
        if end < start:
            return False  # a frame is in the deployed path now
        if period <= 0:
            return True
        due = start + period
        return now + self.cost_ns + MARGIN_NS <= due or now > due + period // 4

    def wait(self) -> None:
        t0 = time.monotonic_ns()
        now = t0
        while not self.clear(now):
            time.sleep(POLL_S)
            now = time.monotonic_ns()
        self.waited_ns += now - t0

    def ran(self, ns: int) -> None:
        """Fold one inference's time into the running cost (a slow start counts, then fades)."""
        self.cost_ns = ns if not self.cost_ns else (3 * self.cost_ns + ns) // 4

    def close(self) -> None:
        self._map.close()


def gated(predict: Callable[[Any], Any], gate: IdleGate) -> Callable[[Any], Any]:
    """``predict`` that first waits for the loop's idle time and then teaches the gate what it cost."""

    def run(image: Any) -> Any:
        gate.wait()
        t = time.monotonic_ns()
        try:
            return predict(image)
        finally:
            gate.ran(time.monotonic_ns() - t)

    return run
