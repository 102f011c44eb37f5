"""The agent's robustness messages on the real rotation classifier: zones, breaking points, relations, duty cycle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeprobe.agent.config import ProbeConfig, load_config
from edgeprobe.agent.prober import Prober
from edgeprobe.agent.runner import Agent
from edgeprobe.harness import schema
from edgeprobe.harness.tasks.classification import ClassificationAdapter
from tests.conftest import assert_clean_error, demo_config, run_cli, spooled


def _robustness(path: Path) -> list[dict[str, Any]]:
    msgs = spooled(path)
    for m in msgs:
        schema.decode_message(schema.encode(m), schema.topic_for(m["fleet"], m["device_id"], m["kind"]))
    return [m["body"] for m in msgs if m["kind"] == "robustness"]


def test_agent_reports_zones_breaking_points_relations_and_duty(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    spool = tmp_path / "spool.db"
    cfg = demo_config(orientation_model, short_clip, spool, probe={
        "breaking_point": {"enabled": True, "every_n_windows": 1, "frames": 3, "threshold": 0.3},
        "relations": [{"name": "rotate90"}, {"name": "translate", "params": {"fraction": 0.02}}],
        "risk_zones": {"at_risk": 0.1, "broken": 0.4},
    })
    stats = Agent(load_config(write_config(cfg))).run(max_frames=20)
    assert stats.probed_frames == 4
    (body,) = _robustness(spool)
    assert body["risk_thresholds"] == {"at_risk": 0.1, "broken": 0.4}
    for c in body["cells"]:
        expected = "broken" if c["fraction"] >= 0.4 else "at_risk" if c["fraction"] >= 0.1 else "ok"
        assert c["zone"] == expected and c["ci_low"] <= c["fraction"] <= c["ci_high"]
    assert set(body["zones"]) == {"gaussian_noise", "pixel_dropout"}
    bps = {b["perturbation"]: b for b in body["breaking_points"]}
    assert set(bps) == {"gaussian_noise", "pixel_dropout"}
    for b in bps.values():
        assert b["frames"] == 3 and 10 <= b["rounds"] <= 16 and len(b["replay"]["frame_indices"]) == 3
        assert b["replay"]["seed"] == 7
        # 3 frames can never show a 30% share holding at 95%: the search must say so, not claim "holds"
        assert b["too_few_frames"] and not b["holds"] and b["low"] == 0.0
        if b["found"]:
            # The reported severity is one the search looked at and found surely broken.
            assert any(lk["severity"] == b["severity"] and lk["state"] == "broken" for lk in b["looks"])
    rel = {r["relation"]: r for r in body["relations"]}
    assert set(rel) == {"rotate90", "translate"} and all(r["n"] == 4 for r in rel.values())
    assert all(0 <= r["rate"] <= 1 for r in rel.values())
    lat = {x["perturbation"]: x for x in body["perturbation_latency"]}
    assert lat["gaussian_noise"]["n"] == 8 and lat["pixel_dropout"]["n"] == 4  # one inference per cell
    assert lat["gaussian_noise"]["p50_ms"] > 0
    duty = body["duty"]
    assert duty["mode"] == "frames" and duty["target"] == pytest.approx(0.2)
    assert duty["frames_probed"] == 4 and duty["frames_seen"] == 20 and duty["frame_share"] == pytest.approx(0.2)
    assert 0 < duty["time_share"] < 1
    # 768x576 pedestrians shrunk to just cover the classifier's 224x224 input, aspect kept.
    assert body["probe_view"] == {"resolution": "model", "height": 224, "width": 299}


def test_prober_reports_the_share_it_used() -> None:
    calls: list[int] = []

    def predict(img: np.ndarray) -> Any:
        calls.append(1)
        return ClassificationAdapter().decode([np.array([float(img.mean()), 100.0])])

    p = Prober(ProbeConfig(every_n_frames=3), predict, lambda a, b: float(a.top1 != b.top1), 0.5,
               adapter=ClassificationAdapter())
    img = np.full((16, 16, 3), 128, np.uint8)
    for i in range(12):
        if p.due(i):
            p.probe(img, predict(img), i)
    rep = p.window_report()
    assert rep.duty["frames_seen"] == 12 and rep.duty["frames_probed"] == 4
    assert rep.duty["frame_share"] == pytest.approx(4 / 12)


@pytest.mark.parametrize(("probe", "task", "pattern"), [
    ({"perturbations": [{"name": "gausian_noise"}]}, {}, r"unknown perturbation 'gausian_noise'"),
    ({}, {"kind": "detection", "layout": "yolo"},
     r"output 'fetch_name_0' has shape \(1, 4\) but detection/yolo expects .*; layouts that fit: classification"),
    ({}, {"kind": "detection"}, r"none of detection's layouts \(yolov8, yolov8_e2e, yolov5, yolox, ssd\) fits"),
    ({}, {"kind": "detection", "layout": "yolo9"},
     r"line \d+: task.layout 'yolo9' is not a layout of detection.*; it takes one of yolov8, .*ssd"),
    ({}, {"threshold": 1.5}, r"task.threshold"),
    ({"breaking_point": {"enabled": True, "threshold": -0.2}}, {}, r"probe.breaking_point.threshold"),
    ({"relations": [{"name": "rotat90"}]}, {}, r"unknown metamorphic relation 'rotat90'.*rotate90"),
    ({"breaking_point": {"enabled": True, "frames": 0}}, {}, r"probe.breaking_point.frames"),
    ({}, {"iou": 0.5}, r"task.iou does not apply to task 'classification'"),
])
def test_bad_robustness_config_is_one_sentence_and_exit_2(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
    probe: dict[str, Any], task: dict[str, Any], pattern: str,
) -> None:
    cfg = demo_config(orientation_model, short_clip, tmp_path / "s.db", probe=probe, task=task)
    assert_clean_error(run_cli("run", "-c", str(write_config(cfg)), "--no-broker", "--max-frames", "2"), pattern)


def test_agent_runs_the_yolo_detector_with_breaking_points_and_the_flip_relation(
    tmp_path: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    from tests.conftest import asset

    spool = tmp_path / "det.db"
    cfg = demo_config(asset("ddddocr_det.onnx"), short_clip, spool,
                      task={"kind": "detection", "layout": "yolo", "strides": [8, 16, 32],
                            "score_threshold": 0.1, "iou": 0.5},
                      probe={"perturbations": [{"name": "gaussian_noise", "severities": [3]}],
                             "breaking_point": {"enabled": True, "frames": 2}, "relations": [{"name": "hflip"}]},
                      windows={"frames": 10, "warmup": 1})
    # ddddocr feeds BGR pixels 0-255, letterboxed, without normalisation.
    cfg["model"]["preprocess"] = {"resize": "letterbox", "color": "bgr", "scale": 1.0, "mean": [0, 0, 0],
                                  "std": [1, 1, 1]}
    agent = Agent(load_config(write_config(cfg)))
    assert agent.adapter.name == "detection"
    agent.run(max_frames=10)
    (body,) = _robustness(spool)
    assert body["cells"][0]["n"] == 2
    (bp,) = body["breaking_points"]
    assert bp["perturbation"] == "gaussian_noise" and 10 <= bp["rounds"] <= 16 and not bp["holds"]
    assert body["relations"][0]["relation"] == "hflip" and body["relations"][0]["n"] == 2


def test_run_summary_pools_windows_by_adding_counts(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path]
) -> None:
    spool = tmp_path / "spool.db"
    cfg = demo_config(orientation_model, short_clip, spool, windows={"frames": 10},
                      probe={"relations": [{"name": "rotate90"}]})
    agent = Agent(load_config(write_config(cfg)))
    agent.run(max_frames=30)
    bodies = _robustness(spool)
    assert len(bodies) == 3
    pooled = agent.robustness_run.summary()
    for cell in pooled["cells"]:
        parts = [c for b in bodies for c in b["cells"]
                 if (c["perturbation"], c["severity"]) == (cell["perturbation"], cell["severity"])]
        assert cell["n"] == sum(c["n"] for c in parts) and cell["unstable"] == sum(c["unstable"] for c in parts)
        assert cell["ci_low"] <= cell["fraction"] <= cell["ci_high"]
    (rel,) = pooled["relations"]
    assert rel["n"] == sum(b["relations"][0]["n"] for b in bodies) == 6
