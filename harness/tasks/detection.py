"""Detection: boxes + scores + classes; two predictions disagree by 1 - IoU-matched F1.

Two output layouts are read:

- ``ssd``: a boxes tensor ``(1, N, 4)`` plus either a scores tensor ``(1, N)``
  with a classes tensor ``(1, N)`` (TF Object Detection API post-processed
  export) or a class-score matrix ``(1, N, C)``. Box order ``yxyx`` (TF) or
  ``xyxy``, normalised to [0, 1].
- ``yolo``: one tensor ``(1, N, 5 + C)`` of rows ``cx, cy, w, h, objectness,
  class scores`` in input pixels. YOLOX-style exports leave the grid decode to
  the caller; ``strides`` (e.g. ``[8, 16, 32]``) turns it on.

:func:`nms` and :func:`match_f1` are plain functions so other detectors'
decoders (anchor-based TFLite models) reuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelError
from .base import Detections, OutputSpec

LAYOUTS = ("ssd", "yolo")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes -> ``(N, M)``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.45) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, highest score first.

    A box is dropped when its IoU with an already kept box exceeds ``iou``.
    Ties in score keep the lower index first (stable sort) so results replay.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64).ravel(), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        overlaps = box_iou(boxes[i:i + 1], boxes[rest])[0]
        order = rest[overlaps <= iou]
    return np.asarray(keep, dtype=np.int64)


def max_matching(allowed: np.ndarray) -> int:
    """Size of a maximum bipartite matching in a boolean ``(N, M)`` compatibility matrix.

    Augmenting paths (Kuhn): exact, and at the tens of boxes a frame holds
    O(N·E) is nothing. Greedy highest-IoU-first matching can miss pairs, which
    would count a perturbation as harmful when it only reshuffled overlaps.
    """
    n, m = allowed.shape
    match_b = [-1] * m
    adj = [np.flatnonzero(allowed[i]).tolist() for i in range(n)]

    def augment(i: int, seen: list[bool]) -> bool:
        for j in adj[i]:
            if not seen[j]:
                seen[j] = True
                if match_b[j] < 0 or augment(match_b[j], seen):
                    match_b[j] = i
                    return True
        return False

    return sum(augment(i, [False] * m) for i in range(n))


def match_f1(a: Detections, b: Detections, iou: float = 0.5, class_aware: bool = True) -> float:
    """F1 of the largest one-to-one matching of ``a`` and ``b`` at IoU >= ``iou`` (same class).

    Symmetric; two empty predictions agree perfectly (1.0).
    """
    na, nb = len(a), len(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    allowed = box_iou(a.boxes, b.boxes) >= iou
    if class_aware:
        allowed &= np.asarray(a.classes).reshape(-1, 1) == np.asarray(b.classes).reshape(1, -1)
    return 2.0 * max_matching(allowed) / (na + nb)


def empty_detections() -> Detections:
    return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def select(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, score_threshold: float,
           iou: float, max_detections: int) -> Detections:
    """Score filter + per-class NMS, boxes clipped to the frame."""
    ok = scores >= score_threshold
    boxes, scores, classes = boxes[ok], scores[ok], classes[ok]
    if not len(scores):
        return empty_detections()
    # Per-class NMS by offsetting each class into its own region (boxes are in [0, 1]-ish units).
    offset = classes.astype(np.float64)[:, None] * 4.0
    keep = nms(boxes + offset, scores, iou)[:max_detections]
    return Detections(np.clip(boxes[keep], 0.0, 1.0).astype(np.float32), scores[keep].astype(np.float32),
                      classes[keep].astype(np.int64))


class DetectionAdapter:
    """Reads SSD or YOLO layouts into :class:`Detections`."""

    name = "detection"

    def __init__(self, layout: str | None = None, output: int = 0, threshold: float = 0.5, iou: float = 0.5,
                 score_threshold: float = 0.25, nms_iou: float = 0.45, box_order: str = "yxyx",
                 strides: Sequence[int] | None = None, input_size: tuple[int, int] | None = None,
                 labels: Sequence[str] | None = None, max_detections: int = 100):
        if layout not in LAYOUTS:
            raise ConfigError(f"task.layout must be one of {', '.join(LAYOUTS)} for detection, got {layout!r}")
        if box_order not in ("yxyx", "xyxy"):
            raise ConfigError(f"task.box_order must be yxyx or xyxy, got {box_order!r}")
        for key, value in (("threshold", threshold), ("iou", iou), ("score_threshold", score_threshold),
                           ("nms_iou", nms_iou)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"task.{key} must be in [0, 1], got {value}")
        self.layout = layout
        self.output = output
        self.threshold = threshold
        self.iou = iou
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.box_order = box_order
        self.strides = list(strides) if strides else None
        self.input_size = input_size
        self.labels = list(labels) if labels else None
        self.max_detections = max_detections
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    # --- load-time check ---------------------------------------------------

    def check_outputs(self, outputs: Sequence[OutputSpec]) -> None:
        if self.layout == "yolo":
            self._check_yolo(outputs)
        else:
            self._check_ssd(outputs)

    def _check_yolo(self, outputs: Sequence[OutputSpec]) -> None:
        if self.output >= len(outputs):
            raise ModelError(f"yolo layout reads output #{self.output} but the model has {len(outputs)} output(s)")
        spec = outputs[self.output]
        shape = spec.shape
        if len(shape) != 3 or (isinstance(shape[2], int) and shape[2] < 6):
            raise ModelError(
                f"yolo layout needs an output of shape (1, boxes, 5 + classes), but {spec.name!r} has "
                f"{list(shape)}; check task.layout (ssd?) or task.output"
            )
        if self.input_size is None:
            raise ModelError("yolo layout needs the model's input size to normalise boxes; the backend gave none")
        if self.strides and isinstance(shape[1], int):
            h, w = self.input_size
            cells = sum((h // s) * (w // s) for s in self.strides)
            if cells != shape[1]:
                raise ModelError(
                    f"task.strides {self.strides} give {cells} grid cells at input {h}x{w}, but output "
                    f"{spec.name!r} has {shape[1]} rows; fix task.strides"
                )

    def _check_ssd(self, outputs: Sequence[OutputSpec]) -> None:
        if len(outputs) < 2:
            raise ModelError(
                f"ssd layout needs a boxes output and a scores output, but the model has {len(outputs)} output(s); "
                "check task.layout (yolo?)"
            )
        boxes = outputs[0]
        if len(boxes.shape) != 3 or boxes.shape[2] != 4:
            raise ModelError(
                f"ssd layout needs boxes of shape (1, N, 4) as output #0, but {boxes.name!r} has "
                f"{list(boxes.shape)}; check task.layout"
            )
        scores = outputs[1]
        if len(scores.shape) not in (2, 3):
            raise ModelError(
                f"ssd layout needs scores of shape (1, N) or (1, N, classes) as output #1, but {scores.name!r} "
                f"has {list(scores.shape)}"
            )
        if len(scores.shape) == 2 and len(outputs) < 3:
            raise ModelError("ssd layout with (1, N) scores needs a classes output #2; the model has none")

    # --- decoding ------------------------------------------------------------

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections:
        if self.layout == "yolo":
            return self._decode_yolo(np.asarray(outputs[self.output]))
        return self._decode_ssd(outputs)

    def _grids(self, rows: int) -> tuple[np.ndarray, np.ndarray]:
        if self._grid is None or self._grid[0].shape[0] != rows:
            assert self.strides and self.input_size
            h, w = self.input_size
            cells, strides = [], []
            for s in self.strides:
                yy, xx = np.mgrid[0:h // s, 0:w // s]
                cells.append(np.stack([xx.ravel(), yy.ravel()], axis=1))
                strides.append(np.full(((h // s) * (w // s), 1), s))
            self._grid = (np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32))
        return self._grid

    def _decode_yolo(self, raw: np.ndarray) -> Detections:
        rows = raw.reshape(-1, raw.shape[-1]).astype(np.float32)
        xy, wh = rows[:, 0:2], rows[:, 2:4]
        if self.strides:
            grid, stride = self._grids(rows.shape[0])
            xy = (xy + grid) * stride
            wh = np.exp(np.minimum(wh, 20.0)) * stride
        assert self.input_size is not None
        h, w = self.input_size
        scale = np.array([w, h], np.float32)
        xy, wh = xy / scale, wh / scale
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
        class_scores = rows[:, 4:5] * rows[:, 5:]
        classes = np.argmax(class_scores, axis=1)
        scores = class_scores[np.arange(len(classes)), classes]
        return select(boxes, scores, classes, self.score_threshold, self.nms_iou, self.max_detections)

    def _decode_ssd(self, outputs: Sequence[np.ndarray]) -> Detections:
        boxes = np.asarray(outputs[0], np.float32).reshape(-1, 4)
        if self.box_order == "yxyx":
            boxes = boxes[:, [1, 0, 3, 2]]
        scores = np.asarray(outputs[1], np.float32)
        if scores.ndim == 3:
            matrix = scores.reshape(-1, scores.shape[-1])
            classes = np.argmax(matrix, axis=1)
            best = matrix[np.arange(len(classes)), classes]
        else:
            best = scores.reshape(-1)
            classes = np.asarray(outputs[2]).reshape(-1).astype(np.int64)
        if len(outputs) > 3 and self.layout == "ssd" and scores.ndim == 2:
            count = int(np.asarray(outputs[3]).reshape(-1)[0])  # TF exports pad to a fixed N and give the count
            boxes, best, classes = boxes[:count], best[:count], classes[:count]
        return select(boxes, best, classes, self.score_threshold, self.nms_iou, self.max_detections)

    # --- comparison ------------------------------------------------------------

    def disagreement(self, a: Detections, b: Detections) -> float:
        return 1.0 - match_f1(a, b, self.iou)

    def describe(self, prediction: Detections) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for c in prediction.classes.tolist():
            name = self.labels[c] if self.labels and 0 <= c < len(self.labels) else str(c)
            counts[name] = counts.get(name, 0) + 1
        top = float(prediction.scores.max()) if len(prediction) else 0.0
        return {"count": len(prediction), "classes": counts, "score": top}
