"""Segmentation: a per-pixel map; two predictions disagree by 1 - mask IoU.

Layouts: ``nchw`` (``(1, C, H, W)``, or ``(1, H, W)`` for one channel) and
``nhwc``. One channel is a foreground probability thresholded at
``mask_threshold`` (text detectors such as PP-OCR's DB head, person
segmenters); several channels are class scores taken by argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelError
from .base import OutputSpec, SegmentationMask

LAYOUTS = ("nchw", "nhwc")


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Mean IoU over the classes present in either label map, background (0) excluded.

    Two maps with no foreground at all agree (1.0): an empty scene that stays
    empty is stable.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in shape: {a.shape} vs {b.shape}")
    classes = np.union1d(np.unique(a), np.unique(b))
    classes = classes[classes != 0]
    if classes.size == 0:
        return 1.0
    ious = []
    for c in classes.tolist():
        ma, mb = a == c, b == c
        union = np.count_nonzero(ma | mb)
        ious.append(np.count_nonzero(ma & mb) / union)
    return float(np.mean(ious))


class SegmentationAdapter:
    name = "segmentation"

    def __init__(self, layout: str | None = "nchw", output: int = 0, threshold: float = 0.5,
                 mask_threshold: float = 0.5, labels: Sequence[str] | None = None):
        layout = layout or "nchw"
        if layout not in LAYOUTS:
            raise ConfigError(f"task.layout must be one of {', '.join(LAYOUTS)} for segmentation, got {layout!r}")
        for key, value in (("threshold", threshold), ("mask_threshold", mask_threshold)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"task.{key} must be in [0, 1], got {value}")
        self.layout = layout
        self.output = output
        self.threshold = threshold
        self.mask_threshold = mask_threshold
        self.labels = list(labels) if labels else None

    def check_outputs(self, outputs: Sequence[OutputSpec]) -> None:
        if self.output >= len(outputs):
            raise ModelError(f"segmentation reads output #{self.output} but the model has {len(outputs)} output(s)")
        spec = outputs[self.output]
        if len(spec.shape) not in (3, 4):
            raise ModelError(
                f"segmentation needs a (1, C, H, W), (1, H, W, C) or (1, H, W) output, but {spec.name!r} has shape "
                f"{list(spec.shape)}; pick another task (classification, detection, embedding)"
            )

    def decode(self, outputs: Sequence[np.ndarray]) -> SegmentationMask:
        raw = np.asarray(outputs[self.output])
        channels_first = raw[0] if self.layout == "nchw" else np.moveaxis(raw[0], -1, 0)
        x = raw[0][None] if raw.ndim == 3 else channels_first
        if x.shape[0] == 1:
            return SegmentationMask((x[0] > self.mask_threshold).astype(np.uint8))
        return SegmentationMask(np.argmax(x, axis=0).astype(np.int32))

    def disagreement(self, a: SegmentationMask, b: SegmentationMask) -> float:
        return 1.0 - mask_iou(a.labels, b.labels)

    def describe(self, prediction: SegmentationMask) -> dict[str, Any]:
        fg = float(np.count_nonzero(prediction.labels)) / max(1, prediction.labels.size)
        return {"foreground": fg, "classes": len(np.unique(prediction.labels))}
