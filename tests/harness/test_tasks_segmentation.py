"""Segmentation adapter on PP-OCRv4's text detector (a DB probability map) from the rapidocr-onnxruntime wheel."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgeprobe.harness.breaking_point import unstable_fraction
from edgeprobe.harness.metamorphic import evaluate_relations
from edgeprobe.harness.tasks import make_adapter
from edgeprobe.harness.tasks.base import OutputSpec, SegmentationMask
from edgeprobe.harness.tasks.embedding import EmbeddingAdapter
from edgeprobe.harness.tasks.segmentation import mask_iou
from tests.conftest import asset


@settings(max_examples=100, deadline=None)
@given(arrays(np.uint8, (6, 7), elements=st.integers(0, 2)), arrays(np.uint8, (6, 7), elements=st.integers(0, 2)))
def test_mask_iou_matches_a_per_pixel_count(a: np.ndarray, b: np.ndarray) -> None:
    ious = []
    for c in (1, 2):
        inter = sum(int(x == c and y == c) for x, y in zip(a.ravel(), b.ravel(), strict=True))
        union = sum(int(x == c or y == c) for x, y in zip(a.ravel(), b.ravel(), strict=True))
        if union:
            ious.append(inter / union)
    assert mask_iou(a, b) == (np.mean(ious) if ious else 1.0)


def test_ppocr_text_detector_mask_is_stable_on_text_and_moves_under_heavy_blur() -> None:
    session = ort.InferenceSession(str(asset("ppocr_det.onnx")))
    specs = [OutputSpec(o.name, tuple(d if isinstance(d, int) else None for d in o.shape), o.type)
             for o in session.get_outputs()]
    adapter = make_adapter("segmentation", specs, layout="nchw", mask_threshold=0.3, threshold=0.3,
                           input_size=(320, 320))
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)

    def predict(img: np.ndarray) -> SegmentationMask:
        x = (cv2.resize(img, (320, 320)).astype(np.float32) / 255 - mean) / std
        return adapter.decode(session.run(None, {"x": x.transpose(2, 0, 1)[None]}))

    img = np.full((320, 320, 3), 255, np.uint8)
    for r in range(4):
        cv2.putText(img, "EDGE probe 42", (10, 60 + r * 70), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (0, 0, 0), 2)
    m = predict(img)
    fg = np.count_nonzero(m.labels) / m.labels.size
    assert 0.02 < fg < 0.6  # text lines found, not the whole frame
    assert adapter.disagreement(m, predict(img)) == 0.0
    assert adapter.disagreement(m, predict(np.full_like(img, 255))) == 1.0
    sharp = unstable_fraction([img], [0], predict, adapter, "gaussian_noise", 0.2, 1)
    blurred = unstable_fraction([img], [0], predict, adapter, "gaussian_blur", 5.0, 1)
    assert blurred.disagreements[0] > sharp.disagreements[0]
    (flip,) = evaluate_relations([img], predict, adapter, ["hflip"])
    assert flip.n == 1


def test_embedding_cosine_distance() -> None:
    e = EmbeddingAdapter(threshold=0.1)
    assert e.disagreement(np.array([1.0, 0.0]), np.array([2.0, 0.0])) == 0.0
    assert e.disagreement(np.array([1.0, 0.0]), np.array([0.0, 3.0])) == 1.0
