"""Detection adapter: IoU-F1 against an exhaustive matcher, and the YOLO layout on ddddocr's real detector."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness.errors import EdgeprobeError
from edgeprobe.harness.metamorphic import evaluate_relations
from edgeprobe.harness.tasks import make_adapter
from edgeprobe.harness.tasks.base import Detections, OutputSpec
from edgeprobe.harness.tasks.detection import box_iou, match_f1, nms
from tests.conftest import asset

box = st.tuples(st.floats(0, 0.8), st.floats(0, 0.8), st.floats(0.05, 0.5), st.floats(0.05, 0.5)).map(
    lambda t: [t[0], t[1], min(1.0, t[0] + t[2]), min(1.0, t[1] + t[3])])
dets = st.lists(st.tuples(box, st.integers(0, 1)), max_size=5).map(
    lambda xs: Detections(np.array([b for b, _ in xs], np.float32).reshape(-1, 4), np.ones(len(xs), np.float32),
                          np.array([c for _, c in xs], np.int64)))


def exhaustive_f1(a: Detections, b: Detections, iou: float) -> float:
    """Best matching by trying every injection of the smaller set into the larger one."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    ious = box_iou(a.boxes, b.boxes)
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    best = 0
    for perm in itertools.permutations(range(len(large)), len(small)):
        m = 0
        for i, j in enumerate(perm):
            ia, ib = (i, j) if small is a else (j, i)
            m += int(ious[ia, ib] >= iou and a.classes[ia] == b.classes[ib])
        best = max(best, m)
    return 2 * best / (len(a) + len(b))


@settings(max_examples=150, deadline=None)
@given(dets, dets, st.sampled_from([0.1, 0.3, 0.5]))
def test_match_f1_equals_exhaustive_matching(a: Detections, b: Detections, iou: float) -> None:
    assert match_f1(a, b, iou) == pytest.approx(exhaustive_f1(a, b, iou))
    assert match_f1(a, b, iou) == pytest.approx(match_f1(b, a, iou))


@settings(max_examples=100, deadline=None)
@given(dets, st.sampled_from([0.3, 0.5]))
def test_nms_keeps_no_overlapping_pair_and_the_best_box(d: Detections, iou: float) -> None:
    scores = np.linspace(1, 0.1, len(d)) if len(d) else np.zeros(0)
    keep = nms(d.boxes, scores, iou)
    if len(d):
        assert keep[0] == 0
    ious = box_iou(d.boxes[keep], d.boxes[keep])
    assert not np.any(np.triu(ious, 1) > iou)


def text_image() -> np.ndarray:
    """Mirror-symmetric letters, so the mirrored frame still holds characters the detector knows."""
    img = np.full((416, 416, 3), 255, np.uint8)
    for i, ch in enumerate("AHOX"):
        cv2.putText(img, ch, (30 + i * 95, 150 + (i % 2) * 120), cv2.FONT_HERSHEY_SIMPLEX, 3, (0, 0, 0), 6)
    return img


def test_yolo_layout_on_ddddocr_detector_finds_rendered_characters_and_mirrors() -> None:
    session = ort.InferenceSession(str(asset("ddddocr_det.onnx")))
    specs = [OutputSpec(o.name, tuple(o.shape), o.type) for o in session.get_outputs()]
    # ddddocr feeds BGR 0-255 floats, no normalisation, and decodes a YOLOX grid at strides 8/16/32.
    adapter = make_adapter("detection", specs, layout="yolo", strides=[8, 16, 32], input_size=(416, 416),
                           score_threshold=0.1, iou=0.5)

    def predict(img: np.ndarray) -> Detections:
        x = cv2.resize(img, (416, 416)).astype(np.float32).transpose(2, 0, 1)[None]
        return adapter.decode(session.run(None, {"images": x}))

    img = text_image()
    d = predict(img)
    assert len(d) >= 1
    # Every detection sits on ink: the box holds dark pixels.
    for x1, y1, x2, y2 in (d.boxes * 416).astype(int):
        assert img[y1:y2, x1:x2].min() < 50
    assert adapter.disagreement(d, predict(img)) == 0.0
    assert adapter.disagreement(d, predict(np.full_like(img, 255))) == 1.0
    (flip,) = evaluate_relations([img], predict, adapter, ["hflip"])
    assert flip.n == 1 and flip.violations == 0


def test_layout_that_does_not_fit_the_model_is_one_sentence() -> None:
    session = ort.InferenceSession(str(asset("ddddocr_det.onnx")))
    specs = [OutputSpec(o.name, tuple(o.shape), o.type) for o in session.get_outputs()]
    # One real inference: its values rule out yolov8_e2e, whose (1, N, 6) shape the detector also has.
    sample = session.run(None, {"images": np.full((1, 3, 416, 416), 114, np.float32)})
    with pytest.raises(EdgeprobeError, match=r"output 'output' has shape \(1, 3549, 6\) but detection/ssd expects "
                       r"boxes \(1, N, 4\).*layouts that fit: detection/yolox$"):
        make_adapter("detection", specs, layout="ssd", input_size=(416, 416), sample=sample)
    with pytest.raises(EdgeprobeError, match=r"10647 predictions at input 416x416 with strides \[8, 16, 32\], "
                       r"not 3549"):
        make_adapter("detection", specs, layout="yolov5", input_size=(416, 416), sample=sample)
    with pytest.raises(EdgeprobeError, match="strides"):
        make_adapter("detection", specs, layout="yolo", strides=[16, 32], input_size=(416, 416))
