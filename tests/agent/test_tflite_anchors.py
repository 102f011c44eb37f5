"""SSD anchor generation and BlazeFace-style decoding (harness/tasks/ssd_anchors.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness.errors import ConfigError, ModelError
from edgeprobe.harness.tasks import OutputSpec, make_adapter
from edgeprobe.harness.tasks.ssd_anchors import (
    PRESETS,
    AnchorOptions,
    decode,
    decode_boxes,
    generate_anchors,
    sigmoid,
    weighted_nms,
)


def test_known_models_anchor_counts() -> None:
    # Counts of the models' regressor rows: 16x16x2 + 8x8x6 and 24x24x2 + 12x12x6.
    assert len(generate_anchors(PRESETS["face_short_range"].anchors)) == 896
    assert len(generate_anchors(PRESETS["palm_lite"].anchors)) == 2016


def test_anchor_layout_matches_mediapipe() -> None:
    a = generate_anchors(PRESETS["face_short_range"].anchors)
    # First feature map (stride 8, 16x16 cells): two anchors per cell, row-major, centres at (i + 0.5) / 16.
    np.testing.assert_allclose(a[0], [0.5 / 16, 0.5 / 16, 1, 1])
    np.testing.assert_allclose(a[1], a[0])
    np.testing.assert_allclose(a[2, :2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(a[2 * 16, :2], [0.5 / 16, 1.5 / 16])
    # Second map (three stride-16 layers merged, 8x8 cells): six anchors per cell.
    np.testing.assert_allclose(a[512:518, :2], [[0.5 / 8, 0.5 / 8]] * 6)
    np.testing.assert_allclose(a[-1, :2], [7.5 / 8, 7.5 / 8])


def test_unfixed_anchor_sizes_follow_scales_and_ratios() -> None:
    opts = AnchorOptions(64, 64, 2, (16, 32), 0.2, 0.8, aspect_ratios=(1.0, 4.0), fixed_anchor_size=False)
    a = generate_anchors(opts)
    assert len(a) == 4 * 4 * 3 + 2 * 2 * 3
    # layer 0: scale 0.2 at ratios 1 and 4, then the interpolated sqrt(0.2 * 0.8) at ratio 1
    np.testing.assert_allclose(a[:3, 2:], [[0.2, 0.2], [0.4, 0.1], [0.4, 0.4]], rtol=1e-6)
    # last layer interpolates towards scale 1.0
    np.testing.assert_allclose(a[48 + 2, 2:], [np.sqrt(0.8), np.sqrt(0.8)], rtol=1e-6)


@settings(max_examples=100, deadline=None)
@given(layers=st.integers(1, 5), base=st.sampled_from([4, 8, 16]), size=st.sampled_from([64, 96, 128, 192]),
       lo=st.floats(0.05, 0.5), span=st.floats(0.0, 0.5))
def test_anchor_centres_lie_inside_the_frame(layers: int, base: int, size: int, lo: float, span: float) -> None:
    strides = tuple(base * 2 ** min(i, 2) for i in range(layers))
    a = generate_anchors(AnchorOptions(size, size, layers, strides, lo, lo + span, fixed_anchor_size=False))
    assert len(a) > 0
    assert np.all((a[:, :2] > 0) & (a[:, :2] < 1))
    assert np.all(a[:, 2:] > 0)


@settings(max_examples=100, deadline=None)
@given(cx=st.floats(0.1, 0.9), cy=st.floats(0.1, 0.9), w=st.floats(0.01, 0.5), h=st.floats(0.01, 0.5),
       idx=st.integers(0, 895))
def test_decode_boxes_inverts_the_encoding(cx: float, cy: float, w: float, h: float, idx: int) -> None:
    preset = PRESETS["face_short_range"]
    anchors = generate_anchors(preset.anchors)
    raw = np.zeros((896, 16), np.float32)
    ax, ay, aw, ah = anchors[idx]
    raw[idx, :4] = [(cx - ax) / aw * preset.scale, (cy - ay) / ah * preset.scale, w / aw * preset.scale,
                    h / ah * preset.scale]
    box = decode_boxes(raw, anchors, preset.scale)[idx]
    np.testing.assert_allclose(box, [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], atol=1e-5)


def test_sigmoid_is_clipped_and_finite() -> None:
    s = sigmoid(np.array([-1e6, -3.0, 0.0, 3.0, 1e6], np.float32))
    assert np.all(np.isfinite(s)) and s[2] == pytest.approx(0.5)
    assert np.all(np.diff(s) >= 0)


def test_weighted_nms_averages_a_cluster_and_keeps_separate_boxes() -> None:
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)
    out, sc = weighted_nms(boxes, scores, 0.3)
    assert len(out) == 2 and sc.tolist() == pytest.approx([0.9, 0.7])
    np.testing.assert_allclose(out[0], (boxes[0] * 0.9 + boxes[1] * 0.6) / 1.5, rtol=1e-6)
    np.testing.assert_allclose(out[1], boxes[2])


@pytest.mark.parametrize("weighted", [True, False])
def test_decode_thresholds_scores(weighted: bool) -> None:
    preset = PRESETS["face_short_range"]
    anchors = generate_anchors(preset.anchors)
    raw = np.zeros((1, 896, 16), np.float32)
    raw[0, :, 2:4] = 20.0  # 20 px boxes
    logits = np.full((1, 896, 1), -10.0, np.float32)
    logits[0, 100] = 2.0  # sigmoid 0.88
    logits[0, 600] = 0.1  # sigmoid 0.52
    dets = decode(raw, logits, anchors, preset.scale, 0.6, 0.3, weighted=weighted)
    assert len(dets) == 1 and dets.scores[0] == pytest.approx(1 / (1 + np.exp(-2.0)), rel=1e-5)
    cx, cy = anchors[100, :2]
    np.testing.assert_allclose(dets.boxes[0], [cx - 10 / 128, cy - 10 / 128, cx + 10 / 128, cy + 10 / 128], atol=1e-6)
    assert len(decode(raw, logits, anchors, preset.scale, 0.5, 0.3, weighted=weighted)) == 2


def test_adapter_recognises_the_preset_and_refuses_unknown_layouts() -> None:
    specs = [OutputSpec("regressors", (1, 2016, 18), "float32"), OutputSpec("classificators", (1, 2016, 1), "float32")]
    adapter = make_adapter("ssd_anchors", specs)
    assert adapter.preset_name == "palm_lite"  # type: ignore[attr-defined]
    with pytest.raises(ModelError, match=r"ssd_anchors expects the rows and coordinates of a preset \(face_short_range"
                       r" 896 x 16.*pose 2254 x 12\), or give task.anchors"):
        make_adapter("ssd_anchors", [OutputSpec("r", (1, 100, 16), "float32"), OutputSpec("c", (1, 100, 1), "float32")])
    with pytest.raises(ModelError, match=r"has shape \(1, 2016, 18\) but ssd_anchors/face_short_range expects "
                       r"896 anchors with 16 coordinates.*layouts that fit: ssd_anchors/palm_lite, "
                       r"ssd_anchors/palm_full"):
        make_adapter("ssd_anchors", specs, layout="face_short_range")
    with pytest.raises(ConfigError, match=r"task\.layout for ssd_anchors must be one of"):
        make_adapter("ssd_anchors", specs, layout="yolo")
    with pytest.raises(ModelError, match="ssd_anchors expects raw regressors"):
        make_adapter("ssd_anchors", [OutputSpec("probs", (1, 4), "float32")])
