"""Robustness probing on a duty cycle: perturb sampled frames, compare predictions.

Probing shares the CPU with the deployed model, so it runs on one frame in
``every_n_frames`` and its time is measured apart (stage ``probe``), never
mixed into the deployed path's latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..harness import perturbations
from ..harness.stability import StabilityWindow
from .config import ProbeConfig


class Prober:
    def __init__(self, cfg: ProbeConfig, predict: Callable[[np.ndarray], Any],
                 disagreement: Callable[[Any, Any], float], threshold: float):
        self.cfg = cfg
        self.predict = predict
        self.disagreement = disagreement
        self.threshold = threshold
        # Resolve names now so a typo fails before anything is measured.
        self.plan: list[tuple[perturbations.Perturbation, Sequence[float]]] = [
            (perturbations.get(p.name), p.severities) for p in cfg.perturbations
        ]
        self.window = StabilityWindow()
        #: probing time so far and when the share accounting began (cpu_share mode)
        self.spent_ns = 0
        self.started_ns: int | None = None
        self._next_cell = 0

    def due(self, frame_index: int) -> bool:
        if not (self.cfg.enabled and self.plan):
            return False
        if self.cfg.cpu_share is None:
            return frame_index % self.cfg.every_n_frames == 0
        # Share mode: probe while probing has used less than its share of the time since the first frame.
        now = time.perf_counter_ns()
        if self.started_ns is None:
            self.started_ns = now
            return False
        return self.spent_ns < self.cfg.cpu_share * (now - self.started_ns)

    def share(self) -> float:
        """Share of the loop's time spent probing since the first frame (cpu_share mode)."""
        if self.started_ns is None:
            return 0.0
        elapsed = time.perf_counter_ns() - self.started_ns
        return self.spent_ns / elapsed if elapsed > 0 else 0.0

    def probe(self, image: np.ndarray, clean_prediction: Any, frame_index: int) -> int:
        """Run every planned perturbation on one frame; returns the time spent (ns)."""
        t0 = time.perf_counter_ns()
        cells = [(pert, severity) for pert, severities in self.plan for severity in severities]
        if self.cfg.cpu_share is not None:
            # Share mode probes one cell per due frame, round robin: a whole frame's plan can cost many frame
            # times, and the share would then only hold over windows long against that cost.
            cells = [cells[self._next_cell % len(cells)]]
            self._next_cell += 1
        for pert, severity in cells:
            seed = perturbations.derive_seed(self.cfg.seed, frame_index, pert.name, severity)
            perturbed = pert.apply(image, severity, seed)
            d = self.disagreement(clean_prediction, self.predict(perturbed))
            self.window.add(pert.name, severity, d, self.threshold)
        self.window.frames_probed += 1
        spent = time.perf_counter_ns() - t0
        self.spent_ns += spent
        return spent
