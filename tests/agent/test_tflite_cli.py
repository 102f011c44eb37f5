"""TFLite models through the real CLI: the shipped examples, the int8 path, and the bad inputs of issue 8."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import yaml

from edgeprobe.cli.assets import cache_dir
from tests.conftest import REPO, assert_clean_error, asset, demo_config, run_cli, spooled

DATA = Path(__file__).resolve().parents[1] / "data"
ENV = {"EDGEPROBE_ASSETS": str(cache_dir())}




def test_face_agent_example_runs_on_litert(tmp_path: Path) -> None:
    cfg = yaml.safe_load((REPO / "examples" / "face-agent.yaml").read_text())
    cfg["spool"]["path"] = str(tmp_path / "spool.db")
    path = tmp_path / "face-agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = run_cli("run", "-c", str(path), "--no-broker", "--max-frames", "50", env=ENV)
    assert proc.returncode == 0, proc.stderr
    msgs = spooled(tmp_path / "spool.db")
    birth = next(m for m in msgs if m["kind"] == "birth")
    assert birth["body"]["model"]["runtime"].startswith("ai-edge-litert")
    assert birth["body"]["model"]["input"]["layout"] == "NHWC"
    assert birth["model_sha256"] == birth["body"]["model"]["sha256"]
    latency = [m for m in msgs if m["kind"] == "latency"]
    assert latency, [m["kind"] for m in msgs]
    assert sum(m["body"]["window"]["frames"] for m in latency) > 0
    assert any(m["kind"] == "robustness" for m in msgs)


def test_tflite_suite_example_runs(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    proc = run_cli("check", str(REPO / "examples" / "tflite-suite.yaml"), "--junit", str(junit), "--json", env=ENV,
                   timeout=240)
    assert proc.returncode in (0, 1, 3), proc.stderr  # a verdict either way (3: inconclusive), never an error
    result = json.loads(proc.stdout)
    verdicts = {c["status"] for c in result["checks"]}
    assert verdicts <= {"pass", "fail", "inconclusive"}, result["checks"]
    # a share check is inconclusive only when its interval straddles the limit (12 frames decide little)
    for c in result["checks"]:
        if c["status"] == "inconclusive" and c["kind"] == "robustness":
            assert c["details"]["ci_low"] <= c["limit"] <= c["details"]["ci_high"], c
    assert junit.read_text().count("<testcase") == len(result["checks"]) == 5


def test_int8_model_runs_through_the_agent(tmp_path: Path, short_clip: Path,
                                           write_config: Callable[..., Path]) -> None:
    cfg = demo_config(DATA / "tiny_cnn_int8.tflite", short_clip, tmp_path / "s.db")
    cfg["model"]["preprocess"] = {"color": "rgb"}
    proc = run_cli("run", "-c", str(write_config(cfg)), "--no-broker", "--max-frames", "30")
    assert proc.returncode == 0, proc.stderr
    birth = next(m for m in spooled(tmp_path / "s.db") if m["kind"] == "birth")
    inp = birth["body"]["model"]["input"]
    assert inp["dtype"] == "int8" and inp["quantization"][1] == -128


def test_custom_op_model_is_refused_naming_the_op(tmp_path: Path, short_clip: Path,
                                                 write_config: Callable[..., Path]) -> None:
    cfg = demo_config(asset("face_landmark_with_attention.tflite"), short_clip, tmp_path / "s.db")
    proc = run_cli("run", "-c", str(write_config(cfg)), "--max-frames", "2")
    assert_clean_error(proc, r"uses the custom op Landmarks2TransformMatrix, which this TFLite runtime")


def test_tflite_model_without_litert_names_the_extra(tmp_path: Path, short_clip: Path,
                                                    write_config: Callable[..., Path]) -> None:
    # Shadow both runtimes with packages that fail to import, as on a board installed without the extra.
    for name in ("ai_edge_litert", "tflite_runtime"):
        (tmp_path / "shadow" / name).mkdir(parents=True)
        (tmp_path / "shadow" / name / "__init__.py").write_text("raise ImportError('not installed')\n")
    cfg = demo_config(asset("face_detection_short_range.tflite"), short_clip, tmp_path / "s.db")
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])}
    proc = run_cli("run", "-c", str(write_config(cfg)), "--max-frames", "2", env=env)
    assert_clean_error(proc, r"face_detection_short_range.tflite is a TFLite model but no LiteRT runtime is installed; "
                       r"install the extra: pip install 'edgeprobe\[tflite\]'")


def test_init_recognises_an_anchor_ssd(tmp_path: Path) -> None:
    out = tmp_path / "suite.yaml"
    proc = run_cli("init", str(asset("face_detection_short_range.tflite")), "-o", str(out), "--source",
                   str(asset("vtest.avi")))
    assert proc.returncode == 0, proc.stderr
    suite = yaml.safe_load(out.read_text())
    assert suite["task"]["kind"] == "ssd_anchors"
    assert run_cli("validate", str(out)).returncode == 0
