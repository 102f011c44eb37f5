"""Anchor-based SSD detectors with raw outputs (MediaPipe BlazeFace, palm detection).

These TFLite models end before box decoding: they give regressors ``(1, N, 4 +
2K)`` (box offsets then K keypoints) and classificator logits ``(1, N, 1)``
against N anchors the model never stores. The anchors follow MediaPipe's
``SsdAnchorsCalculator`` and the decoding its ``TensorsToDetectionsCalculator``;
the option values below are those of the published graphs
(mediapipe/modules/face_detection/face_detection_short_range.pbtxt and
mediapipe/modules/palm_detection/palm_detection_cpu.pbtxt).

Comparison (IoU-matched F1) and plain NMS come from :mod:`.detection`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelError
from .base import Detections, OutputSpec
from .detection import box_iou, empty_detections, match_f1, nms


@dataclass(frozen=True)
class AnchorOptions:
    """The subset of SsdAnchorsCalculatorOptions these detectors use."""

    input_height: int
    input_width: int
    num_layers: int
    strides: tuple[int, ...]
    min_scale: float
    max_scale: float
    aspect_ratios: tuple[float, ...] = (1.0,)
    anchor_offset: float = 0.5
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


@dataclass(frozen=True)
class Preset:
    anchors: AnchorOptions
    #: regressor values are in input pixels: divide by these (x, y, w, h scales)
    scale: float
    num_coords: int
    score_threshold: float
    nms_iou: float


PRESETS: dict[str, Preset] = {
    "face_short_range": Preset(AnchorOptions(128, 128, 4, (8, 16, 16, 16), 0.1484375, 0.75),
                               scale=128.0, num_coords=16, score_threshold=0.5, nms_iou=0.3),
    "palm_lite": Preset(AnchorOptions(192, 192, 4, (8, 16, 16, 16), 0.1484375, 0.75),
                        scale=192.0, num_coords=18, score_threshold=0.5, nms_iou=0.3),
}


def _layer_scale(opts: AnchorOptions, index: int) -> float:
    if opts.num_layers == 1:
        return (opts.min_scale + opts.max_scale) / 2
    return opts.min_scale + (opts.max_scale - opts.min_scale) * index / (opts.num_layers - 1)


def generate_anchors(opts: AnchorOptions) -> np.ndarray:
    """Anchors ``(N, 4)`` as ``x_center, y_center, width, height`` normalised to the input.

    Consecutive layers with the same stride share one feature map, and their
    anchors are interleaved per cell, in the order the model's heads emit them.
    """
    if len(opts.strides) != opts.num_layers:
        raise ConfigError(f"anchor options give {len(opts.strides)} strides for {opts.num_layers} layers")
    out: list[np.ndarray] = []
    layer = 0
    while layer < opts.num_layers:
        sizes: list[tuple[float, float]] = []  # (width, height) per anchor of one cell
        last = layer
        while last < opts.num_layers and opts.strides[last] == opts.strides[layer]:
            scale = _layer_scale(opts, last)
            for ratio in opts.aspect_ratios:
                sizes.append((scale * math.sqrt(ratio), scale / math.sqrt(ratio)))
            if opts.interpolated_scale_aspect_ratio > 0:
                nxt = 1.0 if last == opts.num_layers - 1 else _layer_scale(opts, last + 1)
                s = math.sqrt(scale * nxt)
                r = opts.interpolated_scale_aspect_ratio
                sizes.append((s * math.sqrt(r), s / math.sqrt(r)))
            last += 1
        stride = opts.strides[layer]
        fh, fw = math.ceil(opts.input_height / stride), math.ceil(opts.input_width / stride)
        ys, xs = np.mgrid[0:fh, 0:fw]
        centers = np.stack([(xs.ravel() + opts.anchor_offset) / fw, (ys.ravel() + opts.anchor_offset) / fh], axis=1)
        wh = np.ones((len(sizes), 2)) if opts.fixed_anchor_size else np.asarray(sizes, dtype=np.float64)
        cells = np.repeat(centers, len(sizes), axis=0)
        out.append(np.concatenate([cells, np.tile(wh, (fh * fw, 1))], axis=1))
        layer = last
    return np.concatenate(out).astype(np.float32)


def sigmoid(x: np.ndarray, clip: float = 100.0) -> np.ndarray:
    """Logits -> scores, clipped as MediaPipe does (score_clipping_thresh) so exp never overflows."""
    return (1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -clip, clip)))).astype(np.float32)


def decode_boxes(regressors: np.ndarray, anchors: np.ndarray, scale: float) -> np.ndarray:
    """Raw regressors ``(N, >=4)`` (x, y, w, h offsets first) -> xyxy boxes normalised to the input."""
    r = np.asarray(regressors, np.float32).reshape(len(anchors), -1)
    cx = r[:, 0] / scale * anchors[:, 2] + anchors[:, 0]
    cy = r[:, 1] / scale * anchors[:, 3] + anchors[:, 1]
    w = r[:, 2] / scale * anchors[:, 2]
    h = r[:, 3] / scale * anchors[:, 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED suppression: each kept box is the score-weighted mean of the boxes it absorbs.

    BlazeFace emits many overlapping anchors per face; averaging them steadies
    the box from frame to frame, which plain NMS does not.
    """
    order = np.argsort(-scores, kind="stable")
    kept_boxes: list[np.ndarray] = []
    kept_scores: list[float] = []
    while order.size:
        top = int(order[0])
        overlaps = box_iou(boxes[top:top + 1], boxes[order])[0]
        group = order[overlaps > iou]
        if top not in group:  # degenerate (zero-area) box: keep it alone
            group = np.asarray([top])
        w = scores[group].astype(np.float64)
        kept_boxes.append((boxes[group] * w[:, None]).sum(axis=0) / w.sum())
        kept_scores.append(float(scores[top]))
        order = order[~np.isin(order, group)]
    if not kept_boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    return np.asarray(kept_boxes, np.float32), np.asarray(kept_scores, np.float32)


def decode(regressors: np.ndarray, logits: np.ndarray, anchors: np.ndarray, scale: float,
           score_threshold: float, nms_iou: float, weighted: bool = True, max_detections: int = 100) -> Detections:
    """Regressors + classificator logits -> :class:`Detections` (one class, 0)."""
    scores = sigmoid(np.asarray(logits, np.float32).reshape(-1))
    keep = scores >= score_threshold
    if not keep.any():
        return empty_detections()
    boxes = decode_boxes(regressors, anchors, scale)[keep]
    scores = scores[keep]
    if weighted:
        boxes, scores = weighted_nms(boxes, scores, nms_iou)
    else:
        idx = nms(boxes, scores, nms_iou)
        boxes, scores = boxes[idx], scores[idx]
    boxes, scores = boxes[:max_detections], scores[:max_detections]
    return Detections(np.clip(boxes, 0.0, 1.0).astype(np.float32), scores.astype(np.float32),
                      np.zeros(len(scores), np.int64))


class SsdAnchorsAdapter:
    """Detection for raw-output anchor SSDs; the preset is recognised from the anchor count."""

    # Predictions are Detections, so relations and reports treat this as a detector.
    name = "detection"

    def __init__(self, layout: str | None = None, threshold: float = 0.5, iou: float = 0.5,
                 score_threshold: float | None = None, nms_iou: float | None = None,
                 input_size: tuple[int, int] | None = None, labels: Sequence[str] | None = None,
                 max_detections: int = 100, output: int = 0):
        # ``output`` is accepted because every task config carries it; regressors and logits are always #0 and #1.
        if layout is not None and layout not in PRESETS:
            raise ConfigError(f"task.layout for ssd_anchors must be one of {', '.join(PRESETS)}, got {layout!r}")
        self.preset_name = layout
        self.threshold = threshold
        self.iou = iou
        self._score_threshold = score_threshold
        self._nms_iou = nms_iou
        self.input_size = input_size
        self.labels = list(labels) if labels else None
        self.max_detections = max_detections
        self.preset: Preset | None = PRESETS[layout] if layout else None
        self.anchors: np.ndarray | None = generate_anchors(self.preset.anchors) if self.preset else None

    @property
    def score_threshold(self) -> float:
        if self._score_threshold is not None:
            return self._score_threshold
        return self.preset.score_threshold if self.preset else 0.5

    @property
    def nms_iou(self) -> float:
        if self._nms_iou is not None:
            return self._nms_iou
        return self.preset.nms_iou if self.preset else 0.3

    def check_outputs(self, outputs: Sequence[OutputSpec]) -> None:
        if len(outputs) < 2 or len(outputs[0].shape) != 3 or len(outputs[1].shape) != 3:
            raise ModelError(
                "ssd_anchors needs raw regressors (1, N, coords) and classificators (1, N, 1) as outputs #0 and #1, "
                f"but the model gives {[list(o.shape) for o in outputs]}; use task.kind detection for decoded boxes"
            )
        rows, coords = outputs[0].shape[1], outputs[0].shape[2]
        if self.preset is None:
            for name, preset in PRESETS.items():
                n = len(generate_anchors(preset.anchors))
                if n == rows and preset.num_coords == coords:
                    self.preset_name, self.preset = name, preset
                    self.anchors = generate_anchors(preset.anchors)
                    break
            else:
                raise ModelError(
                    f"no known anchor set gives {rows} anchors with {coords} coordinates; known: "
                    + ", ".join(f"{k} ({len(generate_anchors(p.anchors))} x {p.num_coords})"
                                for k, p in PRESETS.items())
                )
        assert self.anchors is not None
        if rows != len(self.anchors) or outputs[1].shape[1] != rows:
            raise ModelError(
                f"task.layout {self.preset_name} has {len(self.anchors)} anchors but the model's outputs have "
                f"{rows} and {outputs[1].shape[1]} rows; pick the preset that matches the model"
            )

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections:
        assert self.preset is not None and self.anchors is not None, "check_outputs() first"
        return decode(outputs[0], outputs[1], self.anchors, self.preset.scale, self.score_threshold, self.nms_iou,
                      max_detections=self.max_detections)

    def disagreement(self, a: Detections, b: Detections) -> float:
        return 1.0 - match_f1(a, b, self.iou)

    def describe(self, prediction: Detections) -> dict[str, Any]:
        top = float(prediction.scores.max()) if len(prediction) else 0.0
        return {"count": len(prediction), "classes": {"0": len(prediction)} if len(prediction) else {}, "score": top}
