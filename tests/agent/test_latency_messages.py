"""The agent's latency messages carry the full latency picture, typed by the schema."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from edgeprobe.agent.config import load_config
from edgeprobe.agent.runner import Agent
from edgeprobe.harness import schema
from tests.conftest import demo_config, spooled


def test_latency_body_has_stages_intervals_cold_start_and_guards(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    spool = tmp_path / "s.db"
    Agent(load_config(write_config(demo_config(orientation_model, short_clip, spool)))).run(max_frames=45)
    msgs = spooled(spool)
    latency = [m for m in msgs if m["kind"] == "latency"]
    assert len(latency) == 3  # windows of 20, 20 and 5 frames
    for m in latency:
        _, body = schema.decode_message(schema.encode(m), schema.topic_for(m["fleet"], m["device_id"], m["kind"]))
        assert isinstance(body, schema.LatencyBody)
        assert body.mode == "single_stream" and body.cold_start is not None and body.guards is not None
        assert body.cold_start.session_ms > 0 and body.cold_start.first_inference_ms
        assert body.cold_start.warmup_runs == 3 and body.peak_rss_mb and body.peak_rss_mb > 10
        e2e = body.stages["e2e"]
        assert e2e.ci is not None and e2e.ci_confidence == 0.95 and e2e.min is not None and e2e.cov is not None
        low, high = e2e.ci["p50"]
        assert low is None or low <= e2e.p50
        assert high is None or e2e.p50 <= high
        assert e2e.ci["p99"][1] is None  # 20 frames cannot bound p99 from above
        assert any("MLPerf LoadGen would need" in w for w in e2e.warnings)
        assert body.stages["capture_wait"].count == body.stages["inference"].count
        assert body.guards.other_cpu_cores is not None
        assert all(isinstance(f, str) for f in body.flags)
    # the time to spool window k is a sample of window k+1
    assert "publish" not in latency[0]["body"]["stages"]
    assert latency[1]["body"]["stages"]["publish"]["count"] == 1


def test_old_latency_messages_without_the_new_fields_stay_valid() -> None:
    body = {"window": {"start_ts": "2026-01-01T00:00:00+00:00", "end_ts": "2026-01-01T00:00:01+00:00",
                       "first_frame": 0, "last_frame": 9, "frames": 10},
            "warmup_runs": 1, "stages": {"e2e": {"count": 10, "p50": 1, "p90": 2, "p95": 2, "p99": 3, "max": 3,
                                                 "mean": 1.5, "stdev": 0.5}}}
    msg = schema.make_envelope(
        model_sha256="a" * 64, config_sha256="b" * 64,
        kind="latency", device_id="d", fleet="f", session_id="s", seq=0, body=body)
    _, decoded = schema.decode_message(schema.encode(msg))
    assert isinstance(decoded, schema.LatencyBody) and decoded.guards is None and decoded.stages["e2e"].ci is None
