"""Acceptance suites: a YAML file of checks, and the verdicts they yield.

A suite names the model, the frames, the task and a list of checks (latency
budgets, robustness limits, metamorphic relations, golden-output equivalence,
camera health and drift). Running it gives one verdict per check (pass / fail
/ error / inconclusive, each with its measured figure, limit and provenance)
and one north-star verdict for the suite. This module only holds the schema,
its validation and the verdict arithmetic; the agent runs the checks.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from . import budget, metamorphic, perturbations, yamlconfig
from .errors import ConfigError, did_you_mean
from .modelconfig import ModelConfig, PreprocessConfig, TaskConfig

SCHEMA = "edgeprobe-suite/1"

PosInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
Severity = Annotated[float, msgspec.Meta(ge=0, le=5)]
Unit = Annotated[float, msgspec.Meta(ge=0, le=1)]
Confidence = Annotated[float, msgspec.Meta(gt=0, lt=1)]

Status = Literal["pass", "fail", "error", "inconclusive"]
STATUSES: tuple[str, ...] = ("pass", "fail", "error", "inconclusive")


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


# --- what is measured ----------------------------------------------------------


#: The model and task sections are the agent config's own (harness/modelconfig.py): one spelling for both files.
PreprocessSpec = PreprocessConfig
ModelSpec = ModelConfig
TaskSpec = TaskConfig


class SourceSpec(_Strict, kw_only=True):
    #: video file, image folder, camera index or stream URL
    uri: str
    #: frames in the fixed frame set (robustness, metamorphic, golden, health)
    frames: PosInt = 32
    #: keep every Nth frame of the source, for a more varied frame set
    stride: PosInt = 1
    #: skip this many frames at the start
    skip: NonNegInt = 0


class LatencySpec(_Strict, kw_only=True):
    #: most timed runs (cycling over the frame set); sampling stops earlier once every budget is decided
    samples: PosInt = 2000
    #: ... or after this many seconds of timing
    max_seconds: Annotated[float, msgspec.Meta(gt=0)] = 60.0
    #: runs before timing starts (never in percentiles)
    warmup: NonNegInt = 10


class BrokerSpec(_Strict, kw_only=True):
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1883
    fleet: str = "default"
    device_id: str | None = None
    username: str | None = None
    password: str | None = None


# --- checks ----------------------------------------------------------------------


class _Check(_Strict, tag_field="kind"):
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
    #: decide on the Wilson interval at this confidence (inconclusive when it straddles the limit)
    confidence: Confidence | None = None


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


class GoldenCheck(_Check, tag="golden", kw_only=True):
    #: written by `edgeprobe golden record` on the reference host
    file: str
    #: share of frames whose prediction must match the reference
    min_agreement: Unit = 1.0
    #: task disagreement above this makes a frame differ (default: the task's threshold)
    tolerance: Unit | None = None
    #: set to the golden file's model hash to compare a different (quantised, converted) model
    reference_sha256: str | None = None


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
CHECK_KINDS: tuple[str, ...] = ("latency", "robustness", "breaking_point", "metamorphic", "golden", "health", "drift")


class ReportSpec(_Strict, kw_only=True):
    #: severities at which degradation curves are measured for every perturbation a check names
    curve_severities: list[Severity] = msgspec.field(default_factory=lambda: [1.0, 2.0, 3.0, 4.0, 5.0])
    #: worst frames shown with thumbnails and replay commands
    worst_frames: NonNegInt = 4


class Suite(_Strict, kw_only=True):
    name: str
    description: str = ""
    model: ModelSpec
    source: SourceSpec
    task: TaskSpec = msgspec.field(default_factory=TaskSpec)
    latency: LatencySpec = msgspec.field(default_factory=LatencySpec)
    seed: int = 0
    #: an inconclusive check counts as a failure unless this says "pass"
    inconclusive: Literal["fail", "pass"] = "fail"
    #: model: probes perturb each frame shrunk to cover the model's input (ImageNet-C's pixel scale); native: as read
    probe_resolution: Literal["model", "native"] = "model"
    checks: list[Check] = msgspec.field(default_factory=list)
    report: ReportSpec = msgspec.field(default_factory=ReportSpec)
    #: publish the verdict there (kind `verdict`); `edgeprobe check --broker` overrides
    broker: BrokerSpec | None = None


@dataclass(frozen=True)
class LoadedSuite:
    suite: Suite
    path: Path
    #: sha256 of the normalised suite: provenance of every verdict
    sha256: str
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.path} line {line}" if line else str(self.path)


# --- budgets ---------------------------------------------------------------------

def parse_budget_text(text: str, stage: str = "e2e") -> tuple[float, float]:
    """'p99=30ms' -> (99.0, 30.0); ConfigError with the expected form otherwise."""
    try:
        b = budget.parse_budget(text, stage)
    except (ValueError, ConfigError) as exc:
        raise ConfigError(f"latency budget {text!r} does not parse ({exc}); write it like p99=30ms") from None
    return float(b.percentile), float(b.budget_ms)


# --- loading ---------------------------------------------------------------------


def load_suite(path: str | Path) -> LoadedSuite:
    """Read, validate and resolve a suite; every problem is one ConfigError sentence."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"suite file {path} does not exist; pass the path to a suite YAML file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read suite file {path}: {exc}") from None
    return parse_suite(text, path)


def parse_suite(text: str, path: Path) -> LoadedSuite:
    where = str(path)
    data, lines = yamlconfig.parse_yaml(text, where)
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of keys (name:, model:, source:, checks:)")
    _check_kinds(data, where, lines)
    try:
        suite = msgspec.convert(data, Suite)
    except msgspec.ValidationError as exc:
        raise ConfigError(yamlconfig.explain(exc, where, lines, Suite, data)) from None
    loaded = LoadedSuite(suite, path, "", lines)
    base = path.parent
    suite.model.path = yamlconfig.resolve_path(suite.model.path, base)
    if not yamlconfig.looks_like_url_or_device(suite.source.uri):
        suite.source.uri = yamlconfig.resolve_path(suite.source.uri, base)
    for i, check in enumerate(suite.checks):
        _validate_check(loaded, i, check, base)
    digest = hashlib.sha256(msgspec.json.encode(suite, order="sorted")).hexdigest()
    return LoadedSuite(suite, path, digest, lines)


def _check_kinds(data: dict[str, Any], where: str, lines: dict[str, int]) -> None:
    """A misspelt check kind gets a 'did you mean' (msgspec only says 'invalid tag')."""
    checks = data.get("checks")
    if not isinstance(checks, list):
        return
    for i, item in enumerate(checks):
        if not isinstance(item, dict):
            continue
        kind = item.get("kind")
        line = lines.get(f"checks[{i}]")
        loc = f"{where} line {line}" if line else where
        if kind is None:
            raise ConfigError(f"{loc}: checks[{i}] has no kind; use one of {', '.join(CHECK_KINDS)}")
        if kind not in CHECK_KINDS:
            raise ConfigError(f"{loc}: checks[{i}].kind {kind!r} is not a check{did_you_mean(str(kind), CHECK_KINDS)};"
                              f" use one of {', '.join(CHECK_KINDS)}")


def _validate_check(loaded: LoadedSuite, i: int, check: Check, base: Path) -> None:
    if isinstance(check, LatencyCheck):
        try:
            parse_budget_text(check.budget)
        except ConfigError as exc:
            raise ConfigError(f"{loaded.line_of(f'checks[{i}].budget')}: {exc}") from None
    if isinstance(check, (RobustnessCheck, BreakingPointCheck)):
        try:
            perturbations.get(check.perturbation)
        except perturbations.PerturbationError as exc:
            raise ConfigError(f"{loaded.line_of(f'checks[{i}].perturbation')}: {exc}") from None
    if isinstance(check, MetamorphicCheck):
        try:
            metamorphic.parse({"name": check.relation, **check.params})
        except ConfigError as exc:
            raise ConfigError(f"{loaded.line_of(f'checks[{i}].relation')}: {exc}") from None
    if isinstance(check, HealthCheck) and check.min is None and check.max is None:
        raise ConfigError(f"{loaded.line_of(f'checks[{i}]')}: health check on {check.metric} needs min: or max:")
    if isinstance(check, GoldenCheck):
        check.file = yamlconfig.resolve_path(check.file, base)
    if isinstance(check, DriftCheck):
        check.baseline = yamlconfig.resolve_path(check.baseline, base)


def check_name(check: Check) -> str:
    """A short, stable name for tables, JUnit and diffs."""
    if check.name:
        return check.name
    if isinstance(check, LatencyCheck):
        pct, _ = parse_budget_text(check.budget)
        return f"latency {check.stage} p{pct:g}"
    if isinstance(check, RobustnessCheck):
        return f"{check.perturbation} @ severity {check.severity:g}"
    if isinstance(check, BreakingPointCheck):
        return f"{check.perturbation} breaking point"
    if isinstance(check, MetamorphicCheck):
        return f"metamorphic {check.relation}"
    if isinstance(check, GoldenCheck):
        return f"golden {Path(check.file).name}"
    if isinstance(check, HealthCheck):
        return f"health {check.metric}"
    return f"drift {Path(check.baseline).name}"


# --- verdicts --------------------------------------------------------------------


@dataclass
class CheckResult:
    """One check's verdict with the figure behind it."""

    name: str
    kind: str
    status: Status
    #: the measured figure (None when it could not be measured)
    figure: float | None
    #: the limit it was held to
    limit: float | None
    unit: str = ""
    #: "<=" (figure must not exceed the limit) or ">="
    op: str = "<="
    message: str = ""
    #: confidence bounds, sample counts, per-frame detail
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def better(self) -> str:
        return "lower" if self.op == "<=" else "higher"

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["better"] = self.better
        return d


def decide(figure: float, limit: float, op: str, low: float | None = None, high: float | None = None) -> Status:
    """pass/fail on the figure, or on its interval when one is given (straddling = inconclusive)."""
    if math.isnan(figure):
        return "error"
    if low is None or high is None:
        ok = figure <= limit if op == "<=" else figure >= limit
        return "pass" if ok else "fail"
    if op == "<=":
        return "pass" if high <= limit else "fail" if low > limit else "inconclusive"
    return "pass" if low >= limit else "fail" if high < limit else "inconclusive"


def north_star(results: list[CheckResult], inconclusive: str = "fail") -> Status:
    """The suite's one verdict: error beats fail beats inconclusive beats pass."""
    statuses = {r.status for r in results}
    if "error" in statuses:
        return "error"
    if "fail" in statuses:
        return "fail"
    if "inconclusive" in statuses:
        return "fail" if inconclusive == "fail" else "pass"
    return "pass"


def exit_code(status: str) -> int:
    return 0 if status == "pass" else 1


def headline(results: list[CheckResult], status: str) -> str:
    """One sentence: the north star and what drove it."""
    n = len(results)
    bad = [r for r in results if r.status != "pass"]
    if not bad:
        return f"PASS: all {n} checks passed"
    parts = "; ".join(f"{r.name}: {r.status}" + (f" ({r.figure:.3g} vs limit {r.op} {r.limit:.3g})"
                                                  if r.figure is not None and r.limit is not None else "")
                      for r in bad[:3])
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    return f"{status.upper()}: {len(bad)} of {n} checks not passed ({parts}{more})"
