"""The agent's YAML configuration, validated with errors that name key and line.

The schema is a tree of msgspec Structs: msgspec reports the failing path
(``$.probe.every_n_frames``) and we map it back to the YAML line, so a user
reads "agent.yaml line 12: probe.every_n_frames: Expected `int`, got `str`"
rather than a traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from edgeprobe.harness import yamlconfig
from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.modelconfig import ModelConfig, PreprocessConfig, TaskConfig, check_task_names
from edgeprobe.harness.yamlconfig import NonNegInt, PosInt, Severity, Unit

__all__ = ["AgentConfig", "LoadedConfig", "ModelConfig", "PreprocessConfig", "TaskConfig", "load_config"]


class Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class SourceConfig(Strict):
    #: video file, image folder, camera index / device path, or stream URL
    uri: str
    #: restart a video file at its end (monitoring a recorded scene forever)
    loop: bool = False
    #: deliver file frames at the file's own fps, like a live camera
    pace: bool = False
    #: live sources: stop with an error on a failed open or an outage instead of retrying
    fail_fast: bool = False
    #: live sources: longest wait to open a camera/stream, and for its next frame, before an outage is declared
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    #: live sources: reconnect delays grow from the first to the cap, with jitter
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0


class PerturbationConfig(Strict):
    name: str
    severities: list[Severity] = msgspec.field(default_factory=lambda: [1.0, 3.0, 5.0])


class BreakingPointConfig(Strict):
    #: search each perturbation's breaking point on a fixed sample of recent probed frames
    enabled: bool = False
    every_n_windows: PosInt = 1
    #: 16 is the fewest on which a look with no unstable frame can show a 20% share holding at 95%
    #: (benchmarks/breaking_point.py gives the error rates this buys)
    frames: PosInt = 16
    #: unstable fraction that counts as broken for the search (default: the at-risk zone's start)
    threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.2
    #: each look is decided on its Wilson interval at this confidence (harness/breaking_point.py)
    confidence: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.95
    #: bisection stops once both bracket ends are known to within this severity
    tolerance: Annotated[float, msgspec.Meta(gt=0, le=5)] = 0.1
    #: bisection looks after the grid over (0, 5]
    max_rounds: Annotated[int, msgspec.Meta(ge=0)] = 6


class RelationConfig(Strict):
    #: rotate90 | rotate180 | rotate270 | hflip | vflip | translate | brightness (see harness.metamorphic)
    name: str
    #: e.g. {clockwise_labels: true} for an orientation classifier counting clockwise, {fraction: 0.02}
    params: dict[str, bool | float] = msgspec.field(default_factory=dict)


class RiskZonesConfig(Strict):
    at_risk: Unit = 0.2
    broken: Unit = 0.5


class ProbeConfig(Strict):
    enabled: bool = True
    #: probe one frame in every N (the duty cycle that keeps probing cheap)
    every_n_frames: PosInt = 10
    #: ... or probe whenever probing has used less than this share of the loop's time (overrides every_n_frames)
    cpu_share: Annotated[float, msgspec.Meta(gt=0, lt=1)] | None = None
    seed: int = 0
    perturbations: list[PerturbationConfig] = msgspec.field(
        default_factory=lambda: [
            PerturbationConfig(name="gaussian_noise"),
            PerturbationConfig(name="gaussian_blur"),
            PerturbationConfig(name="pixel_dropout"),
        ]
    )
    breaking_point: BreakingPointConfig = msgspec.field(default_factory=BreakingPointConfig)
    #: metamorphic relations checked on probed frames
    relations: list[RelationConfig] = msgspec.field(default_factory=list)
    risk_zones: RiskZonesConfig = msgspec.field(default_factory=RiskZonesConfig)
    #: model: perturb the frame shrunk to just cover the model's input (ImageNet-C's pixel scale; see
    #: harness/probe_view.py); native: the full frame
    resolution: Literal["model", "native"] = "model"
    #: probes run on a background worker with its own model session of this many threads
    threads: PosInt = 1
    #: process: the worker is a child process at nice 19 (agent/probe_process.py), so it never holds the deployed
    #: loop's interpreter lock; thread: a thread of this process (agent/probe_worker.py), for platforms where a
    #: child process cannot be started or memory is tighter than CPU (the SDK's worker is always a thread of the
    #: SDK's own process, which is already apart from the application's)
    isolation: Literal["process", "thread"] = "process"
    #: idle: probe inferences run only in the deployed loop's idle time, and only when one fits before the next
    #: frame (agent/idle_gate.py); any: whenever the worker has work; auto: idle when the deployed session's
    #: threads plus the probe's exceed the board's cores (the SDK cannot see the app's threads: any)
    schedule: Literal["auto", "idle", "any"] = "auto"
    #: due frames waiting for the worker; a frame due while the queue is full is dropped and counted
    queue: PosInt = 2
    #: wait: the loop waits for queue room and each window waits for its probes (replaying a file as fast as it
    #: decodes has no deadline to miss); drop: never wait (live cameras, paced sources, the SDK); auto picks
    #: wait for an unpaced file or folder and drop otherwise
    backpressure: Literal["auto", "wait", "drop"] = "auto"


class WindowConfig(Strict):
    #: frames per reporting window
    frames: PosInt = 100
    #: ... or seconds, whichever comes first
    seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    #: inferences run before measuring (never in percentiles)
    warmup: NonNegInt = 10


class BrokerConfig(Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = None
    keepalive: PosInt = 30
    #: TLS: the CA that signed the broker's certificate (enables TLS); client cert/key only if the broker asks
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


class SpoolConfig(Strict):
    path: str = "edgeprobe-spool.db"
    max_rows: PosInt = 100_000
    max_bytes: PosInt = 256 * 1024 * 1024


class HealthMonitorConfig(Strict):
    #: frames in the rolling window whose median is judged against the band, and how often it is judged
    window_frames: Annotated[int, msgspec.Meta(ge=2)] = 30
    check_every: PosInt = 5
    #: without monitor.baseline: learn bands (and the drift reference) from the run's first N frames; 0: don't
    learn_frames: NonNegInt = 100
    #: a band is the reference's 2nd-98th percentile widened by this share of its width on each side
    band_margin: Annotated[float, msgspec.Meta(ge=0)] = 0.25
    #: share of the rolling window's frames identical to their predecessor that means frozen
    frozen_share: Unit = 0.8
    #: replayed-loop detection: longest loop recognised (frames) and changing frames that must repeat to confirm
    replay_buffer_frames: Annotated[int, msgspec.Meta(ge=3)] = 600
    replay_min_run: PosInt = 20
    #: compute the health statistics (and the bands, drift, slices, flips and replay checks built on them) on one
    #: frame in N; each sampled frame is still compared with the frame just before it, so frozen and flip
    #: figures keep their per-pair meaning (benchmarks/overhead.py measured the default)
    every_n_frames: PosInt = 10
    #: send `event` messages when a figure leaves / returns to its band
    alerts: bool = True


class TemporalConfig(Strict):
    enabled: bool = True
    #: count a consecutive pair only when the thumbnails differ by at most this (mean abs grey level, 0..255)
    max_frame_diff: Annotated[float, msgspec.Meta(ge=0, le=255)] = 3.0


class DriftConfig(Strict):
    enabled: bool = True
    #: the most recent frames compared with the reference at every window
    window_frames: Annotated[int, msgspec.Meta(ge=10)] = 200
    min_frames: PosInt = 30
    #: output drift: PSI (unbounded, >= 0) of the class histogram and scores, KS statistic (a fraction), mean shift
    psi_threshold: Annotated[float, msgspec.Meta(gt=0)] = 0.25
    ks_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.3
    mean_shift_threshold: Annotated[float, msgspec.Meta(gt=0)] = 0.5
    #: input statistics count as moved (camera, lighting, lens) from these
    input_psi_threshold: Annotated[float, msgspec.Meta(gt=0)] = 0.25
    input_ks_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.3
    #: ... when also at least this share of the window's frames left the camera's health band
    input_outside_band: Unit = 0.1


class SlicesConfig(Strict):
    #: figures by brightness / contrast quintile (edges from the reference) and time of day
    enabled: bool = True


class ExemplarsConfig(Strict):
    #: worst probed frames kept per run as small JPEGs (clean | perturbed) and sent once in `robustness`
    keep: NonNegInt = 4


class MonitorConfig(Strict):
    """Monitoring over time: camera health bands and alerts, temporal flips, drift, slices, exemplars."""

    enabled: bool = True
    #: written by `edgeprobe baseline record -c agent.yaml -o baseline.json` (same model)
    baseline: str | None = None
    health: HealthMonitorConfig = msgspec.field(default_factory=HealthMonitorConfig)
    temporal: TemporalConfig = msgspec.field(default_factory=TemporalConfig)
    drift: DriftConfig = msgspec.field(default_factory=DriftConfig)
    slices: SlicesConfig = msgspec.field(default_factory=SlicesConfig)
    exemplars: ExemplarsConfig = msgspec.field(default_factory=ExemplarsConfig)


class AgentConfig(Strict):
    model: ModelConfig
    #: where frames come from; the standalone agent needs it, the in-process SDK (edgeprobe.attach) does not
    source: SourceConfig | None = None
    device_id: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")] = (
        msgspec.field(default_factory=lambda: _default_device_id())
    )
    fleet: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")] = "default"
    task: TaskConfig = msgspec.field(default_factory=TaskConfig)
    probe: ProbeConfig = msgspec.field(default_factory=ProbeConfig)
    windows: WindowConfig = msgspec.field(default_factory=WindowConfig)
    broker: BrokerConfig = msgspec.field(default_factory=BrokerConfig)
    spool: SpoolConfig = msgspec.field(default_factory=SpoolConfig)
    monitor: MonitorConfig = msgspec.field(default_factory=MonitorConfig)
    #: acceptance suite the `run_check` command runs on the device (path relative to this file)
    suite: str | None = None


def require_source(cfg: AgentConfig, where: str = "config") -> SourceConfig:
    """The ``source:`` section, for the parts that open the camera themselves (one sentence when missing)."""
    if cfg.source is None:
        raise ConfigError(f"{where}: source: is missing; set source.uri to a camera, stream, video or folder "
                          "(only an application using edgeprobe.attach may leave it out)")
    return cfg.source


def _default_device_id() -> str:
    host = re.sub(r"[^A-Za-z0-9_.\-]", "-", socket.gethostname()) or "device"
    return host[:128]


@dataclass(frozen=True)
class LoadedConfig:
    config: AgentConfig
    path: Path | None
    #: sha256 of the normalised config, carried by every message as provenance
    sha256: str


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> LoadedConfig:
    """Read, validate and resolve an agent config file.

    ``overrides`` are dotted keys (``{"source.uri": "x.mp4"}``) applied before
    validation, so CLI flags get the same checks as the file.
    """
    path = Path(path)
    data, lines = parse_yaml(yamlconfig.read_file(path, "config", "an agent YAML file"), str(path))
    return build_config(data, lines, path, overrides)


def build_config(
    data: Any, lines: dict[str, int], path: Path | None, overrides: dict[str, Any] | None = None
) -> LoadedConfig:
    where = str(path) if path else "config"
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: the top level must be a mapping of keys (source:, model:, ...)")
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
    try:
        cfg = msgspec.convert(data, AgentConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc, where, lines)) from None
    check_task_names(cfg.task, where, lines)
    base = path.parent if path else Path.cwd()
    cfg.model.path = yamlconfig.resolve_path(cfg.model.path, base)
    if cfg.source is not None and not yamlconfig.looks_like_url_or_device(cfg.source.uri):
        cfg.source.uri = yamlconfig.resolve_path(cfg.source.uri, base)
    cfg.spool.path = yamlconfig.resolve_path(cfg.spool.path, base)
    if cfg.monitor.baseline:
        cfg.monitor.baseline = yamlconfig.resolve_path(cfg.monitor.baseline, base)
    _resolve_provider_paths(cfg.model, base)
    if cfg.suite:
        cfg.suite = yamlconfig.resolve_path(cfg.suite, base)
        _check_suite(cfg.suite, f"{where} line {lines.get('suite', '?')}")
    digest = hashlib.sha256(msgspec.json.encode(cfg, order="sorted")).hexdigest()
    return LoadedConfig(cfg, path, digest)


def _resolve_provider_paths(model: ModelConfig, base: Path) -> None:
    """Relative ``*_path`` provider options (a TensorRT engine cache) resolve in systemd's StateDirectory.

    Under the unit the config file is a read-only credential, so "next to the config" would be the
    wrong place; ``$STATE_DIRECTORY`` (set by ``StateDirectory=``) survives restarts, so an engine
    built once is reused. Elsewhere they resolve against the config's folder like every other path.
    """
    state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    for provider in model.providers:
        if isinstance(provider, str):
            continue
        for key, value in provider.options.items():
            if key.endswith("_path") and isinstance(value, str):
                provider.options[key] = yamlconfig.resolve_path(value, Path(state) if state else base)


def _check_suite(suite: str, where: str) -> None:
    """A remote `run_check` should not be the first to find the suite broken: validate it at start."""
    from edgeprobe.harness.suite import load_suite

    try:
        load_suite(suite)
    except ConfigError as exc:
        raise ConfigError(f"{where}: suite: {exc}") from None


def parse_yaml(text: str, where: str) -> tuple[Any, dict[str, int]]:
    """YAML -> (data, {"a.b.c": line}); shared with suites in harness/yamlconfig.py."""
    return yamlconfig.parse_yaml(text, where)


def _explain(exc: msgspec.ValidationError, where: str, lines: dict[str, int]) -> str:
    return yamlconfig.explain(exc, where, lines, AgentConfig)


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value
