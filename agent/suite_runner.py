"""Runs an acceptance suite on the device and turns measurements into verdicts.

The suite reuses the agent's own pieces (backend, source, task adapter,
perturbations), so what is signed off is the path that will be deployed. A
fixed frame set is read once; latency is timed stage by stage over it, and
robustness, metamorphic, golden and health checks all look at the same frames,
so every figure can be replayed from (frame index, perturbation, severity,
seed).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeprobe import __version__
from edgeprobe.agent import golden
from edgeprobe.agent.backends import Backend
from edgeprobe.agent.guards import GuardMonitor, Guards, load_flags
from edgeprobe.agent.pipeline import STAGES, Pipeline, WarmUp, open_pipeline
from edgeprobe.agent.sources import Frame, open_source
from edgeprobe.harness import budget, checks, perturbations, suite_report
from edgeprobe.harness import suite as S
from edgeprobe.harness.breaking_point import DEFAULT_GRID, BreakingPoint, find_breaking_point
from edgeprobe.harness.drift import psi_against_baseline
from edgeprobe.harness.errors import ConfigError, EdgeprobeError
from edgeprobe.harness.health import HealthWindow, frame_stats, thumbnail
from edgeprobe.harness.metamorphic import RelationResult, evaluate_relations
from edgeprobe.harness.probe_view import probe_view

#: ``progress(phase, done, total)``; total None = unknown
Progress = Callable[[str, int, int | None], None]

log = logging.getLogger("edgeprobe.suite")



@dataclass
class Artifacts:
    """What the HTML report shows beyond the JSON: pictures of the worst frames."""

    #: frame index, perturbation, severity, seed, replay command, and the clean and perturbed BGR images
    worst: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Session:
    """Model, adapter and frame set of one suite, loaded once."""

    loaded: S.LoadedSuite
    pipeline: Pipeline
    adapter: Any
    frames: list[Frame]
    #: what robustness, breaking-point and metamorphic probes perturb: each frame shrunk to cover the model's
    #: input (suite.probe_resolution, harness/probe_view.py); latency, golden and health use the frames as read
    probe_images: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        hw = self.pipeline.input_hw
        self.probe_images = [probe_view(f.image, hw, self.loaded.suite.probe_resolution) for f in self.frames]
        self.pipeline.adapter = self.adapter  # the tensor fallback, where no real adapter is installed

    @property
    def backend(self) -> Backend:
        return self.pipeline.backend

    def predict(self, image: np.ndarray) -> Any:
        return self.pipeline.predict(image)


def open_session(loaded: S.LoadedSuite, progress: Progress | None = None) -> Session:
    """Load the model and read the fixed frame set (ConfigError/ModelError/SourceError on bad input)."""
    suite = loaded.suite
    warmup = WarmUp(suite.latency.warmup)
    pipeline = open_pipeline(suite.model, suite.task, warmup=warmup, task_key=loaded.line_of("task"))
    frames = read_frames(suite.source, progress)
    return Session(loaded, pipeline, pipeline.adapter, frames)


def read_frames(spec: S.SourceSpec, progress: Progress | None = None) -> list[Frame]:
    source = open_source(spec.uri, loop=False, pace=False)
    frames: list[Frame] = []
    try:
        for frame in source:
            if frame.index < spec.skip or (frame.index - spec.skip) % spec.stride:
                continue
            frames.append(frame)
            if progress:
                progress("reading frames", len(frames), spec.frames)
            if len(frames) >= spec.frames:
                break
    finally:
        source.close()
    if not frames:
        raise ConfigError(f"source {spec.uri} gave no frames after skipping {spec.skip}; check source.uri and skip")
    return frames


# --- measuring -------------------------------------------------------------------


def decode_times(spec: S.SourceSpec) -> Generator[int, None, None]:
    """Real decode times of the suite's source, read again frame after frame (looping), one per sample.

    A decode budget must be judged on decodes, not on the frame set's one read per frame re-fed in a cycle
    (32 values repeated over 417 "samples" gave a degenerate interval and 69% false passes).
    """
    source = open_source(spec.uri, loop=True, pace=False)
    try:
        for frame in source:
            yield int(frame.decode_ns)
    finally:
        source.close()


def measure_latency(session: Session, progress: Progress | None = None, monitor: GuardMonitor | None = None
                    ) -> tuple[dict[str, list[int]], dict[int, budget.BudgetResult]]:
    """Stage timings in ns over the frame set, cycled, until every budget is decided.

    Each latency check gets an early-stopping sampler (harness.budget): timing
    stops once all of them settled, or at ``latency.samples`` / ``max_seconds``.
    Warm-up runs are never recorded. Preprocess, inference and postprocess run
    afresh on every sample; a ``decode`` budget decodes a frame of the source
    for real on every sample (:func:`decode_times`). Without one, the decode
    stage reports the frame set's own reads, one per frame, never cycled.
    """
    spec = session.loaded.suite.latency
    pipeline, frames = session.pipeline, session.frames
    checks = [(i, c) for i, c in enumerate(session.loaded.suite.checks) if isinstance(c, S.LatencyCheck)]
    budgets = []
    for _, c in checks:
        percentile, budget_ms = S.parse_budget_text(c.budget)
        budgets.append(budget.Budget(budget_ms=budget_ms, stage=c.stage, percentile=percentile,
                                     confidence=c.confidence))
    driver = budget.BudgetDriver(budgets, max_samples=spec.samples, max_seconds=spec.max_seconds)
    decoder = decode_times(session.loaded.suite.source) if any(c.stage == "decode" for _, c in checks) else None
    samples: dict[str, list[int]] = {s: [] for s in STAGES}
    try:
        n = 0
        while not pipeline.warm.done:
            pipeline.timed(frames[n % len(frames)].image)
            if decoder is not None:
                next(decoder)
            n += 1
        if monitor is not None:
            monitor.start()
        for i in range(spec.samples):
            if monitor is not None:
                monitor.poll()
            frame = frames[i % len(frames)]
            # frames were read beforehand, so e2e starts at preprocess (agent/pipeline.py defines it)
            run = pipeline.timed(frame.image).stages
            if decoder is not None:
                run["decode"] = next(decoder)
            for stage in STAGES:
                if stage in run:
                    samples[stage].append(int(run[stage]))
            if progress and (i % 10 == 9 or i == spec.samples - 1):
                progress("timing", i + 1, spec.samples)
            if driver.feed(run):
                break
    finally:
        if decoder is not None:
            decoder.close()
    if decoder is None:
        samples["decode"] = [int(f.decode_ns) for f in frames if f.decode_ns > 0]
    return samples, dict(zip((i for i, _ in checks), driver.results(), strict=True))


@dataclass
class Probes:
    """Disagreement of every frame under every (perturbation, severity) measured."""

    clean: list[Any]
    threshold: float
    #: (perturbation, severity) -> disagreement per frame
    cells: dict[tuple[str, float], list[float]] = field(default_factory=dict)
    #: frames whose clean prediction is empty (no box, no foreground): they have nothing to lose
    empty: list[bool] = field(default_factory=list)


def nothing_to_lose(description: dict[str, Any]) -> bool:
    """A detection with no box or a mask with no foreground: "stable" on such a frame means nothing."""
    return description.get("count") == 0 or description.get("foreground") == 0.0


def probe(session: Session, probes: Probes, name: str, severity: float) -> list[float]:
    key = (name, float(severity))
    if key not in probes.cells:
        seed0 = session.loaded.suite.seed
        pert = perturbations.get(name)
        out = []
        for frame, image, clean in zip(session.frames, session.probe_images, probes.clean, strict=True):
            seed = perturbations.derive_seed(seed0, frame.index, name, float(severity))
            perturbed = pert.apply(image, severity, seed)
            out.append(float(session.adapter.disagreement(clean, session.predict(perturbed))))
        probes.cells[key] = out
    return probes.cells[key]


def breaking_point(session: Session, probes: Probes, check: S.BreakingPointCheck) -> BreakingPoint:
    """The breaking-point bracket of one perturbation on the suite's fixed frame set.

    The search is harness.breaking_point's (grid over (0, 5], then bisection in
    the first grid interval that may be broken); the check's ``min_severity`` is
    one more grid look so the verdict has evidence at its limit. Every severity
    tried is cached in ``probes`` and reused by the report's curves.
    """
    def at(sev: float) -> tuple[int, int]:
        d = probe(session, probes, check.perturbation, round(sev, 4))
        return sum(x > probes.threshold for x in d), len(d)

    grid = sorted({*DEFAULT_GRID, *([check.min_severity] if check.min_severity > 0 else [])})
    return find_breaking_point(at, threshold=check.threshold, confidence=check.confidence, grid=grid,
                               tolerance=check.tolerance, max_rounds=check.max_rounds)


# --- metamorphic relations -----------------------------------------------------------


def metamorphic(session: Session, probes: Probes, check: S.MetamorphicCheck) -> RelationResult:
    """Violations of one relation on the frame set, with what the relation expects."""
    (r,) = evaluate_relations(session.probe_images, session.predict, session.adapter,
                              [{"name": check.relation, **check.params}], clean=probes.clean)
    return r


# --- the run -----------------------------------------------------------------------


def frame_set_warnings(loaded: S.LoadedSuite, frames: int) -> list[str]:
    """What the reader must know about the evidence before any figure: a frame set shorter than asked."""
    asked = loaded.suite.source.frames
    if frames >= asked:
        return []
    return [f"source {loaded.suite.source.uri} gave {frames} of the {asked} frames asked ({loaded.line_of('source')}"
            f", source.frames): every robustness, golden and health figure rests on {frames} frames"]


def run_suite(loaded: S.LoadedSuite, progress: Progress | None = None, strict: bool = False,
              guards: Guards | None = None) -> tuple[dict[str, Any], Artifacts]:
    """Run every check; returns the JSON-able result and pictures for the report.

    ``strict``: a frame set shorter than asked is an error (before anything is measured), not a warning, and a
    latency verdict taken under load or throttling is inconclusive. ``guards`` reads the board's state (default:
    the real sysfs/procfs).
    """
    t_start = time.perf_counter()
    started = dt.datetime.now(dt.timezone.utc)
    suite = loaded.suite
    session = open_session(loaded, progress)
    warnings = frame_set_warnings(loaded, len(session.frames))
    if warnings and strict:
        raise ConfigError(f"{warnings[0]}; lower source.frames or give a longer source (--strict)")
    for check in suite.checks:  # a wrong golden file or baseline is bad input: say so before minutes of measuring
        if isinstance(check, S.GoldenCheck):
            golden.check_model(session, check, golden.load(check.file)[0])
        if isinstance(check, S.DriftCheck) and not Path(check.baseline).exists():
            raise ConfigError(f"{loaded.line_of(f'checks[{suite.checks.index(check)}].baseline')}: cannot check "
                              f"drift: baseline {check.baseline} does not exist; record one with "
                              "`edgeprobe baseline record`")
    results: list[S.CheckResult] = []
    n_latency = sum(isinstance(c, S.LatencyCheck) for c in suite.checks)
    t_latency = time.perf_counter()
    # the same guards as `bench`, over the timing loop: a sign-off taken under load must say so
    monitor = GuardMonitor(guards or Guards())
    latency, budgets = measure_latency(session, progress, monitor) if n_latency else ({}, {})
    latency_s = time.perf_counter() - t_latency
    guard_report = monitor.report()
    under_load = load_flags(guard_report) if n_latency else []
    clean = [session.predict(image) for image in session.probe_images]
    probes = Probes(clean=clean, threshold=float(session.adapter.threshold),
                    empty=[nothing_to_lose(session.adapter.describe(c)) for c in clean])
    health = HealthWindow()
    brightness = []
    for f in session.frames:
        health.add(f.image, f.t_capture_ns)
        brightness.append(frame_stats(thumbnail(f.image)).brightness)
    health_summary = health.summary()

    # Degradation curves for every perturbation a check names.
    curve_names = sorted({c.perturbation for c in suite.checks if isinstance(c, (S.RobustnessCheck,
                                                                                 S.BreakingPointCheck))})
    severities = sorted({*suite.report.curve_severities, *(c.severity for c in suite.checks
                                                            if isinstance(c, S.RobustnessCheck))})
    total = len(curve_names) * len(severities)
    for i, (name, sev) in enumerate((n, s) for n in curve_names for s in severities):
        probe(session, probes, name, sev)
        if progress:
            progress("perturbing", i + 1, total)

    breaking: dict[str, dict[str, Any]] = {}
    metamorphic_rows: list[dict[str, Any]] = []
    for idx, check in enumerate(suite.checks):
        if progress:
            progress("checking", idx + 1, len(suite.checks))
        t_check = time.perf_counter()
        try:
            r = _run_check(session, probes, idx, check, budgets, health_summary, breaking, metamorphic_rows)
        except EdgeprobeError:
            raise
        except Exception as exc:  # a check that crashed is an error verdict, not a lost run
            r = S.CheckResult(name=S.check_name(check), kind=str(check.__struct_config__.tag or "?"), status="error",
                              figure=None, limit=None, message=f"{type(exc).__name__}: {exc}")
        r = checks.mark_under_load(r, under_load, strict)
        # latency checks also carry their share of the timing loop, which ran for all of them at once
        r.seconds = round(time.perf_counter() - t_check + latency_s / max(1, n_latency) * (r.kind == "latency"), 3)
        results.append(r)

    status = S.north_star(results, suite.inconclusive)
    curves = suite_report.curves(probes.cells, probes.threshold)
    artifacts = Artifacts(worst=_worst_frames(session, probes, suite.report.worst_frames))
    result: dict[str, Any] = {
        "schema": S.SCHEMA,
        "suite": suite.name,
        "description": suite.description,
        "status": status,
        "headline": S.headline(results, status),
        "exit_code": S.exit_code(status),
        "inconclusive_counts_as": suite.inconclusive,
        "warnings": warnings,
        "checks": [r.as_dict() for r in results],
        "provenance": {
            "suite_path": str(loaded.path), "config_sha256": loaded.sha256, "model_path": str(session.backend.path),
            "model_sha256": session.backend.sha256, "runtime": session.backend.runtime,
            "providers": session.backend.providers, "agent_version": __version__, "task": session.adapter.name,
            "device": {"host": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
                       "processor": platform.processor(), "cpus": os.cpu_count(),
                       "python": platform.python_version()},
            "seeds": {"suite": suite.seed, "derivation": "harness.perturbations.derive_seed(seed, frame, name, sev)"},
            "source": {"uri": suite.source.uri, "frames": [f.index for f in session.frames]},
            "started": started.isoformat(timespec="seconds"), "duration_s": round(time.perf_counter() - t_start, 2),
            "guards": guard_report.as_dict() if n_latency else None,
        },
        "data": {
            "curves": curves, "breaking_points": breaking, "metamorphic": metamorphic_rows,
            "latency": {s: suite_report.cdf(v) for s, v in latency.items() if v},
            "latency_budgets": [{"stage": c.stage, **dict(zip(("percentile", "budget_ms"),
                                                             S.parse_budget_text(c.budget), strict=True))}
                                for c in suite.checks if isinstance(c, S.LatencyCheck)],
            "health": health_summary,
            "slices": suite_report.slices(probes.cells, probes.threshold, brightness),
            "worst_frames": [{k: v for k, v in w.items() if k not in ("clean", "perturbed")}
                             for w in artifacts.worst],
        },
    }
    return result, artifacts


def _run_check(session: Session, probes: Probes, idx: int, check: S.Check, budgets: dict[int, budget.BudgetResult],
               health: dict[str, float | int], breaking: dict[str, dict[str, Any]],
               metamorphic_rows: list[dict[str, Any]]) -> S.CheckResult:
    """Measure what one check needs and hand it to the catalogue (harness/checks.py) for the verdict."""
    if isinstance(check, S.LatencyCheck):
        return checks.evaluate(check, budgets[idx])
    if isinstance(check, S.RobustnessCheck):
        d = probe(session, probes, check.perturbation, check.severity)
        seed = perturbations.derive_seed(session.loaded.suite.seed, session.frames[0].index, check.perturbation,
                                         float(check.severity))
        # frames with nothing to lose are counted apart: "22% unstable" must not mean "every frame that had a
        # box lost it"; a prediction appearing on one of them (a hallucinated box) is reported beside the verdict
        kept = [x for x, e in zip(d, probes.empty, strict=True) if not e]
        gained = sum(x > probes.threshold for x, e in zip(d, probes.empty, strict=True) if e)
        r = checks.evaluate(check, checks.Counts(sum(x > probes.threshold for x in kept), len(kept),
                                                 {"first_seed": seed, "nothing_to_lose": len(d) - len(kept),
                                                  "gained_a_prediction": gained}))
        if len(kept) < len(d):
            r.message += (f"; {len(d) - len(kept)} frames had nothing to lose (no clean prediction), {gained} of "
                          "them gained one under the perturbation")
            if not kept:
                r.status = "inconclusive"
        return r
    if isinstance(check, S.BreakingPointCheck):
        bp = breaking_point(session, probes, check)
        breaking[check.perturbation] = bp.as_dict()
        return checks.evaluate(check, bp)
    if isinstance(check, S.MetamorphicCheck):
        rel = metamorphic(session, probes, check)
        metamorphic_rows.append({**rel.as_dict(), "limit": check.max_violation_rate})
        return checks.evaluate(check, rel)
    if isinstance(check, S.GoldenCheck):
        return checks.evaluate(check, golden.compare(session, check))
    if isinstance(check, S.HealthCheck):
        return checks.evaluate(check, checks.Measured(float(health[check.metric]), int(health["frames"])))
    assert isinstance(check, S.DriftCheck)
    psi = float(psi_against_baseline(check.baseline, [session.adapter.describe(c) for c in probes.clean],
                                     model_sha256=session.backend.sha256))
    return checks.evaluate(check, checks.Measured(psi, len(probes.clean)))


def verdict_body(result: dict[str, Any]) -> dict[str, Any]:
    """The ``verdict`` message body (schema.VerdictBody) for a suite result: the verdict and each check's figure."""
    prov = result["provenance"]
    return {"suite": result["suite"], "status": result["status"], "headline": result["headline"],
            "exit_code": result["exit_code"], "duration_s": prov["duration_s"],
            "checks": [{k: c[k] for k in ("name", "kind", "status", "figure", "limit", "unit", "op")}
                       for c in result["checks"]]}


# --- report data ----------------------------------------------------------------------


def _worst_frames(session: Session, probes: Probes, count: int) -> list[dict[str, Any]]:
    """Frames that flip at the lowest severity (then the most often), with what replays them."""
    if not probes.cells or count == 0:
        return []
    scores = []
    for i in range(len(session.frames)):
        flips = [(sev, name) for (name, sev), d in probes.cells.items() if d[i] > probes.threshold]
        if flips:
            sev, name = min(flips)
            scores.append((sev, -len(flips), i, name))
    out = []
    for sev, neg_flips, i, name in sorted(scores)[:count]:
        frame = session.frames[i]
        seed = perturbations.derive_seed(session.loaded.suite.seed, frame.index, name, float(sev))
        perturbed = perturbations.apply(name, session.probe_images[i], float(sev), seed)
        before = session.adapter.describe(probes.clean[i])
        after = session.adapter.describe(session.predict(perturbed))
        fname = f"frame-{frame.index:06d}.webp"
        out.append({"frame": frame.index, "perturbation": name, "severity": sev, "seed": seed, "flips": -neg_flips,
                    "before": before, "after": after, "file": fname,
                    "replay": f"edgeprobe perturb {fname} --name {name} --severity {sev:g} --seed {seed} "
                              f"-o {fname[:-5]}-{name}.png",
                    "clean": session.probe_images[i], "perturbed": perturbed})
    return out
