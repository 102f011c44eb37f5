"""Segmentation: a per-pixel map; two predictions disagree by 1 - mask IoU.

Layouts: ``nchw`` (``(1, C, H, W)``, or ``(1, H, W)`` for one channel) and
``nhwc``. One channel is a foreground probability thresholded at
``mask_threshold`` (person segmenters); several channels are class scores
taken by argmax. ``db_text`` is the preset for DB text detectors (PP-OCR):
a ``(1, 1, H, W)`` text-probability map cut at DB's 0.3 (the box unclip of
DB's post-processing is not applied: masks are compared, not polygons).

Strict at load: the map's height and width are the input's divided by one
power of two (1..32, the same on both axes), and a one-channel map holds
probabilities on a real inference. A detector's ``(1, N, coords)`` tensor or
a channel axis read as width does not pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from edgeprobe.harness.errors import ConfigError, ModelError
from edgeprobe.harness.tasks.base import OutputSpec, SegmentationMask, misfit, value_range

LAYOUTS = ("nchw", "nhwc", "db_text")
#: DB's binarisation threshold (Liao et al., "Real-time Scene Text Detection with Differentiable Binarization", 2020)
DB_THRESHOLD = 0.3


def _proportional(input_hw: tuple[int, int], out_hw: tuple[int, int]) -> bool:
    """True when ``out_hw`` is ``input_hw`` divided by one power of two (up to 32), rounding either way."""
    for k in (1, 2, 4, 8, 16, 32):
        if all(o in (i // k, -(-i // k)) for i, o in zip(input_hw, out_hw, strict=True)):
            return True
    return False


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
    layouts = LAYOUTS
    accepts: ClassVar[dict[str, str]] = {
        "nchw": "(1, C, H, W) or (1, H, W) with H, W the input's size divided by 1, 2, 4, 8, 16 or 32",
        "nhwc": "(1, H, W, C) or (1, H, W) with H, W the input's size divided by 1, 2, 4, 8, 16 or 32",
        "db_text": "a (1, 1, H, W) text-probability map in [0, 1] at the input's size (or a power-of-two fraction)",
    }

    def __init__(self, layout: str | None = "nchw", output: int = 0, threshold: float = 0.5,
                 mask_threshold: float | None = None, labels: Sequence[str] | None = None,
                 input_size: tuple[int, int] | None = None):
        layout = layout or "nchw"
        if layout not in LAYOUTS:
            raise ConfigError(f"task.layout must be one of {', '.join(LAYOUTS)} for segmentation, got {layout!r}")
        if mask_threshold is None:
            mask_threshold = DB_THRESHOLD if layout == "db_text" else 0.5
        for key, value in (("threshold", threshold), ("mask_threshold", mask_threshold)):
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"task.{key} must be in [0, 1], got {value}")
        self.layout = layout
        self.output = output
        self.threshold = threshold
        self.mask_threshold = mask_threshold
        self.labels = list(labels) if labels else None
        self.input_size = input_size

    def _channels_first(self) -> bool:
        return self.layout in ("nchw", "db_text")

    def check_outputs(self, outputs: Sequence[OutputSpec]) -> None:
        full = f"segmentation/{self.layout}"
        if self.output >= len(outputs):
            raise ModelError(f"{full} reads output #{self.output} but the model has {len(outputs)} output(s); "
                             "set task.output")
        spec = outputs[self.output]
        shape = spec.shape
        expects = self.accepts[self.layout]
        if len(shape) not in (3, 4) or shape[0] not in (1, None):
            raise misfit(spec, full, expects)
        if any(d is None for d in shape[1:]):
            return  # dynamic: checked again on the shapes of a real inference (make_adapter's sample)
        dims = [int(d) for d in shape[1:] if d is not None]
        if len(dims) == 2:
            c, h, w = 1, dims[0], dims[1]
        elif self._channels_first():
            c, h, w = dims
        else:
            h, w, c = dims
        if self.layout == "db_text" and c != 1:
            raise misfit(spec, full, expects)
        if self.input_size is not None and not _proportional(self.input_size, (h, w)):
            ih, iw = self.input_size
            raise misfit(spec, full, f"{expects}, and the input is {ih}x{iw}")
        if self.labels and c > 1 and c != len(self.labels):
            raise ModelError(f"{len(self.labels)} labels given but output {spec.name!r} has {c} classes")

    def check_values(self, outputs: Sequence[np.ndarray]) -> None:
        raw = np.asarray(outputs[self.output])
        one_channel = raw.ndim == 3 or raw.shape[1 if self._channels_first() else -1] == 1
        if one_channel:
            value_range(raw, f"segmentation/{self.layout}", "a one-channel map", 0.0, 1.0, name=self.output)

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
