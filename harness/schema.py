"""The message schema shared by the agent and the collector.

One JSON object per MQTT message: an envelope that every message carries
(identity, ordering, provenance) and a ``body`` whose shape depends on
``kind``. The agent builds messages with :func:`make_envelope`; the collector
checks every payload with :func:`decode_message`, which raises
:class:`SchemaViolation` with a reason it can store in quarantine.

msgspec does the validation: it is an order of magnitude faster than a
generic JSON-Schema validator, which matters when a collector ingests
thousands of messages a second, and :func:`json_schema` still exports a
standard JSON Schema for other implementations.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Annotated, Any, Literal

import msgspec

SCHEMA_VERSION = "edgeprobe/1"
TOPIC_ROOT = "edgeprobe/v1"

Kind = Literal["birth", "death", "health", "latency", "robustness", "drift", "verdict", "event"]
KINDS: tuple[str, ...] = Kind.__args__  # type: ignore[attr-defined]

#: SQLite's INTEGER (and PostgreSQL's BIGINT) are 64-bit signed: a larger JSON integer would make the
#: store raise (OverflowError) instead of storing the message, so the schema refuses it up front.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: default cap on one message's size; the largest legitimate message (a robustness window carrying four
#: exemplars at their 64 KiB cap each) is about 270 KiB, so 256 KiB would refuse real traffic
DEFAULT_MAX_BYTES = 512 * 1024
#: containers inside a body (a real one nests about 5 deep): past this a payload is refused before a
#: recursive decoder or encoder can overflow the stack
MAX_DEPTH = 32
#: any string inside a body's free-form parts (typed fields carry their own, tighter caps)
MAX_STRING = 64 * 1024

Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
#: the collector's idempotency key, in the one spelling ``str(uuid.uuid4())`` gives: refused, not
#: normalised, so an id is the same string at the agent, the broker, the collector and in queries
MsgId = Annotated[str, msgspec.Meta(
    pattern="^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
Identifier = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")]
Int64 = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
#: names (stages, perturbations, flags, modes) and free text (messages, reasons) a device sends
Name = Annotated[str, msgspec.Meta(max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=4096)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]


class SchemaViolation(ValueError):
    """A payload that does not follow the schema; the message says why."""


class Envelope(msgspec.Struct, forbid_unknown_fields=True):
    """Fields every message carries. ``(device_id, msg_id)`` is the collector's idempotency key."""

    schema: Literal["edgeprobe/1"]
    kind: Kind
    msg_id: MsgId
    device_id: Identifier
    fleet: Identifier
    session_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    seq: NonNegInt
    ts: dt.datetime
    model_sha256: Sha256
    config_sha256: Sha256
    agent_version: Annotated[str, msgspec.Meta(max_length=64)]
    body: dict[Name, Any]


# --- bodies -----------------------------------------------------------------


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


class OpenBody(msgspec.Struct, forbid_unknown_fields=False):
    """Kinds whose body is still growing (drift, verdict) only need to be objects."""


BODY_TYPES: dict[str, type[msgspec.Struct]] = {
    "birth": BirthBody,
    "death": DeathBody,
    "health": HealthBody,
    "latency": LatencyBody,
    "robustness": RobustnessBody,
    "drift": DriftBody,
    "verdict": OpenBody,
    "event": EventBody,
}

_envelope_decoder = msgspec.json.Decoder(Envelope)
_encoder = msgspec.json.Encoder()


def topic_for(fleet: str, device_id: str, kind: str) -> str:
    """MQTT topic a message of ``kind`` from ``device_id`` is published on."""
    return f"{TOPIC_ROOT}/{fleet}/{device_id}/{kind}"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def make_envelope(
    *,
    kind: str,
    device_id: str,
    fleet: str,
    session_id: str,
    seq: int,
    body: dict[str, Any],
    model_sha256: str,
    config_sha256: str,
    agent_version: str = "",
    ts: dt.datetime | None = None,
) -> dict[str, Any]:
    """Build a message as a plain dict (ready for :func:`encode`)."""
    return {
        "schema": SCHEMA_VERSION,
        "kind": kind,
        "msg_id": str(uuid.uuid4()),
        "device_id": device_id,
        "fleet": fleet,
        "session_id": session_id,
        "seq": seq,
        "ts": (ts or utc_now()).isoformat(),
        "model_sha256": model_sha256,
        "config_sha256": config_sha256,
        "agent_version": agent_version,
        "body": body,
    }


def encode(message: dict[str, Any]) -> bytes:
    return _encoder.encode(message)


def decode_message(payload: bytes, topic: str | None = None,
                   max_bytes: int = DEFAULT_MAX_BYTES) -> tuple[Envelope, msgspec.Struct]:
    """Validate one payload; return the envelope and its typed body.

    With ``topic``, also check that the topic names the same fleet, device and
    kind as the payload, so one device cannot speak for another through a
    permissive broker. Every way a payload can be bad ends in
    :class:`SchemaViolation` (never ``RecursionError`` or ``OverflowError``), so the
    collector can quarantine it and carry on.
    """
    if len(payload) > max_bytes:
        raise SchemaViolation(f"payload is {len(payload)} bytes, over the {max_bytes}-byte limit")
    try:
        env = _envelope_decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise SchemaViolation(f"envelope: {exc}") from None
    except msgspec.DecodeError as exc:
        raise SchemaViolation(f"not JSON: {exc}") from None
    except RecursionError:
        raise SchemaViolation(f"body nested deeper than {MAX_DEPTH} levels") from None
    if env.ts.tzinfo is None:
        raise SchemaViolation("envelope: ts must carry a UTC offset (RFC 3339)")
    try:
        body = msgspec.convert(env.body, BODY_TYPES[env.kind])
    except msgspec.ValidationError as exc:
        raise SchemaViolation(f"{env.kind} body: {exc}") from None
    except RecursionError:
        raise SchemaViolation(f"body nested deeper than {MAX_DEPTH} levels") from None
    if _may_exceed_bounds(payload):
        check_bounds(env.body)  # the free-form parts the typed body does not look into
    if topic is not None:
        expected = topic_for(env.fleet, env.device_id, env.kind)
        if topic != expected:
            raise SchemaViolation(f"topic {topic!r} does not match payload (expected {expected!r})")
    return env, body


def check_body(kind: str, body: dict[str, Any]) -> None:
    """Check a body about to be sent against its type, as the collector will (every field the agent sends is
    declared, so a misspelt one is refused here rather than dropped silently there); SchemaViolation if not."""
    try:
        msgspec.convert(body, BODY_TYPES[kind])
    except KeyError:
        raise SchemaViolation(f"unknown message kind {kind!r}") from None
    except msgspec.ValidationError as exc:
        raise SchemaViolation(f"{kind} body: {exc}") from None


_LONG_DIGITS = re.compile(rb"\d{19}")


def _may_exceed_bounds(payload: bytes) -> bool:
    """Whether :func:`check_bounds` could find anything: cheap byte-level tests that rule it out.

    An int64 has at most 19 digits, a body cannot nest deeper than it has brackets, and a string
    cannot be longer than the payload; walking every value doubled the decode time of a latency
    message (104 vs 48 us), which these scans (C speed) make rare.
    """
    return (len(payload) > MAX_STRING or payload.count(b"{") + payload.count(b"[") > MAX_DEPTH
            or _LONG_DIGITS.search(payload) is not None)


def check_bounds(body: dict[str, Any]) -> None:
    """Refuse free-form parts of a body that a store or encoder could not take.

    The typed fields are bounded by their annotations; the ``dict[str, Any]``
    parts (birth's model/host, drift's outputs, ...) are walked here, without
    recursion: nesting past :data:`MAX_DEPTH`, an integer outside int64 or a
    string over :data:`MAX_STRING` characters is a :class:`SchemaViolation`.
    """
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SchemaViolation(f"body nested deeper than {MAX_DEPTH} levels")
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            if isinstance(item, (dict, list)):
                stack.append((item, depth + 1))
            elif isinstance(item, int):
                if not INT64_MIN <= item <= INT64_MAX:
                    raise SchemaViolation(f"body: an integer of {item.bit_length()} bits is outside int64")
            elif isinstance(item, str) and len(item) > MAX_STRING:
                raise SchemaViolation(f"body: a string of {len(item)} characters is over the {MAX_STRING} limit")
        if isinstance(value, dict):
            for key in value:
                if len(key) > 256:
                    raise SchemaViolation(f"body: a key of {len(key)} characters is over the 256 limit")


def json_schema() -> dict[str, Any]:
    """JSON Schema of the envelope and every body, for other implementations."""
    schema: dict[str, Any] = msgspec.json.schema(Envelope)
    schema["x-bodies"] = {k: msgspec.json.schema(t) for k, t in BODY_TYPES.items()}
    return schema
