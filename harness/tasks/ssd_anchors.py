"""Anchor-based SSD detectors with raw outputs (MediaPipe BlazeFace, palm detection).

These TFLite models end before box decoding: they give regressors ``(1, N, 4 +
2K)`` (box offsets then K keypoints) and classificator logits ``(1, N, 1)``
against N anchors the model never stores. The anchors follow MediaPipe's
``SsdAnchorsCalculator`` and the decoding its ``TensorsToDetectionsCalculator``;
the option values below are those of the published graphs in
mediapipe==0.10.21 (mediapipe/modules/face_detection/face_detection_short_range.pbtxt,
face_detection_full_range.pbtxt, palm_detection/palm_detection_cpu.pbtxt,
pose_detection/pose_detection_cpu.pbtxt).

Any other SSD is described by its anchor options in config, the same fields
MediaPipe's calculator takes (``task.anchors: {input_size: [H, W], strides,
min_scale, max_scale, aspect_ratios, ...}``): the anchor count they generate
must equal the model's rows, or the model is refused at load.

Comparison (IoU-matched F1) and plain NMS come from :mod:`.detection`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.tasks.base import Detections, OutputSpec, misfit
from edgeprobe.harness.tasks.detection import box_iou, empty_detections, match_f1, nms


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


_FACE_SHORT = AnchorOptions(128, 128, 4, (8, 16, 16, 16), 0.1484375, 0.75)
_PALM = AnchorOptions(192, 192, 4, (8, 16, 16, 16), 0.1484375, 0.75)
PRESETS: dict[str, Preset] = {
    "face_short_range": Preset(_FACE_SHORT, scale=128.0, num_coords=16, score_threshold=0.5, nms_iou=0.3),
    "face_full_range": Preset(AnchorOptions(192, 192, 1, (4,), 0.1484375, 0.75, interpolated_scale_aspect_ratio=0.0),
                              scale=192.0, num_coords=16, score_threshold=0.6, nms_iou=0.3),
    "palm_lite": Preset(_PALM, scale=192.0, num_coords=18, score_threshold=0.5, nms_iou=0.3),
    "palm_full": Preset(_PALM, scale=192.0, num_coords=18, score_threshold=0.5, nms_iou=0.3),
    "pose": Preset(AnchorOptions(224, 224, 5, (8, 16, 32, 32, 32), 0.1484375, 0.75),
                   scale=224.0, num_coords=12, score_threshold=0.5, nms_iou=0.3),
}

_ANCHOR_KEYS = ("input_size", "strides", "min_scale", "max_scale", "aspect_ratios", "anchor_offset",
                "interpolated_scale_aspect_ratio", "fixed_anchor_size", "num_layers", "scale", "num_coords")


def preset_from_options(options: dict[str, Any]) -> Preset:
    """``task.anchors`` (MediaPipe SsdAnchorsCalculatorOptions fields) -> a Preset; ConfigError on bad keys."""
    unknown = sorted(set(options) - set(_ANCHOR_KEYS))
    if unknown:
        raise ConfigError(f"task.anchors.{unknown[0]} is not an anchor option; use {', '.join(_ANCHOR_KEYS)}")
    for key in ("input_size", "strides", "min_scale", "max_scale"):
        if key not in options:
            raise ConfigError(f"task.anchors needs {key} (MediaPipe's SsdAnchorsCalculator option)")
    try:
        h, w = (int(v) for v in options["input_size"])
        strides = tuple(int(v) for v in options["strides"])
        opts = AnchorOptions(
            h, w, int(options.get("num_layers", len(strides))), strides, float(options["min_scale"]),
            float(options["max_scale"]), tuple(float(r) for r in options.get("aspect_ratios", (1.0,))),
            float(options.get("anchor_offset", 0.5)), float(options.get("interpolated_scale_aspect_ratio", 1.0)),
            bool(options.get("fixed_anchor_size", True)))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"task.anchors does not parse ({exc}); input_size is [H, W], strides a list of ints"
                          ) from None
    if h <= 0 or w <= 0 or any(s <= 0 for s in strides):
        raise ConfigError("task.anchors input_size and strides must be positive")
    num_coords = options.get("num_coords")
    return Preset(opts, scale=float(options.get("scale", w)), num_coords=int(num_coords) if num_coords else 0,
                  score_threshold=0.5, nms_iou=0.3)


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
    """Detection for raw-output anchor SSDs: a preset (layout), anchor options, or the preset the shapes fit."""

    # Predictions are Detections, so relations and reports treat this as a detector.
    name = "detection"
    layouts = tuple(PRESETS)
    accepts: ClassVar[dict[str, str]] = {
        k: f"regressors (1, {len(generate_anchors(p.anchors))}, {p.num_coords}) and classificators "
           f"(1, {len(generate_anchors(p.anchors))}, 1) as outputs #0 and #1"
        for k, p in PRESETS.items()
    }

    def __init__(self, layout: str | None = None, threshold: float = 0.5, iou: float = 0.5,
                 score_threshold: float | None = None, nms_iou: float | None = None,
                 input_size: tuple[int, int] | None = None, labels: Sequence[str] | None = None,
                 max_detections: int = 100, output: int = 0, anchors: dict[str, Any] | None = None):
        # ``output`` is accepted because every task config carries it; regressors and logits are always #0 and #1.
        if layout is not None and layout not in PRESETS:
            raise ConfigError(f"task.layout for ssd_anchors must be one of {', '.join(PRESETS)}, got {layout!r}"
                              " (or give task.anchors)")
        if layout is not None and anchors is not None:
            raise ConfigError("task.layout (a preset) and task.anchors both describe the anchors; keep one")
        self.preset_name = layout or ("anchors" if anchors is not None else None)
        self.threshold = threshold
        self.iou = iou
        self._score_threshold = score_threshold
        self._nms_iou = nms_iou
        self.input_size = input_size
        self.labels = list(labels) if labels else None
        self.max_detections = max_detections
        self.preset: Preset | None = PRESETS[layout] if layout else (
            preset_from_options(anchors) if anchors is not None else None)
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
        full = f"ssd_anchors/{self.preset_name}" if self.preset_name else "ssd_anchors"
        expects = self.accepts.get(self.preset_name or "",
                                   "raw regressors (1, N, coords) and classificators (1, N, 1) as outputs #0 and #1")
        if len(outputs) < 2:
            raise misfit(outputs[0], full, f"{expects} (the model has {len(outputs)} output)")
        regs, logits = outputs[0], outputs[1]
        if len(regs.shape) != 3 or not isinstance(regs.shape[1], int) or not isinstance(regs.shape[2], int) or (
                regs.shape[2] < 4):
            raise misfit(regs, full, expects)
        if len(logits.shape) != 3 or logits.shape[1] != regs.shape[1] or logits.shape[2] != 1:
            raise misfit(logits, full, expects)
        rows, coords = regs.shape[1], regs.shape[2]
        if self.preset is None:
            for name, preset in PRESETS.items():
                if len(generate_anchors(preset.anchors)) == rows and preset.num_coords == coords:
                    self.preset_name, self.preset = name, preset
                    self.anchors = generate_anchors(preset.anchors)
                    break
            else:
                raise misfit(regs, "ssd_anchors", "the rows and coordinates of a preset ("
                             + ", ".join(f"{k} {len(generate_anchors(p.anchors))} x {p.num_coords}"
                                         for k, p in PRESETS.items())
                             + "), or give task.anchors with the model's anchor options")
        assert self.anchors is not None
        if rows != len(self.anchors) or (self.preset.num_coords and coords != self.preset.num_coords):
            what = (f"{len(self.anchors)} anchors with {self.preset.num_coords} coordinates" if self.preset.num_coords
                    else f"{len(self.anchors)} anchors (generated from task.anchors)")
            raise misfit(regs, full, f"{what}, as outputs #0 and #1")
        if self.input_size is not None and tuple(self.input_size) != (self.preset.anchors.input_height,
                                                                      self.preset.anchors.input_width):
            a = self.preset.anchors
            raise misfit(regs, full, f"an input of {a.input_height}x{a.input_width} but the model's input is "
                         f"{self.input_size[0]}x{self.input_size[1]}")

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections:
        assert self.preset is not None and self.anchors is not None, "check_outputs() first"
        return decode(outputs[0], outputs[1], self.anchors, self.preset.scale, self.score_threshold, self.nms_iou,
                      max_detections=self.max_detections)

    def disagreement(self, a: Detections, b: Detections) -> float:
        return 1.0 - match_f1(a, b, self.iou)

    def describe(self, prediction: Detections) -> dict[str, Any]:
        top = float(prediction.scores.max()) if len(prediction) else 0.0
        return {"count": len(prediction), "classes": {"0": len(prediction)} if len(prediction) else {}, "score": top}
