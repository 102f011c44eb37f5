"""The catalogue of check kinds: one record per kind, registered once.

A record (:class:`CheckKind`) holds everything a kind is: its YAML tag, its
config type (a msgspec Struct), how its settings are validated, its default
name, its unit and comparison, and ``evaluate``: a pure function from the
check's config and the *evidence* the agent measured (counts, a budget
result, a breaking-point bracket) to a :class:`~.verdict.CheckResult`. The
agent only measures (agent/suite_runner.py); every verdict rule lives here,
so a new kind is one record and the suite schema, validation, names and
verdicts follow from it.

Evidence first: every result states its n and, where the figure is a share,
its Wilson interval at the check's ``confidence``; a share whose interval
straddles the limit is inconclusive unless the check says ``decide: point``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Annotated, Any, Literal

import msgspec

from edgeprobe.harness import budget, metamorphic, perturbations
from edgeprobe.harness.breaking_point import BreakingPoint
from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.registry import Registry
from edgeprobe.harness.stability import risk_zone, wilson_interval
from edgeprobe.harness.verdict import CheckResult, Status, decide
from edgeprobe.harness.yamlconfig import Confidence, NonNegInt, Severity, Unit

Decide = Literal["interval", "point"]


class _Check(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, tag_field="kind"):
    #: shown in tables and JUnit; a default is derived from the check's settings
    name: str | None = None


class LatencyCheck(_Check, tag="latency", kw_only=True):
    #: e.g. "p99=30ms", "p95 < 12.5 ms"
    budget: str
    stage: Literal["decode", "preprocess", "inference", "postprocess", "e2e"] = "e2e"
    confidence: Confidence = 0.95


class RobustnessCheck(_Check, tag="robustness", kw_only=True):
    perturbation: str
    severity: Severity = 3.0
    #: most frames whose prediction may change under the perturbation
    max_unstable: Unit = 0.2
    #: the Wilson interval's confidence; an interval across the limit is inconclusive
    confidence: Confidence = 0.95
    #: interval (default) or point: judge the point estimate alone, as the suite explicitly asks
    decide: Decide = "interval"


class BreakingPointCheck(_Check, tag="breaking_point", kw_only=True):
    perturbation: str
    #: the model must hold (unstable fraction surely below ``threshold``) up to at least this severity
    min_severity: Severity = 2.0
    threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.2
    #: each look is decided on its Wilson interval at this confidence (harness/breaking_point.py)
    confidence: Confidence = 0.95
    #: bisection stops once both bracket ends are known to within this severity
    tolerance: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.1
    #: bisection looks after the grid over (0, 5]
    max_rounds: NonNegInt = 6


class MetamorphicCheck(_Check, tag="metamorphic", kw_only=True):
    #: rotate90/180/270, hflip, vflip, translate, brightness (harness.metamorphic says what each expects)
    relation: str
    max_violation_rate: Unit = 0.1
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    confidence: Confidence = 0.95
    decide: Decide = "interval"


class GoldenCheck(_Check, tag="golden", kw_only=True):
    #: written by `edgeprobe golden record` on the reference host
    file: str
    #: share of frames whose prediction must match the reference
    min_agreement: Unit = 1.0
    #: task disagreement above this makes a frame differ (default: the task's threshold)
    tolerance: Unit | None = None
    #: set to the golden file's model hash to compare a different (quantised, converted) model
    reference_sha256: str | None = None
    confidence: Confidence = 0.95
    #: point by default: equivalence is a statement about the recorded frames themselves, and an interval could
    #: never reach the default min_agreement of 1.0; "interval" treats the frames as a sample of the deployment
    decide: Decide = "point"


class HealthCheck(_Check, tag="health", kw_only=True):
    #: means over the frame set (fps is left out: the frame set is read ahead, not paced like a camera)
    metric: Literal["brightness", "contrast", "sharpness", "clipped", "frozen_frames"]
    min: float | None = None
    max: float | None = None


class DriftCheck(_Check, tag="drift", kw_only=True):
    #: written by `edgeprobe baseline record`
    baseline: str
    max_psi: Annotated[float, msgspec.Meta(ge=0)] = 0.2


Check = LatencyCheck | RobustnessCheck | BreakingPointCheck | MetamorphicCheck | GoldenCheck | HealthCheck | DriftCheck


# --- evidence: what the agent measured for one check --------------------------------


@dataclass(frozen=True)
class Counts:
    """k of n frames did the bad thing (changed prediction, violated a relation, differed from golden)."""

    k: int
    n: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Measured:
    """A plain figure over n frames (a health mean, a PSI); ``figure`` None when it could not be measured."""

    figure: float | None
    n: int
    note: str = ""


# --- the record -------------------------------------------------------------------


@dataclass(frozen=True)
class CheckKind:
    """Everything one kind of check is (see the module docstring)."""

    name: str
    config: type[Any]
    unit: str
    op: Literal["<=", ">="]
    #: (name, check, evidence) -> result; pure
    evaluate: Callable[[str, Any, Any], CheckResult]
    #: default name for tables, JUnit and diffs
    default_name: Callable[[Any], str]
    #: raises ConfigError (without the location: the suite loader adds it) on settings that cannot work
    validate: Callable[[Any], None] = lambda check: None
    #: the key a validation error points at (``checks[i].<key>``)
    key: str = ""
    #: file settings resolved against the suite's folder
    paths: tuple[str, ...] = ()


KINDS: Registry[CheckKind] = Registry("check kind", listing="edgeprobe check --help")


def kind_of(check: Any) -> CheckKind:
    return KINDS.get(str(check.__struct_config__.tag))


def names() -> tuple[str, ...]:
    return tuple(KINDS.names())


def z_of(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _share(name: str, kind: CheckKind, check: Any, k: int, n: int, limit: float, bad: bool,
           what: str, details: dict[str, Any]) -> CheckResult:
    """A share of frames with its Wilson interval; ``bad``: the share counts failures (lower is better)."""
    share = (k / n if bad else (n - k) / n) if n else None  # no frame: no figure (JSON has no NaN)
    lo, hi = wilson_interval(k if bad else n - k, n, z_of(check.confidence)) if n else (0.0, 1.0)
    status: Status = ("inconclusive" if share is None else decide(share, limit, kind.op) if check.decide == "point"
                      else decide(share, limit, kind.op, lo, hi))
    how = "; judged on the point estimate, as the check asks" if check.decide == "point" else ""
    return CheckResult(name=name, kind=kind.name, status=status, figure=share, limit=limit, unit=kind.unit,
                       op=kind.op, message=f"{k} of {n} frames {what} ({check.confidence:.0%} CI "
                       f"{lo:.0%}-{hi:.0%}{how})",
                       details={"n": n, "ci_low": lo, "ci_high": hi, "confidence": check.confidence,
                                "decide": check.decide, **details})


def _latency(name: str, check: LatencyCheck, r: budget.BudgetResult) -> CheckResult:
    d = r.as_dict()
    d.pop("budget", None)
    note = f"; {r.warnings[0]}" if r.warnings and r.status == "inconclusive" else ""
    return CheckResult(name=name, kind="latency", status=r.status, figure=r.estimate_ms, limit=r.budget.budget_ms,
                       unit="ms", message=r.message + note,
                       details={**d, "stage": check.stage, "percentile": r.budget.percentile})


def _robustness(name: str, check: RobustnessCheck, ev: Counts) -> CheckResult:
    r = _share(name, KINDS.get("robustness"), check, ev.k, ev.n, check.max_unstable, True, "changed prediction",
               {"unstable": ev.k, "perturbation": check.perturbation, "severity": check.severity, **ev.details})
    if r.figure is not None and ev.n:
        r.details["zone"] = risk_zone(r.figure)
        r.message += f", zone {r.details['zone']}"
    # frames with nothing to lose are counted apart: "22% unstable" must not mean "every frame that had a box
    # lost it"; a prediction appearing on one of them (a hallucinated box) is reported beside the verdict
    return _nothing_to_lose(r, int(ev.details.get("nothing_to_lose", 0)), int(ev.details.get("gained_a_prediction", 0)))


def _nothing_to_lose(r: CheckResult, empty: int, gained: int | None = None) -> CheckResult:
    """Frames with nothing to lose are counted apart; with no other frame there is no verdict."""
    if empty:
        r.details["nothing_to_lose"] = empty
        if gained is not None:
            r.details["gained_a_prediction"] = gained
            r.message += (f"; {empty} frames had nothing to lose (no clean prediction), {gained} of them gained one "
                          "under the perturbation")
        if not r.details.get("n"):
            r.status = "inconclusive"
    return r


def _breaking_point(name: str, check: BreakingPointCheck, bp: BreakingPoint) -> CheckResult:
    n = max((lk.n for lk in bp.looks), default=0)
    result = CheckResult(name=name, kind="breaking_point", status=bp.decide(check.min_severity),
                         figure=bp.low if bp.looks else None, limit=check.min_severity, unit="severity", op=">=",
                         message=f"{bp.describe()}; must hold up to {check.min_severity:g}",
                         details={"n": n, "verdict": bp.verdict, "low": bp.low, "possibly": bp.possibly,
                                  "surely": bp.surely, "holds": bp.holds, "rounds": bp.rounds,
                                  "threshold": check.threshold, "confidence": check.confidence,
                                  "tolerance": check.tolerance, "perturbation": check.perturbation})
    return _nothing_to_lose(result, bp.nothing_to_lose)


def _metamorphic(name: str, check: MetamorphicCheck, r: metamorphic.RelationResult) -> CheckResult:
    result = _share(name, KINDS.get("metamorphic"), check, r.violations, r.n, check.max_violation_rate, True,
                    f"violate: {r.expect}", {"violations": r.violations, "relation": check.relation})
    return _nothing_to_lose(result, r.nothing_to_lose, r.gained)


def _golden(name: str, check: GoldenCheck, ev: Counts) -> CheckResult:
    """Same model, same frames: the verdict; how this host decodes the frames is a finding beside it."""
    model, host = ev.details.get("model", "?"), ev.details.get("host", "?")
    r = _share(name, KINDS.get("golden"), check, ev.k, ev.n, check.min_agreement, False,
               f"differ from the reference ({model} on {host}, {ev.details.get('fed', 'recorded frames')})",
               {"frames": ev.n, **ev.details})
    if ev.n == 0:  # every frame decoded differently and the file holds none to feed: nothing to judge the model on
        r.status = "inconclusive"
    if "input_warning" in ev.details:
        r.message += "; inputs differ, see the warning"
    return r


def _health(name: str, check: HealthCheck, ev: Measured) -> CheckResult:
    assert ev.figure is not None
    value = ev.figure
    ok = (check.min is None or value >= check.min) and (check.max is None or value <= check.max)
    limit = check.max if check.max is not None else check.min
    bounds = " and ".join(x for x in (f">= {check.min:g}" if check.min is not None else "",
                                      f"<= {check.max:g}" if check.max is not None else "") if x)
    mean = "" if check.metric == "frozen_frames" else "mean "
    return CheckResult(name=name, kind="health", status="pass" if ok else "fail", figure=value, limit=limit,
                       unit=check.metric, op="<=" if check.max is not None else ">=",
                       message=f"{mean}{check.metric} {value:.3g} over {ev.n} frames (must be {bounds})",
                       details={"n": ev.n, "min": check.min, "max": check.max})


def _drift(name: str, check: DriftCheck, ev: Measured) -> CheckResult:
    psi = ev.figure if ev.figure is not None else float("nan")
    return CheckResult(name=name, kind="drift", status=decide(psi, check.max_psi, "<="), figure=ev.figure,
                       limit=check.max_psi, unit="PSI", message=f"PSI {psi:.3f} over {ev.n} frames against "
                       f"{check.baseline}", details={"n": ev.n})


def _check_budget(check: LatencyCheck) -> None:
    from edgeprobe.harness.suite import parse_budget_text

    parse_budget_text(check.budget)


def _check_perturbation(check: RobustnessCheck | BreakingPointCheck) -> None:
    try:
        perturbations.get(check.perturbation)
    except perturbations.PerturbationError as exc:
        raise ConfigError(str(exc)) from None


def _check_relation(check: MetamorphicCheck) -> None:
    metamorphic.parse({"name": check.relation, **check.params})


def _check_health(check: HealthCheck) -> None:
    if check.min is None and check.max is None:
        raise ConfigError(f"health check on {check.metric} needs min: or max:")


def _latency_name(check: LatencyCheck) -> str:
    from edgeprobe.harness.suite import parse_budget_text

    return f"latency {check.stage} p{parse_budget_text(check.budget)[0]:g}"


for _kind in (
    CheckKind("latency", LatencyCheck, "ms", "<=", _latency, _latency_name, _check_budget, "budget"),
    CheckKind("robustness", RobustnessCheck, "unstable share", "<=", _robustness,
              lambda c: f"{c.perturbation} @ severity {c.severity:g}", _check_perturbation, "perturbation"),
    CheckKind("breaking_point", BreakingPointCheck, "severity", ">=", _breaking_point,
              lambda c: f"{c.perturbation} breaking point", _check_perturbation, "perturbation"),
    CheckKind("metamorphic", MetamorphicCheck, "violation rate", "<=", _metamorphic,
              lambda c: f"metamorphic {c.relation}", _check_relation, "relation"),
    CheckKind("golden", GoldenCheck, "share", ">=", _golden, lambda c: f"golden {Path(c.file).name}",
              paths=("file",)),
    CheckKind("health", HealthCheck, "", "<=", _health, lambda c: f"health {c.metric}", _check_health),
    CheckKind("drift", DriftCheck, "PSI", "<=", _drift, lambda c: f"drift {Path(c.baseline).name}",
              paths=("baseline",)),
):
    KINDS.register(_kind.name, _kind)


def mark_under_load(result: CheckResult, flags: list[str], strict: bool = False) -> CheckResult:
    """A latency verdict taken while the guards saw load or throttling says so; under --strict it decides nothing.

    The figure is about those conditions, not only about the model (agent/guards.py): a pass may not hold on a
    quiet board and a fail may be the neighbour's fault.
    """
    if result.kind != "latency" or not flags:
        return result
    result.details["under_load"] = list(flags)
    result.message += f"; taken under load ({'; '.join(flags)})"
    if strict and result.status in ("pass", "fail"):
        result.details["status_without_load"] = result.status
        result.status = "inconclusive"
        result.message += ": inconclusive under --strict"
    return result


def evaluate(check: Any, evidence: Any) -> CheckResult:
    """The verdict of one check on what was measured for it."""
    kind = kind_of(check)
    return kind.evaluate(check_name(check), check, evidence)


def check_name(check: Any) -> str:
    """A short, stable name for tables, JUnit and diffs."""
    return str(check.name) if check.name else kind_of(check).default_name(check)
