from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness import schema


def _message(**overrides: Any) -> dict[str, Any]:
    msg = schema.make_envelope(
        model_sha256="a" * 64, config_sha256="b" * 64,
        kind="event", device_id="cam-1", fleet="f1", session_id="s1", seq=3,
                               body={"type": "outage", "message": "camera gone"})
    msg.update(overrides)
    return msg


def test_valid_message_round_trips_with_typed_body() -> None:
    msg = _message()
    env, body = schema.decode_message(schema.encode(msg), schema.topic_for("f1", "cam-1", "event"))
    assert env.msg_id == msg["msg_id"] and env.seq == 3 and env.ts.tzinfo is not None
    assert isinstance(body, schema.EventBody) and body.type == "outage"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "envelope"),
        (json.dumps(_message(seq=-1)).encode(), "seq"),
        (json.dumps(_message(schema="edgeprobe/9")).encode(), "schema"),
        (json.dumps(_message(kind="selfie")).encode(), "kind"),
        (json.dumps(_message(ts="yesterday")).encode(), "ts"),
        (json.dumps(_message(ts="2026-01-01T00:00:00")).encode(), "UTC offset"),
        (json.dumps(_message(device_id="bad/id")).encode(), "device_id"),
        (json.dumps(_message(model_sha256="xyz")).encode(), "model_sha256"),
        (json.dumps(_message(extra=1)).encode(), "extra"),
        (json.dumps(_message(body={"message": "no type"})).encode(), "event body"),
        (json.dumps({k: v for k, v in _message().items() if k != "msg_id"}).encode(), "msg_id"),
    ],
)
def test_bad_payloads_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(schema.SchemaViolation, match=reason):
        schema.decode_message(payload)


def test_topic_must_match_the_payload_device() -> None:
    with pytest.raises(schema.SchemaViolation, match="does not match"):
        schema.decode_message(schema.encode(_message()), schema.topic_for("f1", "cam-2", "event"))


def test_latency_body_is_checked() -> None:
    body = {"window": {"start_ts": "2026-01-01T00:00:00Z", "end_ts": "2026-01-01T00:00:01Z", "first_frame": 0,
                       "last_frame": 9, "frames": 10}, "warmup_runs": 2,
            "stages": {"inference": {"count": 10, "p50": 1, "p90": 2, "p95": 2, "p99": 3, "max": 3, "mean": 1.5,
                                     "stdev": 0.5}}}
    msg = _message(kind="latency", body=body)
    _, typed = schema.decode_message(schema.encode(msg))
    assert isinstance(typed, schema.LatencyBody) and typed.stages["inference"].count == 10
    body["stages"]["inference"]["p99"] = -1
    with pytest.raises(schema.SchemaViolation, match="latency body"):
        schema.decode_message(schema.encode(_message(kind="latency", body=body)))


def test_json_schema_export_names_every_kind() -> None:
    exported = schema.json_schema()
    assert set(exported["x-bodies"]) == set(schema.KINDS)



@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=25), st.binary(max_size=40))
def test_the_cheap_bounds_scan_finds_every_run_of_19_digits(before: bytes, digits: int, after: bytes) -> None:
    """The byte-level pre-scan may only rule out a walk when the payload has no 19-digit run (an int64's
    most): checked against the plain regex on payloads with digit runs of every length around 19."""
    payload = before + (b"1234567890" * 3)[:digits] + after
    nested = payload.count(b"{") + payload.count(b"[") > schema.MAX_DEPTH
    expected = re.search(rb"\d{19}", payload) is not None or nested
    assert schema._may_exceed_bounds(payload) == expected
