"""Robustness probing on a duty cycle: perturb sampled frames, compare predictions.

Probing shares the CPU with the deployed model, so it runs on one frame in
``every_n_frames`` (or within ``cpu_share`` of the loop's time) and its time
is measured apart (stage ``probe``), never mixed into the deployed path's
latency. Each window reports what the probe actually used, so a user can see
the duty cycle held.

Besides unstable fractions it keeps: the inference time per perturbation
(noise makes detectors slower), metamorphic relation violations on probed
frames, and a small fixed sample of recent probed frames on which the
breaking point of each perturbation is bisected every few windows.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..harness import breaking_point, metamorphic, perturbations
from ..harness.errors import ConfigError
from ..harness.probe_view import probe_view
from ..harness.stability import StabilityWindow
from .config import ProbeConfig


class Prober:
    def __init__(self, cfg: ProbeConfig, predict: Callable[[np.ndarray], Any],
                 disagreement: Callable[[Any, Any], float], threshold: float, adapter: Any = None,
                 input_hw: tuple[int, int] | None = None):
        self.cfg = cfg
        #: the model's input (h, w): probes work on the frame shrunk to cover it (harness/probe_view.py)
        self.input_hw = input_hw
        #: the pixels the last probe perturbed: exemplars rebuild their perturbed half from these and the seed,
        #: and each window reports their size so a replay perturbs the same pixels (empty before the first probe)
        self.last_view: np.ndarray = np.empty((0, 0), np.uint8)
        self.predict = predict
        self.disagreement = disagreement
        self.threshold = threshold
        self.adapter = adapter
        if cfg.risk_zones.at_risk > cfg.risk_zones.broken:
            raise ConfigError(f"probe.risk_zones.at_risk ({cfg.risk_zones.at_risk}) must not exceed "
                              f"probe.risk_zones.broken ({cfg.risk_zones.broken})")
        # Resolve names now so a typo fails before anything is measured.
        self.plan: list[tuple[perturbations.Perturbation, Sequence[float]]] = [
            (perturbations.get(p.name), p.severities) for p in cfg.perturbations
        ]
        self.relations = [metamorphic.parse({"name": r.name, **r.params}) for r in cfg.relations]
        if self.relations and adapter is not None:
            for r in cfg.relations:
                metamorphic.check_relation(r.name, adapter)
        self.window = StabilityWindow()
        #: probing time so far and when the share accounting began (cpu_share mode)
        self.spent_ns = 0
        self.started_ns: int | None = None
        self._next_cell = 0
        #: per window: frames offered, probe time, inference ns per perturbation, relation counts
        self.frames_seen = 0
        self.window_spent_ns = 0
        self.window_started_ns = time.perf_counter_ns()
        self.infer_ns: dict[str, list[int]] = {}
        self.relation_counts: dict[str, list[int]] = {}
        self.relation_expect: dict[str, str] = {}
        self.sample: deque[tuple[int, np.ndarray, Any]] = deque(maxlen=cfg.breaking_point.frames)
        self.windows_done = 0

    def due(self, frame_index: int) -> bool:
        self.frames_seen += 1
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

    def _timed_predict(self, name: str, image: np.ndarray) -> Any:
        t0 = time.perf_counter_ns()
        out = self.predict(image)
        self.infer_ns.setdefault(name, []).append(time.perf_counter_ns() - t0)
        return out

    def probe(self, image: np.ndarray, clean_prediction: Any, frame_index: int) -> int:
        """Run every planned perturbation on one frame; returns the time spent (ns)."""
        t0 = time.perf_counter_ns()
        view = probe_view(image, self.input_hw, self.cfg.resolution)
        if view is not image:  # the reference is the clean prediction on the very pixels that get perturbed
            image, clean_prediction = view, self.predict(view)
        self.last_view = image
        cells = [(pert, severity) for pert, severities in self.plan for severity in severities]
        if self.cfg.cpu_share is not None:
            # Share mode probes one cell per due frame, round robin: a whole frame's plan can cost many frame
            # times, and the share would then only hold over windows long against that cost.
            cells = [cells[self._next_cell % len(cells)]]
            self._next_cell += 1
        for pert, severity in cells:
            seed = perturbations.derive_seed(self.cfg.seed, frame_index, pert.name, severity)
            perturbed = pert.apply(image, severity, seed)
            d = self.disagreement(clean_prediction, self._timed_predict(pert.name, perturbed))
            self.window.add(pert.name, severity, d, self.threshold)
        if self.adapter is not None:
            for name, params in self.relations:
                exp, text = metamorphic.expected(name, params, self.adapter, clean_prediction)
                got = self.predict(metamorphic.transform(name, params, image))
                counts = self.relation_counts.setdefault(name, [0, 0])
                counts[0] += metamorphic.violated(self.adapter, exp, clean_prediction, got)
                counts[1] += 1
                self.relation_expect[name] = text
            if self.cfg.breaking_point.enabled:
                self.sample.append((frame_index, image, clean_prediction))
        self.window.frames_probed += 1
        return self._account(t0)

    def _account(self, t0: int) -> int:
        spent = time.perf_counter_ns() - t0
        self.spent_ns += spent
        self.window_spent_ns += spent
        return spent

    def breaking_points(self) -> tuple[list[dict[str, Any]], int]:
        """Bisect each perturbation's breaking point on the current sample when due; (results, ns spent)."""
        bp = self.cfg.breaking_point
        self.windows_done += 1
        # Every N-th window, not the first: the sample then holds N windows' worth of probed frames to pick from.
        due = self.windows_done % bp.every_n_windows == 0
        if not (bp.enabled and self.adapter is not None and self.sample and due):
            return [], 0
        t0 = time.perf_counter_ns()
        indices = [i for i, _, _ in self.sample]
        images = [img for _, img, _ in self.sample]
        clean = [c for _, _, c in self.sample]
        out = []
        for pert, _ in self.plan:
            found, replay = breaking_point.search(images, indices, self.predict, self.adapter, pert.name,
                                                  self.cfg.seed, bp.threshold, bp.tolerance, bp.max_rounds, clean,
                                                  bp.confidence)
            out.append({"perturbation": pert.name, "frames": len(images), **found.as_dict(),
                        "replay": {"seed": replay["seed"], "frame_indices": replay["frames"]}})
        return out, self._account(t0)

    def window_report(self) -> dict[str, Any]:
        """Extras for the robustness message: duty cycle used, latency per perturbation, relation rates."""
        elapsed = max(1, time.perf_counter_ns() - self.window_started_ns)
        duty: dict[str, Any] = {
            "mode": "cpu_share" if self.cfg.cpu_share is not None else "frames",
            "target": self.cfg.cpu_share if self.cfg.cpu_share is not None else 1.0 / self.cfg.every_n_frames,
            "frames_seen": self.frames_seen, "frames_probed": self.window.frames_probed,
            "frame_share": self.window.frames_probed / self.frames_seen if self.frames_seen else 0.0,
            "time_share": self.window_spent_ns / elapsed, "probe_ms": self.window_spent_ns / 1e6,
        }
        latency = []
        for name, samples in sorted(self.infer_ns.items()):
            ms = np.asarray(samples, np.float64) / 1e6
            latency.append({"perturbation": name, "n": int(ms.size), "p50_ms": float(np.median(ms)),
                            "p90_ms": float(np.percentile(ms, 90)), "mean_ms": float(ms.mean())})
        relations = [metamorphic.RelationResult(name, v, n, self.relation_expect.get(name, name)).as_dict()
                     for name, (v, n) in sorted(self.relation_counts.items())]
        h, w = self.last_view.shape[:2]
        view = {"resolution": self.cfg.resolution, "height": int(h), "width": int(w)} if self.last_view.size else None
        return {"duty": duty, "perturbation_latency": latency, "relations": relations, "probe_view": view}

    def clear_window(self) -> None:
        self.window.clear()
        self.frames_seen = 0
        self.window_spent_ns = 0
        self.window_started_ns = time.perf_counter_ns()
        self.infer_ns.clear()
        self.relation_counts.clear()
