"""The message bodies: what each kind of message says, as msgspec Structs.

The agent's parts build these (the latency window, the prober, the monitor, a suite's verdict) and the
collector decodes with the same types, so a field is declared once for both ends. Window and verdict bodies
forbid unknown fields, so a misspelt optional field is refused by the sender instead of dropped silently by
the collector. Every field goes on the wire, unset ones as their default (null, [] or ""): each key the
agent's dicts used to send is still there with its value, and field names never change, because a collector
decodes messages of every agent version.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec

from edgeprobe.harness.wire import Fraction, Int64, Name, NonNegFloat, NonNegInt, Text


class Window(msgspec.Struct, forbid_unknown_fields=True):
    """The span of frames a summary covers (frame indices inclusive)."""

    start_ts: dt.datetime
    end_ts: dt.datetime
    first_frame: NonNegInt
    last_frame: NonNegInt
    frames: NonNegInt


class StageStats(msgspec.Struct, forbid_unknown_fields=True):
    """Latency of one pipeline stage over a window, in milliseconds.

    ``hdr`` is the window's HdrHistogram (base64, microseconds), so windows and
    devices can be merged exactly at the collector instead of averaging
    percentiles (which is wrong).
    """

    count: NonNegInt
    p50: NonNegFloat
    p90: NonNegFloat
    p95: NonNegFloat
    p99: NonNegFloat
    max: NonNegFloat
    mean: NonNegFloat
    stdev: NonNegFloat
    hdr: Annotated[str, msgspec.Meta(max_length=65536)] = ""
    p99_9: NonNegFloat | None = None
    cov: NonNegFloat | None = None
    min: NonNegFloat | None = None
    #: "p99" -> [low, high] ms, distribution-free (order statistics); null where n cannot bound that side
    ci: dict[Name, tuple[NonNegFloat | None, NonNegFloat | None]] | None = None
    ci_confidence: Fraction | None = None
    #: too few samples for a tail claim (MLPerf LoadGen's rule), unstable (coefficient of variation)
    warnings: list[Text] = []


class ColdStart(msgspec.Struct, forbid_unknown_fields=True):
    """What the first frame costs, kept apart from the steady-state percentiles."""

    session_ms: NonNegFloat
    first_inference_ms: NonNegFloat | None = None
    warmup_runs: NonNegInt = 0
    #: resident memory the model load added (MB) and the process peak so far
    model_rss_mb: float | None = None
    peak_rss_mb: NonNegFloat | None = None


class Guards(msgspec.Struct, forbid_unknown_fields=True):
    """Measurement-validity conditions of the board while a window was measured."""

    governors: list[Name] = []
    freq_mhz_min: NonNegFloat | None = None
    freq_mhz_max: NonNegFloat | None = None
    max_temp_c: float | None = None
    throttled: bool = False
    load_1m: NonNegFloat | None = None
    #: CPU cores other processes (and the hypervisor) took while this window was measured
    other_cpu_cores: NonNegFloat | None = None
    steal_cores: NonNegFloat | None = None
    power_mode: Name | None = None
    flags: list[Name] = []


class LatencyBody(msgspec.Struct, forbid_unknown_fields=True):
    window: Window
    warmup_runs: NonNegInt
    stages: dict[Name, StageStats]
    #: single_stream | paced | throughput
    mode: Name | None = None
    cold_start: ColdStart | None = None
    guards: Guards | None = None
    #: run-level warnings (throttled, governor not performance, unstable stages)
    flags: list[Text] = []
    peak_rss_mb: NonNegFloat | None = None


class StabilityCell(msgspec.Struct, forbid_unknown_fields=True):
    """Unstable fraction for one perturbation at one severity."""

    perturbation: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    severity: Annotated[float, msgspec.Meta(ge=0, le=5)]
    n: NonNegInt
    unstable: NonNegInt
    fraction: Fraction
    ci_low: Fraction
    ci_high: Fraction
    mean_disagreement: Fraction
    #: ok | at_risk | broken, by the window's risk thresholds
    zone: Name | None = None


class Exemplar(msgspec.Struct, forbid_unknown_fields=True):
    """One worst frame: clean | perturbed side by side as a small JPEG, with what replays the perturbation."""

    frame_index: NonNegInt
    perturbation: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    severity: Annotated[float, msgspec.Meta(ge=0, le=5)]
    seed: Int64
    disagreement: Fraction
    jpeg_base64: Annotated[str, msgspec.Meta(max_length=65536)]
    width: NonNegInt = 0
    height: NonNegInt = 0


class RobustnessBody(msgspec.Struct, forbid_unknown_fields=True):
    window: Window
    frames_probed: NonNegInt
    seed: Int64
    cells: list[StabilityCell]
    #: worst risk zone per perturbation, and the thresholds that drew the zones
    zones: dict[Name, Name] | None = None
    risk_thresholds: dict[Name, float] | None = None
    #: per perturbation: bisected severity (None: never broke within [0, 5]), rounds, evaluations, replay
    breaking_points: list[dict[str, Any]] | None = None
    #: metamorphic relations: violations, n, rate with Wilson interval
    relations: list[dict[str, Any]] | None = None
    #: inference time on perturbed frames, per perturbation
    perturbation_latency: list[dict[str, Any]] | None = None
    #: the duty cycle the probe actually used in this window
    duty: dict[str, Any] | None = None
    #: worst probed frames that entered the run's top list in this window (harness/exemplars.py)
    exemplars: Annotated[list[Exemplar], msgspec.Meta(max_length=16)] | None = None
    #: the pixels the probes perturbed: resolution mode (model | native) and size, so a replay perturbs the same
    probe_view: dict[Name, Name | NonNegInt] | None = None


class HealthBody(msgspec.Struct, forbid_unknown_fields=True):
    window: Window
    fps: NonNegFloat
    brightness: NonNegFloat
    contrast: NonNegFloat
    sharpness: NonNegFloat
    clipped: Fraction
    frozen_frames: NonNegInt
    spool_queued: NonNegInt
    spool_dropped: NonNegInt
    flags: list[Text] = []
    #: sensor-noise estimate (grey levels) and share of the frame that is nearly uniform (covered lens)
    noise: NonNegFloat | None = None
    occlusion: Fraction | None = None
    #: frames in this window inside a replayed loop, and the loop's length in frames
    replaying_frames: NonNegInt | None = None
    replay_lag: NonNegInt | None = None
    #: metric -> [low, high] band, where it came from (baseline | learned), the rolling medians judged on it
    bands: dict[Name, tuple[float, float]] | None = None
    band_source: Name | None = None
    rolling: dict[Name, float] | None = None
    #: health alerts open at the end of the window (blurry, dark, frozen, replayed, ...)
    alerts: list[Text] = []
    #: the agent's peak resident memory (MB)
    rss_mb: NonNegFloat | None = None
    #: a live source's own counters (agent/sources/live.py): frames it dropped, received, outages, offline now
    source_dropped: NonNegInt | None = None
    source_frames: NonNegInt | None = None
    source_outages: NonNegInt | None = None
    source_offline: bool | None = None
    source_offline_s: NonNegFloat | None = None
    #: the SDK: frames the application handed over that its queue had no room for
    frames_dropped: NonNegInt | None = None


class TemporalStats(msgspec.Struct, forbid_unknown_fields=True):
    """Flips of the answer between consecutive live frames whose pictures barely differ (ImageNet-P style)."""

    pairs: NonNegInt
    counted: NonNegInt
    flips: NonNegInt
    flip_rate: Fraction
    ci_low: Fraction | None = None
    ci_high: Fraction | None = None
    gated_out: NonNegInt = 0
    identical: NonNegInt = 0
    max_frame_diff: NonNegFloat | None = None


class DriftBody(msgspec.Struct, forbid_unknown_fields=True):
    """Output and input drift against a reference, temporal flips and slices (every field optional)."""

    window: Window | None = None
    #: baseline (a recorded file) | learned (the run's first frames); None until a reference exists
    reference: Name | None = None
    reference_frames: NonNegInt | None = None
    #: frames in the rolling drift window compared with the reference
    frames: NonNegInt | None = None
    outputs: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None
    output_drift: bool | None = None
    input_drift: bool | None = None
    attribution: Literal["none", "camera", "scene_or_model"] | None = None
    drifted: list[Name] = []
    inputs_moved: list[Name] = []
    message: Text | None = None
    thresholds: dict[Name, float] | None = None
    temporal: TemporalStats | None = None
    slices: dict[str, Any] | None = None


class BirthBody(msgspec.Struct, forbid_unknown_fields=False):
    model: dict[str, Any]
    source: dict[str, Any]
    host: dict[str, Any]
    capabilities: dict[str, Any]


class DeathBody(msgspec.Struct, forbid_unknown_fields=False):
    reason: Text


class EventBody(msgspec.Struct, forbid_unknown_fields=False):
    type: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    message: Text = ""




class CheckFigure(msgspec.Struct, forbid_unknown_fields=True):
    """One check of a suite verdict: its status and the figure it was held to (harness/verdict.CheckResult)."""

    name: Text
    #: pass | fail | error | inconclusive (a name, so a status a later version adds still decodes)
    status: Name
    #: the check kind (harness/checks.py); every agent sends it, a hand-written verdict may leave it out
    kind: Name = ""
    figure: float | None = None
    limit: float | None = None
    unit: Name = ""
    op: Name = "<="


class VerdictBody(msgspec.Struct, forbid_unknown_fields=True):
    """A suite's verdict (`edgeprobe check` or the agent's run_check command): the north star and every check."""

    suite: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    status: Name
    headline: Text = ""
    exit_code: Annotated[int, msgspec.Meta(ge=0, le=255)] | None = None
    duration_s: NonNegFloat | None = None
    checks: list[CheckFigure] = []
