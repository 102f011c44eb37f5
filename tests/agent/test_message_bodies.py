"""Typed bodies on the way out: what the agent sends is checked against the collector's own body types."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from edgeprobe.agent.config import load_config
from edgeprobe.agent.messages import Messenger
from edgeprobe.agent.runner import Agent
from edgeprobe.agent.spool import Spool
from edgeprobe.harness import schema
from tests.conftest import demo_config

WINDOW = {"start_ts": "2026-01-01T00:00:00+00:00", "end_ts": "2026-01-01T00:00:01+00:00", "first_frame": 0,
          "last_frame": 9, "frames": 10}
HEALTH = {"window": WINDOW, "fps": 10.0, "brightness": 100.0, "contrast": 40.0, "sharpness": 90.0, "clipped": 0.0,
          "frozen_frames": 0, "spool_queued": 0, "spool_dropped": 0}


@pytest.mark.parametrize(("kind", "body", "pattern"), [
    ("health", {**HEALTH, "ocLusion": 0.1}, r"health body: Object contains unknown field `ocLusion`"),
    ("latency", {"window": WINDOW, "warmup_runs": 0, "stages": {}, "cold_start": {"session_ms": 1.0, "frist": 1}},
     r"unknown field `frist`"),
    ("drift", {"window": WINDOW, "temporal": {"pairs": 1, "counted": 1, "flips": 0, "flip_rate": 0.0, "gate": 1}},
     r"unknown field `gate`"),
])
def test_a_misspelt_field_is_refused_by_the_sender_and_by_the_collector(
        tmp_path: Path, kind: str, body: dict, pattern: str) -> None:
    spool = Spool(str(tmp_path / "s.db"))
    messenger = Messenger(spool, "cam", "f", "a" * 64, "b" * 64)
    with pytest.raises(schema.SchemaViolation, match=pattern):
        messenger.send(kind, body)
    assert spool.pending() == 0  # nothing half-sent
    message = messenger.build(kind, body, seq=0)
    with pytest.raises(schema.SchemaViolation, match=pattern):
        schema.decode_message(schema.encode(message), schema.topic_for("f", "cam", kind))
    ok = messenger.send("health", HEALTH)
    assert ok["kind"] == "health" and spool.pending() == 1
    spool.close()


def test_every_message_the_agent_sends_decodes_with_the_collectors_decoder(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    import json
    import sqlite3

    spool = tmp_path / "spool.db"
    cfg = demo_config(orientation_model, short_clip, spool, probe={
        "breaking_point": {"enabled": True, "frames": 3}, "relations": [{"name": "rotate90"}]},
        monitor={"health": {"every_n_frames": 1, "learn_frames": 10}, "drift": {"min_frames": 10},
                 "exemplars": {"keep": 2}})
    Agent(load_config(write_config(cfg))).run(max_frames=60)
    with sqlite3.connect(spool) as db:
        payloads = [p for (p,) in db.execute("SELECT payload FROM outbox ORDER BY id")]
    kinds = set()
    for p in payloads:
        m = json.loads(p)
        env, body = schema.decode_message(p.encode() if isinstance(p, str) else p,
                                          schema.topic_for(m["fleet"], m["device_id"], m["kind"]))
        assert isinstance(body, schema.BODY_TYPES[env.kind])
        kinds.add(env.kind)
    assert {"birth", "latency", "robustness", "health", "drift", "death"} <= kinds


def test_a_suite_verdict_goes_out_as_a_verdict_body_the_collector_decodes(
        tmp_path: Path, orientation_model: Path, short_clip: Path) -> None:
    import yaml

    from edgeprobe.agent.suite_runner import run_suite
    from edgeprobe.harness.suite import load_suite
    from edgeprobe.harness.suite_report import verdict_body

    suite = {"name": "bodies", "seed": 3, "model": {"path": str(orientation_model), "threads": 1},
             "source": {"uri": str(short_clip), "frames": 4, "stride": 8},
             "checks": [{"kind": "health", "metric": "sharpness", "min": 1},
                        {"kind": "health", "metric": "brightness", "max": 1, "name": "too bright"}]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(suite))
    result, _ = run_suite(load_suite(tmp_path / "s.yaml"))
    spool = Spool(str(tmp_path / "s.db"))
    messenger = Messenger(spool, "cam", "f", "a" * 64, "b" * 64)
    sent = messenger.send("verdict", verdict_body(result))
    _, body = schema.decode_message(schema.encode(sent), schema.topic_for("f", "cam", "verdict"))
    assert isinstance(body, schema.VerdictBody)
    assert (body.suite, body.status, body.exit_code) == ("bodies", "fail", 1)
    assert [(c.name, c.status) for c in body.checks] == [("health sharpness", "pass"), ("too bright", "fail")]
    # a body of another kind is refused by the sender, before anything is spooled
    with pytest.raises(schema.SchemaViolation, match="a VerdictBody is not a HealthBody"):
        messenger.send("health", verdict_body(result))
    assert spool.pending() == 1
    spool.close()


def test_a_part_that_misspells_a_field_fails_where_it_builds_the_body() -> None:
    window = schema.Window(start_ts=schema.utc_now(), end_ts=schema.utc_now(), first_frame=0, last_frame=9, frames=10)
    with pytest.raises(TypeError, match="ocLusion"):
        schema.HealthBody(window=window, fps=1.0, brightness=1.0, contrast=1.0, sharpness=1.0, clipped=0.0,
                          frozen_frames=0, spool_queued=0, spool_dropped=0, ocLusion=0.1)
    # a Struct is not validated when built: its bounds are checked when it is sent, as the collector will
    body = schema.HealthBody(window=window, fps=1.0, brightness=1.0, contrast=1.0, sharpness=1.0, clipped=3.0,
                             frozen_frames=0, spool_queued=0, spool_dropped=0)
    with pytest.raises(schema.SchemaViolation, match=r"health body: Expected `float` <= 1.0 - at `\$.clipped`"):
        schema.check_body("health", body)
