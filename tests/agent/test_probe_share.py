"""Probing by CPU share: the accounting keeps the probe's share of the loop's time at the set share."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprobe.agent import prober as prober_mod
from edgeprobe.agent.config import PerturbationConfig, ProbeConfig
from edgeprobe.agent.prober import Prober


class FakeClock:
    """perf_counter_ns that only moves when the simulated work says so (deterministic, no timing)."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


@pytest.mark.parametrize(("share", "frame_ns", "infer_ns"), [(0.10, 10_000_000, 8_000_000),
                                                             (0.05, 33_000_000, 20_000_000),
                                                             (0.30, 5_000_000, 5_000_000)])
def test_share_mode_converges_to_the_set_share(monkeypatch: pytest.MonkeyPatch, share: float, frame_ns: int,
                                               infer_ns: int) -> None:
    clock = FakeClock()
    monkeypatch.setattr(prober_mod.time, "perf_counter_ns", clock)

    def predict(image: np.ndarray) -> int:
        clock.now += infer_ns  # each perturbed inference costs this much
        return 0

    cfg = ProbeConfig(cpu_share=share, perturbations=[PerturbationConfig(name="gaussian_noise", severities=[1, 3])])
    p = Prober(cfg, predict, lambda a, b: float(a != b), 0.5)
    image = np.zeros((8, 8, 3), np.uint8)
    probe_total = 0
    for i in range(3000):
        clock.now += frame_ns  # the deployed path's own frame
        if p.due(i):
            probe_total += p.probe(image, 0, i).spent_ns
    realised = probe_total / clock.now
    assert p.share() == pytest.approx(realised, rel=1e-3)
    assert abs(realised - share) <= 0.1 * share, realised  # the goal: within +-10% of the set share
    assert p.window.frames_probed > 0
    assert p._next_cell == p.window.frames_probed  # one (perturbation, severity) cell per probed frame


def test_every_n_frames_is_still_the_default() -> None:
    p = Prober(ProbeConfig(every_n_frames=4), lambda im: 0, lambda a, b: 0.0, 0.5)
    assert [i for i in range(12) if p.due(i)] == [0, 4, 8]
