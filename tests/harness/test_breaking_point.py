"""Breaking-point bisection: against a model with a known breaking point and a dense sweep on a real model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgeprobe.harness import perturbations
from edgeprobe.harness.breaking_point import find_breaking_point, search, unstable_fraction
from edgeprobe.harness.errors import ConfigError, EdgeprobeError
from edgeprobe.harness.tasks.classification import ClassificationAdapter
from onnx import TensorProto, helper

T = 180.0  # the synthetic classifier says class 0 while the frame's mean pixel exceeds T


def mean_threshold_model(path: Path) -> Path:
    """logits = [mean - T, T - mean]: top-1 flips exactly when the mean pixel falls below T."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    t = helper.make_tensor("t", TensorProto.FLOAT, [1, 1], [T])
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m4"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Reshape", ["m4", "shape"], ["m"]),
        helper.make_node("Sub", ["m", "t"], ["a"]),
        helper.make_node("Sub", ["t", "m"], ["b"]),
        helper.make_node("Concat", ["a", "b"], ["y"], axis=1),
    ]
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 1])
    graph = helper.make_graph(nodes, "mean_threshold", [x], [y], initializer=[t, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_bisection_finds_the_known_breaking_point_of_a_synthetic_model(tmp_path: Path) -> None:
    session = ort.InferenceSession(str(mean_threshold_model(tmp_path / "m.onnx")))

    def predict(img: np.ndarray) -> object:
        x = img.astype(np.float32).transpose(2, 0, 1)[None]
        return ClassificationAdapter().decode(session.run(None, {"x": x}))

    adapter = ClassificationAdapter(threshold=0.5)
    frames = [np.full((32, 32, 3), 200, np.uint8) for _ in range(6)]
    # Dropout zeroes a fraction f of pixels: the mean is 200 (1 - f) and crosses T at f = 0.1.
    # The known breaking point is the severity whose dropout fraction is 0.1.
    drop = perturbations.get("pixel_dropout")
    known = min(np.arange(0, 5.0001, 0.001), key=lambda s: abs(drop.params_at(float(s))[0] - (1 - T / 200)))
    bp, replay = search(frames, list(range(6)), predict, adapter, "pixel_dropout", seed=7, threshold=0.5)
    assert bp.found and bp.severity is not None
    assert bp.rounds <= 8
    assert abs(bp.severity - known) <= 0.1, (bp.severity, known)
    assert replay["frames"] == list(range(6)) and replay["probes"]
    # Replay: the recorded seeds regenerate the same unstable count.
    again = unstable_fraction(frames, list(range(6)), predict, adapter, "pixel_dropout", bp.severity, 7)
    assert again.seeds == next(p["seeds"] for p in replay["probes"] if p["severity"] == bp.severity)


def test_bisection_agrees_with_a_dense_sweep_on_the_rotation_classifier(orientation_model: Path,
                                                                         vtest_video: Path) -> None:
    session = ort.InferenceSession(str(orientation_model))
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def predict(img: np.ndarray) -> object:
        x = (cv2.resize(img, (224, 224)).astype(np.float32) / 255 - mean) / std
        return ClassificationAdapter().decode(session.run(None, {"x": x.transpose(2, 0, 1)[None]}))

    cap = cv2.VideoCapture(str(vtest_video))
    frames = []
    idx = [250, 270, 290, 310]  # street frames where the text classifier's answer is fragile
    for i in idx:
        cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, img = cap.read()
        assert ok
        frames.append(cv2.resize(img, (224, 224)))
    adapter = ClassificationAdapter()
    clean = [predict(f) for f in frames]

    def frac(s: float) -> float:
        return unstable_fraction(frames, idx, predict, adapter, "pixel_dropout", s, 3, clean).fraction

    grid = [round(s, 2) for s in np.arange(0.1, 5.0001, 0.1)]
    sweep = {s: frac(s) for s in grid}
    dense = next((s for s in grid if sweep[s] >= 0.25), None)
    bp = find_breaking_point(frac, threshold=0.25)
    assert dense is not None and bp.severity is not None, (sweep, bp)
    assert abs(bp.severity - dense) <= 0.1, (bp.severity, dense, sweep)


def test_pure_search_on_a_step_function() -> None:
    bp = find_breaking_point(lambda s: float(s >= 2.37), threshold=0.2, tolerance=0.05, max_rounds=8)
    assert bp.severity is not None and 2.37 <= bp.severity <= 2.37 + 0.05 and bp.rounds <= 8
    none = find_breaking_point(lambda s: 0.0)
    assert none.severity is None and not none.found and none.rounds == 1


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_outside_unit_interval_is_one_sentence(threshold: float) -> None:
    with pytest.raises(ConfigError, match=r"threshold must be a number in \[0, 1\]"):
        find_breaking_point(lambda s: 0.0, threshold=threshold)


def test_empty_frame_sample_and_unknown_perturbation() -> None:
    adapter = ClassificationAdapter()
    with pytest.raises(ConfigError, match="frame sample is empty"):
        search([], [], lambda im: None, adapter, "gaussian_noise", 0)
    with pytest.raises(EdgeprobeError, match=r"unknown perturbation 'gausian_noise'.*gaussian_noise"):
        search([np.zeros((8, 8, 3), np.uint8)], [0], lambda im: None, adapter, "gausian_noise", 0)
