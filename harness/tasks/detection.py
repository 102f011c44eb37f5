"""Detection: boxes + scores + classes; two predictions disagree by 1 - IoU-matched F1.

Output layouts read (each checked strictly against the model's real outputs at load):

- ``ssd``: a boxes tensor ``(1, N, 4)`` plus either a scores tensor ``(1, N)``
  with a classes tensor ``(1, N)`` (TF Object Detection API post-processed
  export) or a class-score matrix ``(1, N, C)``. Box order ``yxyx`` (TF) or
  ``xyxy``, normalised to [0, 1].
- ``yolov5``: one tensor ``(1, N, 5 + C)`` of rows ``cx, cy, w, h, objectness,
  class scores`` in input pixels, N = 3 anchors x the grid cells of strides
  8/16/32 (YOLOv5/YOLOv7 exports).
- ``yolox``: the same rows with one prediction per grid cell, grid offsets and
  log sizes left to the caller (``strides`` default ``[8, 16, 32]``).
- ``yolo``: the ``(1, N, 5 + C)`` rows with no grid count enforced (grid
  decode only when ``strides`` is given): kept for existing configs.
- ``yolov8``: one tensor ``(1, 4 + C, N)`` (YOLOv8 and YOLO11): rows ``cx, cy,
  w, h`` in input pixels then C class scores with no objectness, one column per
  grid cell of strides 8/16/32.
- ``yolov8_e2e``: NMS-free end-to-end exports ``(1, N, 6)`` of ``x1, y1, x2,
  y2, score, class`` in input pixels.

Scores must be probabilities in [0, 1] in the model's real output (one
inference at load): a layout that reads box regressors as scores is refused
rather than yielding "score 32795".

:func:`nms` and :func:`match_f1` are plain functions so other detectors'
decoders (anchor-based TFLite models) reuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from edgeprobe.harness.errors import ConfigError, ModelError
from edgeprobe.harness.tasks.base import Detections, LayoutMisfit, OutputSpec, misfit, value_range

LAYOUTS = ("yolov8", "yolov8_e2e", "yolov5", "yolox", "yolo", "ssd")
#: strides of the YOLO families' three heads
YOLO_STRIDES = (8, 16, 32)


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


def grid_cells(input_size: tuple[int, int], strides: Sequence[int]) -> int:
    """Predictions a one-per-cell YOLO head gives at ``input_size`` (h, w)."""
    h, w = input_size
    return sum((h // s) * (w // s) for s in strides)


class DetectionAdapter:
    """Reads the SSD and YOLO-family layouts into :class:`Detections`."""

    name = "detection"
    #: what `edgeprobe tasks` lists and `init` tries; ``yolo`` stays accepted for existing configs
    layouts = tuple(x for x in LAYOUTS if x != "yolo")
    layout_aliases = ("yolo",)
    accepts: ClassVar[dict[str, str]] = {
        "yolov8": "one (1, 4+C, N) output, N = grid cells of strides 8/16/32, class scores in [0, 1]",
        "yolov8_e2e": "one (1, N, 6) output of x1, y1, x2, y2, score in [0, 1], class index",
        "yolov5": "one (1, N, 5+C) output, N = 3 x grid cells of strides 8/16/32, objectness in [0, 1]",
        "yolox": "one (1, N, 5+C) output, N = grid cells of strides 8/16/32, objectness in [0, 1]",
        "yolo": "one (1, N, 5+C) output with objectness and class scores in [0, 1]",
        "ssd": "boxes (1, N, 4) then scores (1, N) + classes (1, N), or scores (1, N, C), in [0, 1]",
    }

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
        if strides is None and layout in ("yolox", "yolov5", "yolov8"):
            strides = YOLO_STRIDES
        self.strides = list(strides) if strides else None
        self.input_size = input_size
        self.labels = list(labels) if labels else None
        self.max_detections = max_detections
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def full_name(self) -> str:
        return f"detection/{self.layout}"

    # --- load-time check ---------------------------------------------------

    def check_outputs(self, outputs: Sequence[OutputSpec]) -> None:
        if self.layout == "ssd":
            self._check_ssd(outputs)
            return
        if self.output >= len(outputs):
            raise ModelError(f"{self.full_name} reads output #{self.output} but the model has "
                             f"{len(outputs)} output(s); set task.output")
        if self.input_size is None:
            raise ModelError(f"{self.full_name} needs the model's input size to normalise boxes; the backend gave none")
        spec = outputs[self.output]
        shape = spec.shape
        expects = self.accepts[self.layout]
        if len(shape) != 3 or shape[0] not in (1, None):
            raise misfit(spec, self.full_name, expects)
        if any(d is None for d in shape[1:]):
            return  # dynamic: checked again on the shapes of a real inference (make_adapter's sample)
        rows, width = (shape[2], shape[1]) if self.layout == "yolov8" else (shape[1], shape[2])
        assert isinstance(rows, int) and isinstance(width, int)
        if self.layout == "yolov8_e2e":
            if width != 6:
                raise misfit(spec, self.full_name, expects)
            return
        min_width = 5 if self.layout == "yolov8" else 6
        if width < min_width or rows <= width:
            raise misfit(spec, self.full_name, expects)
        if self.strides:
            cells = grid_cells(self.input_size, self.strides)
            per_cell = 3 if self.layout == "yolov5" else 1
            if rows != per_cell * cells:
                h, w = self.input_size
                raise misfit(spec, self.full_name, f"{expects}: {per_cell * cells} predictions at input {h}x{w} "
                             f"with strides {self.strides}, not {rows}")

    def _check_ssd(self, outputs: Sequence[OutputSpec]) -> None:
        expects = self.accepts["ssd"]
        if len(outputs) < 2:
            raise misfit(outputs[0], "detection/ssd", f"{expects} (the model has {len(outputs)} output)")
        boxes, scores = outputs[0], outputs[1]
        if len(boxes.shape) != 3 or boxes.shape[2] != 4:
            raise misfit(boxes, "detection/ssd", expects)
        if len(scores.shape) not in (2, 3) or scores.shape[1] != boxes.shape[1] or (
                len(scores.shape) == 3 and scores.shape[2] in (1, None)):
            raise misfit(scores, "detection/ssd", expects)
        if len(scores.shape) == 2 and (len(outputs) < 3 or tuple(outputs[2].shape[:2]) != tuple(scores.shape)):
            raise misfit(scores, "detection/ssd", f"{expects}: (1, N) scores need a (1, N) classes output #2")

    def check_values(self, outputs: Sequence[np.ndarray]) -> None:
        """Scores read from one real inference must be probabilities, or the layout reads the wrong columns."""
        if self.layout == "ssd":
            value_range(outputs[1], "detection/ssd", "scores", 0.0, 1.0, name=1)
            return
        raw = np.asarray(outputs[self.output])
        if self.layout == "yolov8":
            value_range(raw[0, 4:, :], self.full_name, "class scores (rows 4+)", 0.0, 1.0, name=self.output)
        elif self.layout == "yolov8_e2e":
            value_range(raw[0, :, 4], self.full_name, "scores (column 4)", 0.0, 1.0, name=self.output)
            cls = raw[0, :, 5]
            if cls.size and (np.any(cls < 0) or not np.allclose(cls, np.round(cls))):
                raise LayoutMisfit(f"output #{self.output} gives column 5 from {cls.min():.4g} to {cls.max():.4g} on a "
                                   f"real inference, not class indices, so {self.full_name} does not fit")
        else:
            value_range(raw[0, :, 4:], self.full_name, "objectness and class scores (columns 4+)", 0.0, 1.0,
                        name=self.output)

    # --- decoding ------------------------------------------------------------

    def decode(self, outputs: Sequence[np.ndarray]) -> Detections:
        if self.layout == "ssd":
            return self._decode_ssd(outputs)
        raw = np.asarray(outputs[self.output])
        if self.layout == "yolov8":
            return self._decode_yolov8(raw)
        if self.layout == "yolov8_e2e":
            return self._decode_e2e(raw)
        return self._decode_yolo(raw)

    def _scale(self) -> np.ndarray:
        assert self.input_size is not None
        h, w = self.input_size
        return np.array([w, h], np.float32)

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
        if self.strides and self.layout in ("yolo", "yolox"):  # YOLOX leaves the grid decode to the caller
            grid, stride = self._grids(rows.shape[0])
            xy = (xy + grid) * stride
            wh = np.exp(np.minimum(wh, 20.0)) * stride
        scale = self._scale()
        xy, wh = xy / scale, wh / scale
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
        class_scores = rows[:, 4:5] * rows[:, 5:]
        classes = np.argmax(class_scores, axis=1)
        scores = class_scores[np.arange(len(classes)), classes]
        return select(boxes, scores, classes, self.score_threshold, self.nms_iou, self.max_detections)

    def _decode_yolov8(self, raw: np.ndarray) -> Detections:
        rows = raw[0].T.astype(np.float32)  # (N, 4 + C)
        scale = self._scale()
        xy, wh = rows[:, 0:2] / scale, rows[:, 2:4] / scale
        boxes = np.concatenate([xy - wh / 2, xy + wh / 2], axis=1)
        class_scores = rows[:, 4:]
        classes = np.argmax(class_scores, axis=1)
        scores = class_scores[np.arange(len(classes)), classes]
        return select(boxes, scores, classes, self.score_threshold, self.nms_iou, self.max_detections)

    def _decode_e2e(self, raw: np.ndarray) -> Detections:
        rows = raw[0].astype(np.float32)
        scale = np.tile(self._scale(), 2)
        ok = rows[:, 4] >= self.score_threshold
        rows = rows[ok][: self.max_detections]
        return Detections(np.clip(rows[:, :4] / scale, 0.0, 1.0).astype(np.float32), rows[:, 4].astype(np.float32),
                          rows[:, 5].astype(np.int64))

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
