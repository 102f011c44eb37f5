"""Runs an acceptance suite on the device: it only measures; the verdicts are the check catalogue's.

The suite reuses the deployed path (agent/pipeline.py) on one session (agent/suite_session.py): latency is
timed stage by stage over the fixed frame set, probes are cells on the same frames (agent/suite_probes.py).
Each check kind's evidence is measured by its entry in :data:`EVIDENCE` and judged by its record in
harness/checks.py; the report data is shaped by harness/suite_report.py.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeprobe import __version__
from edgeprobe.agent import golden
from edgeprobe.agent.guards import GuardMonitor, Guards, load_flags
from edgeprobe.agent.pipeline import STAGES
from edgeprobe.agent.sources import open_source
from edgeprobe.agent.suite_probes import Probes, breaking_point, clean_probes, metamorphic, probe, worst_frames
from edgeprobe.agent.suite_session import Progress, Session, open_session
from edgeprobe.harness import budget, checks, perturbations, suite_report
from edgeprobe.harness import suite as S
from edgeprobe.harness.breaking_point import BreakingPoint
from edgeprobe.harness.drift import psi_against_baseline
from edgeprobe.harness.errors import ConfigError, EdgeprobeError
from edgeprobe.harness.health import HealthWindow, frame_stats, thumbnail
from edgeprobe.harness.metamorphic import RelationResult


@dataclass
class Artifacts:
    """What the HTML report shows beyond the JSON: pictures of the worst frames."""

    #: frame index, perturbation, severity, seed, replay command, and the clean and perturbed BGR images
    worst: list[dict[str, Any]] = field(default_factory=list)


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


# --- the run -----------------------------------------------------------------------


def frame_set_warnings(loaded: S.LoadedSuite, frames: int) -> list[str]:
    """What the reader must know about the evidence before any figure: a frame set shorter than asked."""
    asked = loaded.suite.source.frames
    if frames >= asked:
        return []
    return [f"source {loaded.suite.source.uri} gave {frames} of the {asked} frames asked ({loaded.line_of('source')}"
            f", source.frames): every robustness, golden and health figure rests on {frames} frames"]


@dataclass
class Measured:
    """What the suite measured before any check is judged; each kind's evidence is read from it."""

    session: Session
    probes: Probes
    budgets: dict[int, budget.BudgetResult]
    health: dict[str, float | int]
    #: report data some checks add while measuring: breaking-point curves, metamorphic rows
    breaking: dict[str, dict[str, Any]] = field(default_factory=dict)
    metamorphic: list[dict[str, Any]] = field(default_factory=list)


def _robustness(m: Measured, idx: int, check: S.RobustnessCheck) -> checks.Counts:
    d = probe(m.session, m.probes, check.perturbation, check.severity)
    seed = perturbations.derive_seed(m.session.loaded.suite.seed, m.session.frames[0].index, check.perturbation,
                                     float(check.severity))
    kept = [x for x, e in zip(d, m.probes.empty, strict=True) if not e]
    gained = sum(x > m.probes.threshold for x, e in zip(d, m.probes.empty, strict=True) if e)
    return checks.Counts(sum(x > m.probes.threshold for x in kept), len(kept),
                         {"first_seed": seed, "nothing_to_lose": len(d) - len(kept), "gained_a_prediction": gained})


def _breaking_point(m: Measured, idx: int, check: S.BreakingPointCheck) -> BreakingPoint:
    bp = breaking_point(m.session, m.probes, check)
    m.breaking[check.perturbation] = bp.as_dict()
    return bp


def _metamorphic(m: Measured, idx: int, check: S.MetamorphicCheck) -> RelationResult:
    rel = metamorphic(m.session, m.probes, check)
    m.metamorphic.append({**rel.as_dict(), "limit": check.max_violation_rate})
    return rel


def _drift(m: Measured, idx: int, check: S.DriftCheck) -> checks.Measured:
    psi = psi_against_baseline(check.baseline, [m.session.adapter.describe(c) for c in m.probes.clean],
                               model_sha256=m.session.backend.sha256)
    return checks.Measured(float(psi), len(m.probes.clean))


#: check kind (harness/checks.KINDS) -> how the agent measures its evidence; the verdict is the kind's evaluate
EVIDENCE: dict[str, Callable[[Measured, int, Any], Any]] = {
    "latency": lambda m, idx, check: m.budgets[idx],
    "robustness": _robustness,
    "breaking_point": _breaking_point,
    "metamorphic": _metamorphic,
    "golden": lambda m, idx, check: golden.compare(m.session, check),
    "health": lambda m, idx, check: checks.Measured(float(m.health[check.metric]), int(m.health["frames"])),
    "drift": _drift,
}


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
    latency_checks = [c for c in suite.checks if isinstance(c, S.LatencyCheck)]
    t_latency = time.perf_counter()
    # the same guards as `bench`, over the timing loop: a sign-off taken under load must say so
    monitor = GuardMonitor(guards or Guards())
    latency, budgets = measure_latency(session, progress, monitor) if latency_checks else ({}, {})
    latency_s = time.perf_counter() - t_latency
    guard_report = monitor.report()
    under_load = load_flags(guard_report) if latency_checks else []
    health = HealthWindow()
    brightness = []
    for f in session.frames:
        health.add(f.image, f.t_capture_ns)
        brightness.append(frame_stats(thumbnail(f.image)).brightness)
    m = Measured(session, clean_probes(session), budgets, health.summary())

    # Degradation curves for every perturbation a check names.
    curve_names = sorted({c.perturbation for c in suite.checks if isinstance(c, (S.RobustnessCheck,
                                                                                 S.BreakingPointCheck))})
    severities = sorted({*suite.report.curve_severities, *(c.severity for c in suite.checks
                                                            if isinstance(c, S.RobustnessCheck))})
    for i, (name, sev) in enumerate((n, s) for n in curve_names for s in severities):
        probe(session, m.probes, name, sev)
        if progress:
            progress("perturbing", i + 1, len(curve_names) * len(severities))

    results: list[S.CheckResult] = []
    for idx, check in enumerate(suite.checks):
        if progress:
            progress("checking", idx + 1, len(suite.checks))
        t_check = time.perf_counter()
        kind = checks.kind_of(check)
        try:
            r = checks.evaluate(check, EVIDENCE[kind.name](m, idx, check))
        except EdgeprobeError:
            raise
        except Exception as exc:  # a check that crashed is an error verdict, not a lost run
            r = S.CheckResult(name=S.check_name(check), kind=kind.name, status="error", figure=None, limit=None,
                              message=f"{type(exc).__name__}: {exc}")
        r = checks.mark_under_load(r, under_load, strict)
        # latency checks also carry their share of the timing loop, which ran for all of them at once
        r.seconds = round(time.perf_counter() - t_check + latency_s / max(1, len(latency_checks))
                          * (r.kind == "latency"), 3)
        results.append(r)

    # a decoder that differs from the reference host's is the user's to know, beside the golden verdict
    warnings += [r.details["input_warning"] for r in results if r.kind == "golden" and "input_warning" in r.details]
    status = S.north_star(results, suite.inconclusive)
    artifacts = Artifacts(worst=worst_frames(session, m.probes, suite.report.worst_frames))
    result: dict[str, Any] = {
        "schema": S.SCHEMA, "suite": suite.name, "description": suite.description, "status": status,
        "headline": S.headline(results, status), "exit_code": S.exit_code(status),
        "inconclusive_counts_as": suite.inconclusive, "warnings": warnings, "checks": [r.as_dict() for r in results],
        "provenance": {
            **_provenance(session), "suite_path": str(loaded.path), "config_sha256": loaded.sha256,
            "seeds": {"suite": suite.seed, "derivation": "harness.perturbations.derive_seed(seed, frame, name, sev)"},
            "source": {"uri": suite.source.uri, "frames": [f.index for f in session.frames]},
            "started": started.isoformat(timespec="seconds"), "duration_s": round(time.perf_counter() - t_start, 2),
            "guards": guard_report.as_dict() if latency_checks else None,
        },
        "data": suite_report.data(
            cells=m.probes.cells, threshold=m.probes.threshold, empty=m.probes.empty, latency=latency,
            breaking=m.breaking, metamorphic=m.metamorphic, health=m.health, brightness=brightness,
            worst=artifacts.worst,
            budgets=[{"stage": c.stage, **dict(zip(("percentile", "budget_ms"), S.parse_budget_text(c.budget),
                                                    strict=True))} for c in latency_checks]),
    }
    return result, artifacts


def _provenance(session: Session) -> dict[str, Any]:
    """The model and the device a suite ran on."""
    b = session.backend
    return {"model_path": str(b.path), "model_sha256": b.sha256, "runtime": b.runtime, "providers": b.providers,
            "agent_version": __version__, "task": session.adapter.name,
            "device": {"host": platform.node(), "platform": platform.platform(), "machine": platform.machine(),
                       "processor": platform.processor(), "cpus": os.cpu_count(),
                       "python": platform.python_version()}}
