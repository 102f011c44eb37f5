"""The contract every task adapter follows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edgeprobe.harness.errors import ModelError


@dataclass(frozen=True)
class OutputSpec:
    """What a backend says about one output tensor (None = dynamic dimension)."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str


def shape_text(shape: Sequence[int | None]) -> str:
    """``(1, 84, 8400)``, with ``?`` for dynamic dimensions."""
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


class LayoutMisfit(ModelError):
    """The model's outputs do not have the shape or values a layout reads; ``make_adapter`` adds what fits."""


def misfit(spec: OutputSpec, layout: str, expects: str) -> LayoutMisfit:
    """One sentence: which output, its shape, and what the layout expects."""
    return LayoutMisfit(f"output {spec.name!r} has shape {shape_text(spec.shape)} but {layout} expects {expects}")


def value_range(values: np.ndarray, layout: str, what: str, lo: float, hi: float, name: int | str = 0) -> None:
    """Refuse a layout whose score columns of a real inference are not in [lo, hi]."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return
    vmin, vmax = float(np.nanmin(v)), float(np.nanmax(v))
    slack = 1e-3 * max(1.0, hi - lo)
    if vmin < lo - slack or vmax > hi + slack or not np.isfinite(v).all():
        raise LayoutMisfit(
            f"output #{name} gives {what} from {vmin:.4g} to {vmax:.4g} on a real inference, not in [{lo:g}, {hi:g}], "
            f"so {layout} would read other numbers as scores"
        )


class Prediction(Protocol):
    """Anything an adapter decodes; adapters compare their own predictions."""


class TaskAdapter(Protocol):
    name: str
    #: disagreement above this counts as unstable
    threshold: float

    def check_outputs(self, outputs: Sequence[OutputSpec]) -> None:
        """Raise ModelError with one clear sentence if the outputs do not fit."""

    def decode(self, outputs: Sequence[np.ndarray]) -> Any:
        """Raw output tensors of one frame -> prediction."""

    def disagreement(self, a: Any, b: Any) -> float:
        """How far apart two predictions are, in [0, 1]."""

    def describe(self, prediction: Any) -> dict[str, Any]:
        """A small JSON-able view of a prediction (label, score) for drift and reports."""


@dataclass(frozen=True)
class Detections:
    """Detected objects of one frame, in a layout every detector adapter decodes into.

    Boxes are ``(N, 4)`` float32 ``x1, y1, x2, y2`` normalised to [0, 1] of the
    frame the model saw, so predictions on perturbed or geometrically
    transformed frames compare without knowing the input size.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


@dataclass(frozen=True)
class SegmentationMask:
    """Per-pixel class indices (H, W) of one frame (binary masks use 0/1)."""

    labels: np.ndarray
