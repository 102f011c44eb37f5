"""The idle gate: a probe inference never starts while a frame is in the deployed path, nor when it would
still be running as the next frame is due; it does start when the loop is waiting or has stopped."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeprobe.agent import idle_gate
from edgeprobe.agent.config import PerturbationConfig, ProbeConfig
from edgeprobe.agent.idle_gate import MARGIN_NS, IdleGate, LoopClock, use_idle_time
from edgeprobe.agent.probe_worker import ProbeWorker
from edgeprobe.agent.prober import Prober, ProbeResult

MS = 1_000_000


def test_auto_waits_for_idle_time_only_when_the_board_has_no_core_to_spare() -> None:
    assert use_idle_time("auto", deployed_threads=2, probe_threads=1, cpus=2)
    assert use_idle_time("auto", deployed_threads=0, probe_threads=1, cpus=4)  # 0 = one thread per core
    assert not use_idle_time("auto", deployed_threads=1, probe_threads=1, cpus=2)
    assert not use_idle_time("any", deployed_threads=4, probe_threads=1, cpus=2)
    assert use_idle_time("idle", deployed_threads=1, probe_threads=1, cpus=8)


def test_a_paced_loop_leaves_its_slack_and_nothing_more(tmp_path: Path) -> None:
    clock = LoopClock(tmp_path / "clock")
    gate = IdleGate(tmp_path / "clock")
    gate.cost_ns = 4 * MS
    t = 10_000 * MS
    for i in range(20):  # a 15 fps camera: frames every 66.7 ms, 5 ms each
        clock.begin(t + i * 66_700_000)
        assert not gate.clear(t + i * 66_700_000 + MS)  # a frame is in the deployed path
        clock.end(t + i * 66_700_000 + 5 * MS)
    last = t + 19 * 66_700_000
    assert gate.clear(last + 6 * MS)  # just after the frame: 60 ms to spare
    due = last + 66_700_000
    assert gate.clear(due - 4 * MS - MARGIN_NS)  # the inference still fits
    assert not gate.clear(due - 3 * MS)  # it would overlap the next frame
    assert gate.clear(due + 20 * MS)  # the frame is a quarter period late: the loop is waiting, maybe on us


@given(start=st.integers(1, 10**12), busy=st.booleans(), end_after=st.integers(0, 10**9),
       period=st.integers(0, 10**9), cost=st.integers(0, 10**8), later=st.integers(0, 2 * 10**9))
def test_the_gate_never_opens_on_a_running_frame_nor_into_the_next_one(
        tmp_path_factory: object, start: int, busy: bool, end_after: int, period: int, cost: int, later: int) -> None:
    page = tmp_path_factory.mktemp("gate") / "clock"  # type: ignore[attr-defined]
    clock, gate = LoopClock(page), IdleGate(page)
    start += 10**9
    if period:
        clock.begin(start - period)  # the loop's last frame: the running period is the gap to this one
    clock.begin(start)
    end = start + end_after
    if not busy:
        clock.end(end)
    gate.cost_ns = cost
    now = max(start, end if not busy else start) + later
    if gate.clear(now):
        stale = now - (start if busy else end) > gate.stale_ns
        if busy:
            assert stale  # only a loop that has stopped for a second lets a probe in mid-frame
        elif period > 0 and not stale:
            due = start + period
            assert now + cost + MARGIN_NS <= due or now > due + period // 4
    clock.close()
    gate.close()


def test_a_thread_worker_holds_its_inference_until_the_frame_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idle_gate, "STALE_NS", 600 * 10**9)  # however slow this machine is, the loop is "running"
    called = threading.Event()

    def predict(image: np.ndarray) -> float:
        called.set()
        return float(image.mean())

    cfg = ProbeConfig(every_n_frames=1, resolution="native", schedule="idle",
                      perturbations=[PerturbationConfig(name="gaussian_noise", severities=[1.0])])
    worker = ProbeWorker(Prober(cfg, predict, lambda a, b: 0.0, 0.5), size=2, wait=False, idle=True)
    assert worker.clock is not None
    worker.clock.begin()
    assert worker.offer(np.full((8, 8, 3), 50, np.uint8), 50.0, 0)
    assert not called.wait(0.3)  # a frame is in the deployed path: the probe waits
    worker.clock.end()
    worker.drain()
    assert called.is_set()
    assert [r.frame_index for r in worker.take() if isinstance(r, ProbeResult)] == [0]
    worker.close()
