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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from edgeprobe.harness import budget, checks, yamlconfig
from edgeprobe.harness.checks import (
    BreakingPointCheck,
    Check,
    DriftCheck,
    GoldenCheck,
    HealthCheck,
    LatencyCheck,
    MetamorphicCheck,
    NonNegInt,
    RobustnessCheck,
    Severity,
    check_name,
)
from edgeprobe.harness.errors import ConfigError, did_you_mean
from edgeprobe.harness.modelconfig import ModelConfig, PreprocessConfig, TaskConfig, check_task_names
from edgeprobe.harness.verdict import STATUSES, CheckResult, Status, decide, exit_code, headline, north_star
from edgeprobe.harness.yamlconfig import PosInt

SCHEMA = "edgeprobe-suite/1"



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


# --- checks: the catalogue in harness/checks.py holds every kind -------------------

CHECK_KINDS: tuple[str, ...] = checks.names()


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
    #: an undecided check makes the suite inconclusive (exit 3), or counts as a failure or a pass
    inconclusive: Literal["inconclusive", "fail", "pass"] = "inconclusive"
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
    return parse_suite(yamlconfig.read_file(path, "suite", "a suite YAML file"), path)


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
    check_task_names(suite.task, where, lines)
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
    kind = checks.kind_of(check)
    try:
        kind.validate(check)
    except ConfigError as exc:
        where = f"checks[{i}].{kind.key}" if kind.key else f"checks[{i}]"
        raise ConfigError(f"{loaded.line_of(where)}: {exc}") from None
    for key in kind.paths:
        setattr(check, key, yamlconfig.resolve_path(getattr(check, key), base))



__all__ = ["STATUSES", "BreakingPointCheck", "Check", "CheckResult", "DriftCheck", "GoldenCheck", "HealthCheck",
           "LatencyCheck", "LoadedSuite", "MetamorphicCheck", "RobustnessCheck", "Status", "Suite", "check_name",
           "decide", "exit_code", "headline", "load_suite", "north_star", "parse_budget_text", "parse_suite"]
