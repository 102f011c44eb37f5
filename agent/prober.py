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

The work and its bookkeeping are apart, so the work can run off the frame
loop (agent/probe_worker.py): :meth:`Prober.run` and :meth:`Prober.search`
only compute and return values (:class:`ProbeResult`,
:class:`BreakingResult`: per-cell disagreements, seeds, the perturbed view,
time spent); :meth:`Prober.record` and :meth:`Prober.record_breaking` fold
them into the window on the loop's thread, and :meth:`Prober.body` /
:meth:`Prober.reset` send and clear it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import msgspec
import numpy as np

from edgeprobe.agent.config import ProbeConfig
from edgeprobe.harness import breaking_point, metamorphic, perturbations, schema
from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.probe_view import probe_view
from edgeprobe.harness.stability import StabilityWindow, zones_by_perturbation


@dataclass(frozen=True, slots=True)
class Cell:
    """One (perturbation, severity) look at one frame: its seed and how far the answer moved."""

    perturbation: str
    severity: float
    seed: int
    disagreement: float
    infer_ns: int


@dataclass(slots=True)
class ProbeResult:
    """What probing one frame found: a value the monitor and the window consume, nothing shared."""

    frame_index: int
    #: the pixels that were perturbed (the model-scale view): exemplars rebuild their perturbed half from it
    view: np.ndarray
    clean: Any
    cells: list[Cell]
    #: relation name -> (violated, what it expects)
    relations: dict[str, tuple[bool, str]]
    spent_ns: int
    #: whatever the caller attached when it queued the frame (the monitor's slice keys), handed back as is
    context: Any = None


@dataclass(slots=True)
class BreakingResult:
    """One breaking-point search over the sample of recent probed frames."""

    points: list[dict[str, Any]]
    spent_ns: int


@dataclass(slots=True)
class _Window:
    frames_seen: int = 0
    spent_ns: int = 0
    started_ns: int = field(default_factory=time.perf_counter_ns)
    infer_ns: dict[str, list[int]] = field(default_factory=dict)
    relation_counts: dict[str, list[int]] = field(default_factory=dict)
    breaking: list[dict[str, Any]] = field(default_factory=list)


class WindowReport(NamedTuple):
    """The robustness body's free-form parts for one window."""

    duty: dict[str, Any]
    perturbation_latency: list[dict[str, Any]]
    relations: list[dict[str, Any]]
    #: resolution mode and size of the pixels probed; None before anything was probed
    probe_view: dict[str, Any] | None


class Prober:
    def __init__(self, cfg: ProbeConfig, predict: Callable[[np.ndarray], Any],
                 disagreement: Callable[[Any, Any], float], threshold: float, adapter: Any = None,
                 input_hw: tuple[int, int] | None = None):
        self.cfg = cfg
        #: the model's input (h, w): probes work on the frame shrunk to cover it (harness/probe_view.py)
        self.input_hw = input_hw
        #: the pixels the last recorded probe perturbed; each window reports their size so a replay perturbs the
        #: same pixels (empty before the first probe)
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
        self.w = _Window()
        self.relation_expect: dict[str, str] = {}
        #: frames a probe was due on but the worker's queue was full (agent/probe_worker.py), this window / run
        self.dropped = 0
        self.run_dropped = 0
        self.sample: deque[tuple[int, np.ndarray, Any]] = deque(maxlen=cfg.breaking_point.frames)
        self.windows_done = 0

    # --- on the loop's thread: is a frame due? ------------------------------------------------------

    def due(self, frame_index: int) -> bool:
        """Count the frame into the window's duty cycle and say whether it is due for probing."""
        self.seen()
        return self.wants(frame_index)

    def seen(self) -> None:
        self.w.frames_seen += 1

    def wants(self, frame_index: int) -> bool:
        """Whether a frame is due, without counting it (the SDK asks on the app's thread, counts on its own)."""
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

    # --- the work (any thread; touches no window state) ---------------------------------------------

    def run(self, image: np.ndarray, clean_prediction: Any, frame_index: int, context: Any = None) -> ProbeResult:
        """Run the planned perturbations and relations on one frame."""
        t0 = time.perf_counter_ns()
        view = probe_view(image, self.input_hw, self.cfg.resolution)
        if view is not image:  # the reference is the clean prediction on the very pixels that get perturbed
            image, clean_prediction = view, self.predict(view)
        plan = [(pert, severity) for pert, severities in self.plan for severity in severities]
        if self.cfg.cpu_share is not None:
            # Share mode probes one cell per due frame, round robin: a whole frame's plan can cost many frame
            # times, and the share would then only hold over windows long against that cost.
            plan = [plan[self._next_cell % len(plan)]]
            self._next_cell += 1
        cells = []
        for pert, severity in plan:
            seed = perturbations.derive_seed(self.cfg.seed, frame_index, pert.name, severity)
            perturbed = pert.apply(image, severity, seed)
            t = time.perf_counter_ns()
            got = self.predict(perturbed)
            infer = time.perf_counter_ns() - t
            cells.append(Cell(pert.name, float(severity), seed, float(self.disagreement(clean_prediction, got)),
                              infer))
        relations: dict[str, tuple[bool, str]] = {}
        if self.adapter is not None:
            for name, params in self.relations:
                exp, text = metamorphic.expected(name, params, self.adapter, clean_prediction)
                got = self.predict(metamorphic.transform(name, params, image))
                relations[name] = (bool(metamorphic.violated(self.adapter, exp, clean_prediction, got)), text)
        return ProbeResult(frame_index, image, clean_prediction, cells, relations,
                           time.perf_counter_ns() - t0, context)

    def search(self, sample: Sequence[tuple[int, np.ndarray, Any]]) -> BreakingResult:
        """Bisect each perturbation's breaking point on a sample of (frame index, view, clean prediction)."""
        bp = self.cfg.breaking_point
        t0 = time.perf_counter_ns()
        indices = [i for i, _, _ in sample]
        images = [img for _, img, _ in sample]
        clean = [c for _, _, c in sample]
        out = []
        for pert, _ in self.plan:
            found, replay = breaking_point.search(images, indices, self.predict, self.adapter, pert.name,
                                                  self.cfg.seed, bp.threshold, bp.tolerance, bp.max_rounds, clean,
                                                  bp.confidence)
            out.append({"perturbation": pert.name, "frames": len(images), **found.as_dict(),
                        "replay": {"seed": replay["seed"], "frame_indices": replay["frames"]}})
        return BreakingResult(out, time.perf_counter_ns() - t0)

    # --- bookkeeping (the loop's thread) ------------------------------------------------------------

    def record(self, result: ProbeResult) -> None:
        """Fold one probed frame into the window."""
        for c in result.cells:
            self.window.add(c.perturbation, c.severity, c.disagreement, self.threshold)
            self.w.infer_ns.setdefault(c.perturbation, []).append(c.infer_ns)
        for name, (violated, _) in result.relations.items():
            counts = self.w.relation_counts.setdefault(name, [0, 0])
            counts[0] += violated
            counts[1] += 1
        self.relation_expect.update({name: text for name, (_, text) in result.relations.items()})
        if self.adapter is not None and self.cfg.breaking_point.enabled:
            self.sample.append((result.frame_index, result.view, result.clean))
        self.last_view = result.view
        self.window.frames_probed += 1
        self._account(result.spent_ns)

    def probe(self, image: np.ndarray, clean_prediction: Any, frame_index: int) -> ProbeResult:
        """Probe one frame here and now (run + record): tests and callers without a worker."""
        result = self.run(image, clean_prediction, frame_index)
        self.record(result)
        return result

    def breaking_due(self) -> list[tuple[int, np.ndarray, Any]] | None:
        """Called once per window: the sample to search when a search is due this window, else None."""
        bp = self.cfg.breaking_point
        self.windows_done += 1
        # Every N-th window, not the first: the sample then holds N windows' worth of probed frames to pick from.
        due = self.windows_done % bp.every_n_windows == 0
        if not (bp.enabled and self.adapter is not None and self.sample and due):
            return None
        return list(self.sample)

    def record_breaking(self, result: BreakingResult) -> None:
        self.w.breaking = result.points
        self._account(result.spent_ns)

    def _account(self, spent: int) -> None:
        self.spent_ns += spent
        self.w.spent_ns += spent

    def body(self, window: schema.Window) -> schema.RobustnessBody | None:
        """The window's ``robustness`` body (None when nothing was probed, dropped or searched in it: a window
        whose due frames were all dropped still says so, and so does one where only a search finished)."""
        if not self.window.cells and not self.dropped and not self.w.breaking:
            return None
        zones = self.cfg.risk_zones
        cells = self.window.summary(zones.at_risk, zones.broken)
        rep = self.window_report()
        return schema.RobustnessBody(
            window=window, frames_probed=self.window.frames_probed, seed=self.cfg.seed,
            cells=[msgspec.convert(c, schema.StabilityCell) for c in cells], zones=zones_by_perturbation(cells),
            risk_thresholds={"at_risk": zones.at_risk, "broken": zones.broken}, breaking_points=self.w.breaking,
            duty=rep.duty, perturbation_latency=rep.perturbation_latency, relations=rep.relations,
            probe_view=rep.probe_view)

    def window_report(self) -> WindowReport:
        """Extras for the robustness message: duty cycle used, latency per perturbation, relation rates."""
        w = self.w
        elapsed = max(1, time.perf_counter_ns() - w.started_ns)
        duty: dict[str, Any] = {
            "mode": "cpu_share" if self.cfg.cpu_share is not None else "frames",
            "target": self.cfg.cpu_share if self.cfg.cpu_share is not None else 1.0 / self.cfg.every_n_frames,
            "frames_seen": w.frames_seen, "frames_probed": self.window.frames_probed,
            "frame_share": self.window.frames_probed / w.frames_seen if w.frames_seen else 0.0,
            "time_share": w.spent_ns / elapsed, "probe_ms": w.spent_ns / 1e6, "frames_dropped": self.dropped,
        }
        latency = []
        for name, samples in sorted(w.infer_ns.items()):
            ms = np.asarray(samples, np.float64) / 1e6
            latency.append({"perturbation": name, "n": int(ms.size), "p50_ms": float(np.median(ms)),
                            "p90_ms": float(np.percentile(ms, 90)), "mean_ms": float(ms.mean())})
        relations = [metamorphic.RelationResult(name, v, n, self.relation_expect.get(name, name)).as_dict()
                     for name, (v, n) in sorted(w.relation_counts.items())]
        h, wd = self.last_view.shape[:2]
        view = {"resolution": self.cfg.resolution, "height": int(h), "width": int(wd)} if self.last_view.size \
            else None
        return WindowReport(duty, latency, relations, view)

    def reset(self) -> None:
        """Start the next window."""
        self.window.clear()
        self.w = _Window()
        self.run_dropped += self.dropped
        self.dropped = 0
