"""The agent loop on the real rotation classifier and a real clip, spooling only."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edgeprobe.agent.config import load_config
from edgeprobe.agent.runner import Agent
from edgeprobe.harness import schema
from tests.conftest import demo_config


def _spooled(path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(path) as db:
        return [json.loads(p) for (p,) in db.execute("SELECT payload FROM outbox ORDER BY id")]


def test_agent_measures_and_spools_every_kind(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    spool = tmp_path / "spool.db"
    loaded = load_config(write_config(demo_config(orientation_model, short_clip, spool)))
    agent = Agent(loaded)
    assert agent.backend.input_spec.layout == "NCHW" and agent.backend.input_spec.height == 224
    stats = agent.run(max_frames=40)
    assert stats.frames == 40 and stats.warmup_runs == 3 and stats.windows == 2
    assert stats.probed_frames == 8  # one in five of 40 measured frames

    msgs = _spooled(spool)
    for m in msgs:
        schema.decode_message(schema.encode(m), schema.topic_for(m["fleet"], m["device_id"], m["kind"]))
    kinds = [m["kind"] for m in msgs]
    assert kinds[0] == "birth" and kinds[-1] == "death"
    assert kinds.count("latency") == 2 and kinds.count("robustness") == 2 and kinds.count("health") == 2
    assert [m["seq"] for m in msgs] == list(range(len(msgs)))
    assert {m["model_sha256"] for m in msgs} == {agent.backend.sha256}

    birth = msgs[0]["body"]
    assert birth["model"]["input"]["shape"][1:] == [3, 224, 224]
    assert birth["source"]["width"] == 768

    latency = [m for m in msgs if m["kind"] == "latency"]
    stages = latency[0]["body"]["stages"]
    assert set(stages) >= {"decode", "preprocess", "inference", "postprocess", "e2e", "probe"}
    assert sum(m["body"]["stages"]["inference"]["count"] for m in latency) == 40
    inf, e2e = stages["inference"], stages["e2e"]
    assert 0.1 < inf["p50"] < 1000 and inf["p50"] <= inf["p99"] <= inf["max"]
    assert e2e["p50"] >= inf["p50"]  # end-to-end contains inference

    robustness = [m for m in msgs if m["kind"] == "robustness"]
    cells = {(c["perturbation"], c["severity"]): c for m in robustness for c in m["body"]["cells"]}
    assert set(cells) == {("gaussian_noise", 1.0), ("gaussian_noise", 5.0), ("pixel_dropout", 3.0)}
    assert all(0 <= c["fraction"] <= 1 and c["n"] == 4 for c in cells.values())

    health = next(m for m in msgs if m["kind"] == "health")["body"]
    assert 20 < health["brightness"] < 240 and health["sharpness"] > 0 and health["frozen_frames"] == 0


def test_probing_off_sends_no_robustness(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    cfg = demo_config(orientation_model, short_clip, tmp_path / "s.db", probe={"enabled": False})
    stats = Agent(load_config(write_config(cfg))).run(max_frames=10)
    assert stats.probed_frames == 0 and "robustness" not in stats.messages


def test_same_seed_gives_same_robustness_figures(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    def cells(name: str) -> list[tuple[str, float, int]]:
        spool = tmp_path / f"{name}.db"
        cfg = demo_config(orientation_model, short_clip, spool, windows={"frames": 1000})
        Agent(load_config(write_config(cfg, f"{name}.yaml"))).run(max_frames=30)
        rob = [m for m in _spooled(spool) if m["kind"] == "robustness"]
        return [(c["perturbation"], c["severity"], c["unstable"]) for m in rob for c in m["body"]["cells"]]

    assert cells("a") == cells("b")


@pytest.mark.parametrize("task", ["detection_typo", "clasification"])
def test_unknown_task_is_a_config_error(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path], task: str
) -> None:
    from edgeprobe.harness.errors import ConfigError

    cfg = demo_config(orientation_model, short_clip, tmp_path / "s.db", task={"kind": task})
    with pytest.raises(ConfigError, match="unknown task"):
        Agent(load_config(write_config(cfg)))
