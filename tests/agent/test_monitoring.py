"""The agent on real video with the real rotation classifier while the camera degrades, freezes or loops.

Clips are built from OpenCV's pedestrian video with cv2 (blurred and darkened
halves, a frozen tail, a loop, the scene turned upside down), baselines are
recorded with the same code `edgeprobe baseline record` runs, and every
message is read back from the agent's spool and validated against the schema.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgeprobe.agent.config import build_config
from edgeprobe.agent.monitor import record_baseline
from edgeprobe.agent.runner import Agent
from edgeprobe.agent.spool import Spool
from edgeprobe.harness import schema
from tests.conftest import demo_config, read_frames


def _write(frames: list[np.ndarray], path: Path) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    return path


def _degrade(frame: np.ndarray) -> np.ndarray:
    """A lens that fogged over in failing light."""
    return (cv2.GaussianBlur(frame, (0, 0), 4) * 0.35).astype(np.uint8)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory, vtest_video: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("monitoring-clips")
    frames = read_frames(vtest_video, 130)
    return {
        "clean": _write(frames[:130], d / "clean.avi"),
        "degrading": _write(frames[:65] + [_degrade(f) for f in frames[65:130]], d / "degrading.avi"),
        "upside_down": _write([cv2.rotate(f, cv2.ROTATE_180) for f in frames[:130]], d / "upside-down.avi"),
        "frozen": _write(frames[:50] + [frames[49]] * 50, d / "frozen.avi"),
        "short_loop": _write(frames[:40], d / "loop40.avi"),
    }


# every_n_frames 1: these clips are 100-130 frames and the checks count frames exactly (the default samples).
MONITOR = {"health": {"window_frames": 20, "check_every": 5, "every_n_frames": 1},
           "drift": {"window_frames": 40, "min_frames": 30}}


def _config(model: Path, clip: Path, tmp: Path, baseline: Path | None = None, loop: bool = False,
            **extra: Any) -> dict[str, Any]:
    monitor = {**MONITOR, **({"baseline": str(baseline)} if baseline else {})}
    cfg = demo_config(model, clip, tmp / "spool.db", windows={"frames": 30, "warmup": 0}, monitor=monitor,
                      device_id="cam-07", **extra)
    cfg["source"]["loop"] = loop
    return cfg


def _record(model: Path, clip: Path, out: Path, frames: int) -> Path:
    loaded = build_config(demo_config(model, clip, out.with_suffix(".spool.db")), {}, None)
    out.write_text(json.dumps(record_baseline(loaded, frames).to_dict()))
    return out


def _run(cfg: dict[str, Any], frames: int) -> tuple[Agent, dict[str, list[dict[str, Any]]]]:
    agent = Agent(build_config(cfg, {}, None))
    agent.run(max_frames=frames)
    spool = Spool(cfg["spool"]["path"])
    out: dict[str, list[dict[str, Any]]] = {}
    for row in spool.peek(10_000):
        env, _ = schema.decode_message(row.payload, row.topic)  # every message passes the collector's schema
        out.setdefault(env.kind, []).append(env.body)
    spool.close()
    return agent, out


def _events(messages: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return messages.get("event", [])


def test_camera_that_degrades_mid_run_raises_alerts_and_drift_is_blamed_on_the_camera(
        tmp_path: Path, orientation_model: Path, clips: dict[str, Path]) -> None:
    baseline = _record(orientation_model, clips["clean"], tmp_path / "baseline.json", 130)
    agent, messages = _run(_config(orientation_model, clips["degrading"], tmp_path, baseline), 130)
    types = [e["type"] for e in _events(messages)]
    assert "camera_blurry" in types and "camera_dark" in types, types
    blurry = next(e for e in _events(messages) if e["type"] == "camera_blurry")
    assert blurry["message"].startswith("camera cam-07 went blurry at ")
    assert blurry["band_source"] == "baseline" and blurry["value"] < blurry["band"][0]
    drift = [e for e in _events(messages) if e["type"] == "output_drift" and e["attribution"] == "camera"]
    assert drift and "look at the camera, lighting or lens" in drift[0]["message"], _events(messages)
    bodies = messages["drift"]
    # While the camera was fine its input statistics stayed in the baseline's bands, whatever the outputs did
    # (this text classifier's scores wander with the pedestrians within seconds: that is scene drift).
    clean = [b for b in bodies if b["window"]["last_frame"] < 65]
    assert clean and all(not b["input_drift"] and b["attribution"] != "camera" for b in clean)
    assert all(b["inputs"]["brightness"]["outside_band"] == 0.0 for b in clean)
    last = bodies[-1]
    assert last["reference"] == "baseline" and last["attribution"] == "camera" and last["input_drift"]
    assert last["inputs"]["sharpness"]["ks"] > 0.9 and last["inputs"]["brightness"]["psi"] > 1.0
    assert last["outputs"]["score"]["ks"] >= 0.3 or last["outputs"]["classes"]["psi"] >= 0.25
    health = messages["health"]
    assert health[0]["alerts"] == [] and {"blurry", "dark"} <= set(health[-1]["alerts"])
    assert {"blurry", "dark"} <= set(health[-1]["flags"]) and health[-1]["band_source"] == "baseline"
    assert health[-1]["bands"]["sharpness"][0] > health[-1]["sharpness"]
    temporal = last["temporal"]
    assert temporal["counted"] + temporal["gated_out"] + temporal["identical"] == temporal["pairs"]
    slices = last["slices"]
    assert {r["dimension"] for r in slices["buckets"]} == {"brightness", "contrast", "time_of_day"}
    # Degraded frames are darker than anything in the baseline: they all land in its darkest fifth.
    darkest = next(r for r in slices["buckets"] if r["dimension"] == "brightness" and r["bucket"] == 0)
    assert darkest["frames"] == slices["overall"]["frames"]
    per_window = [body.get("exemplars") or [] for body in messages["robustness"]]
    assert all(len(sent) <= 4 for sent in per_window)  # each enters once; a window carries at most `keep`
    exemplars = [x for sent in per_window for x in sent]
    assert exemplars and len({(x["frame_index"], x["perturbation"], x["severity"]) for x in exemplars}) == len(
        exemplars)  # never sent twice
    for x in exemplars:
        jpeg = np.frombuffer(base64.b64decode(x["jpeg_base64"]), np.uint8)
        img = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
        assert img is not None and img.shape[1] == 192 and len(jpeg) < 12_000
        assert x["perturbation"] in ("gaussian_noise", "pixel_dropout") and x["seed"] >= 0
    summary = agent.monitor.run_summary()
    assert summary["drift"]["attribution"] == "camera" and "blurry" in summary["alerts_open"]
    assert 0 < len(summary["exemplars"]) <= 4  # the run's worst, bounded


def test_outputs_that_drift_while_the_inputs_stay_are_blamed_on_the_scene_or_model(
        tmp_path: Path, orientation_model: Path, clips: dict[str, Path]) -> None:
    # Same pedestrians, camera mounted upside down when the baseline was recorded: every input statistic is
    # the same (a half turn keeps brightness, contrast, sharpness and noise), the rotation classifier's answers
    # are not.
    baseline = _record(orientation_model, clips["upside_down"], tmp_path / "baseline.json", 130)
    _, messages = _run(_config(orientation_model, clips["clean"], tmp_path, baseline), 120)
    last = messages["drift"][-1]
    assert last["attribution"] == "scene_or_model" and last["output_drift"] and not last["input_drift"]
    assert last["outputs"]["classes"]["psi"] > 1.0
    drift = [e for e in _events(messages) if e["type"] == "output_drift"]
    assert drift and drift[0]["attribution"] == "scene_or_model"
    assert not [e for e in _events(messages) if e["type"].startswith("camera_")]


def test_frozen_stream_at_full_frame_rate(tmp_path: Path, orientation_model: Path, clips: dict[str, Path]) -> None:
    _, messages = _run(_config(orientation_model, clips["frozen"], tmp_path), 100)
    frozen = [e for e in _events(messages) if e["type"] == "camera_frozen"]
    assert len(frozen) == 1 and "froze at" in frozen[0]["message"]
    assert sum(h["frozen_frames"] for h in messages["health"]) == 50
    assert "frozen" in messages["health"][-1]["alerts"]


def test_replayed_loop_at_full_frame_rate(tmp_path: Path, orientation_model: Path, clips: dict[str, Path]) -> None:
    _, messages = _run(_config(orientation_model, clips["short_loop"], tmp_path, loop=True), 110)
    replayed = [e for e in _events(messages) if e["type"] == "camera_replayed"]
    assert len(replayed) == 1 and replayed[0]["lag"] == 40
    assert "replaying a 40-frame loop" in replayed[0]["message"]
    assert sum(h["frozen_frames"] for h in messages["health"]) == 0  # the frozen-frame count misses it
    last = messages["health"][-1]
    assert last["replaying_frames"] > 0 and last["replay_lag"] == 40 and "replayed" in last["flags"]


def test_monitor_off_keeps_the_old_messages(tmp_path: Path, orientation_model: Path,
                                            clips: dict[str, Path]) -> None:
    cfg = _config(orientation_model, clips["clean"], tmp_path)
    cfg["monitor"] = {"enabled": False}
    _, messages = _run(cfg, 30)
    assert "drift" not in messages and "event" not in messages
    assert messages["health"][0]["noise"] > 0  # the cheap figures stay


def test_sampled_health_still_catches_frozen_and_replayed_streams(tmp_path: Path, orientation_model: Path,
                                                                  clips: dict[str, Path]) -> None:
    # One frame in five gets statistics (each compared with the frame just before it): the frozen count is the
    # sampled share scaled to every frame, and a 40-frame loop shows as 8 sampled frames = 40 frames.
    cfg = _config(orientation_model, clips["frozen"], tmp_path / "frozen")
    cfg["monitor"]["health"] = {"window_frames": 6, "check_every": 1, "every_n_frames": 5}
    _, messages = _run(cfg, 100)
    assert sum(h["frozen_frames"] for h in messages["health"]) == 50
    assert [e["type"] for e in _events(messages)].count("camera_frozen") == 1
    assert all(h["fps"] > 0 for h in messages["health"])
    cfg = _config(orientation_model, clips["short_loop"], tmp_path / "loop", loop=True)
    cfg["monitor"]["health"] = {"every_n_frames": 5}
    _, messages = _run(cfg, 200)
    replayed = [e for e in _events(messages) if e["type"] == "camera_replayed"]
    assert len(replayed) == 1 and replayed[0]["lag"] == 40
    assert messages["health"][-1]["replay_lag"] == 40 and messages["health"][-1]["replaying_frames"] > 0
