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

    def due(self, frame_index: int) -> bool:
        return self.cfg.enabled and bool(self.plan) and frame_index % self.cfg.every_n_frames == 0

    def probe(self, image: np.ndarray, clean_prediction: Any, frame_index: int) -> int:
        """Run every planned perturbation on one frame; returns the time spent (ns)."""
        t0 = time.perf_counter_ns()
        for pert, severities in self.plan:
            for severity in severities:
                seed = perturbations.derive_seed(self.cfg.seed, frame_index, pert.name, severity)
                perturbed = pert.apply(image, severity, seed)
                d = self.disagreement(clean_prediction, self.predict(perturbed))
                self.window.add(pert.name, severity, d, self.threshold)
        self.window.frames_probed += 1
        return time.perf_counter_ns() - t0
