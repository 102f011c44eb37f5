"""Keypoints: landmark regressors (MediaPipe hand and pose landmark models).

A landmark model answers "where is each joint" plus "is there a hand/person
at all" (and, for hands, "which hand"). Two predictions disagree by the share
of keypoints that moved further than ``tolerance`` times the diagonal of the
reference prediction's keypoint box (PCK, the usual landmark accuracy
measure, with the box as the normaliser so a small hand and a large one are
held to the same standard); a presence that flips (one says there is a hand,
the other not) or a handedness that flips is full disagreement (1.0). The
distance is taken on x and y only: MediaPipe's z is a relative depth on
another scale.

Layouts (output order as the TFLite files in mediapipe==0.10.21 give them):

- ``mediapipe_hand`` (hand_landmark_full/lite.tflite): #0 (1, 63) = 21 x (x, y, z)
  in input pixels, #1 (1, 1) hand presence, #2 (1, 1) handedness score, #3 (1, 63)
  world landmarks (not read). The 21 joints are the same on either hand, so a
  mirror image keeps their order and swaps the handedness.
- ``mediapipe_pose`` (pose_landmark_full.tflite): #0 (1, 195) = 39 x (x, y, z,
  visibility, presence) in input pixels, #1 (1, 1) person presence, then the
  segmentation, heatmap and world outputs (not read). The 33 body landmarks
  are compared (the 6 after them are the graph's region-of-interest helpers);
  a mirror image swaps left and right joints (:data:`POSE_MIRROR`).

Strict at load: the shapes above, and on a real inference presence and
handedness scores in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.tasks.base import OutputSpec, misfit, value_range


@dataclass(frozen=True)
class Keypoints:
    """One frame's landmarks: ``points`` (K, 2) x, y normalised to [0, 1] of the frame the model saw."""

    points: np.ndarray
    #: presence score and whether it clears the adapter's ``score_threshold``
    score: float
    present: bool
    #: handedness score of a hand model, None without one. MediaPipe's is the probability of its label 0,
    #: "Left", for a mirrored (selfie) picture: the unmirrored left hand of hand_upright.jpg scores 0.04, its
    #: mirror image 0.94. Only which side of 0.5 it falls on is compared.
    side: float | None = None

    def __len__(self) -> int:
        return 1 if self.present else 0


@dataclass(frozen=True)
class KeypointLayout:
    """What one landmark model family outputs."""

    points_output: int
    rows: int
    #: values per keypoint in the points output (x, y first)
    stride: int
    #: keypoints compared (the first ``compared`` rows)
    compared: int
    presence_output: int
    side_output: int | None
    #: input size the coordinates are in pixels of, when the model does not say (H, W)
    native: tuple[int, int]
    #: keypoint index each one becomes in a mirror image (None: mirroring keeps the order)
    mirror: tuple[int, ...] | None
    #: (output index, expected shape) of every output the layout requires
    shapes: tuple[tuple[int, tuple[int, ...]], ...]
    accepts: str


def _pose_mirror() -> tuple[int, ...]:
    """BlazePose's 33 landmarks: 0 nose, then left/right pairs; a mirror image swaps each pair."""
    pairs = [(1, 4), (2, 5), (3, 6), (7, 8), (9, 10)] + [(i, i + 1) for i in range(11, 33, 2)]
    out = list(range(33))
    for left, right in pairs:
        out[left], out[right] = right, left
    return tuple(out)


POSE_MIRROR = _pose_mirror()

LAYOUTS: dict[str, KeypointLayout] = {
    "mediapipe_hand": KeypointLayout(
        0, 21, 3, 21, 1, 2, (224, 224), None, ((0, (1, 63)), (1, (1, 1)), (2, (1, 1))),
        "landmarks (1, 63) = 21 x (x, y, z) in input pixels, hand presence (1, 1), handedness (1, 1) as outputs "
        "#0-#2 (MediaPipe hand landmark)"),
    "mediapipe_pose": KeypointLayout(
        0, 39, 5, 33, 1, None, (256, 256), POSE_MIRROR, ((0, (1, 195)), (1, (1, 1))),
        "landmarks (1, 195) = 39 x (x, y, z, visibility, presence) in input pixels and person presence (1, 1) "
        "as outputs #0 and #1 (MediaPipe pose landmark)"),
}


def pck_disagreement(a: np.ndarray, b: np.ndarray, tolerance: float) -> float:
    """Share of keypoints of ``b`` further from ``a``'s than ``tolerance`` x the diagonal of ``a``'s keypoint box.

    A degenerate box (all points on one spot) falls back to the frame's
    diagonal (sqrt 2 in normalised units), so the measure is always defined.
    """
    a = np.asarray(a, np.float64).reshape(-1, 2)
    b = np.asarray(b, np.float64).reshape(-1, 2)
    if a.shape != b.shape:
        raise ValueError(f"keypoint sets differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    extent = a.max(axis=0) - a.min(axis=0)
    diag = float(np.hypot(*extent))
    if not np.isfinite(diag) or diag < 1e-6:
        diag = float(np.sqrt(2.0))
    dist = np.hypot(*(a - b).T)
    moved = ~(dist <= tolerance * diag)  # a NaN distance counts as moved
    return float(np.mean(moved))


class KeypointsAdapter:
    """Landmark regressors: PCK-style disagreement, presence and handedness flips count in full."""

    name = "keypoints"
    layouts = tuple(LAYOUTS)
    accepts: ClassVar[dict[str, str]] = {k: v.accepts for k, v in LAYOUTS.items()}

    def __init__(self, layout: str | None = None, threshold: float = 0.5, tolerance: float | None = None,
                 score_threshold: float | None = None, input_size: tuple[int, int] | None = None,
                 labels: Sequence[str] | None = None, output: int = 0):
        # ``output`` comes with every task config; the layout fixes which outputs are read.
        if layout is None:
            layout = "mediapipe_hand"
        if layout not in LAYOUTS:
            raise ConfigError(f"task.layout for keypoints must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        tolerance = 0.05 if tolerance is None else float(tolerance)
        if not 0.0 < tolerance <= 1.0:
            raise ConfigError(f"task.tolerance must be in (0, 1] (a share of the keypoint box diagonal), "
                              f"got {tolerance}")
        self.layout_name = layout
        self.layout = LAYOUTS[layout]
        self.threshold = threshold
        self.tolerance = tolerance
        self.score_threshold = 0.5 if score_threshold is None else float(score_threshold)
        self.size = tuple(input_size) if input_size else self.layout.native
        self.labels = list(labels) if labels else None

    @property
    def mirror(self) -> tuple[int, ...] | None:
        """How a mirror image reorders the compared keypoints; None keeps the order (harness/metamorphic.py).

        An adapter returning :class:`Keypoints` without this attribute (a
        plugin's) has no defined mirror relation, and hflip/vflip are refused.
        """
        return self.layout.mirror[: self.layout.compared] if self.layout.mirror else None

    def check_outputs(self, outputs: Sequence[OutputSpec]) -> None:
        full = f"keypoints/{self.layout_name}"
        need = max(i for i, _ in self.layout.shapes) + 1
        if len(outputs) < need:
            raise misfit(outputs[0], full, f"{self.layout.accepts} (the model has {len(outputs)} output(s))")
        for index, shape in self.layout.shapes:
            if tuple(outputs[index].shape) != shape:
                raise misfit(outputs[index], full, self.layout.accepts)

    def check_values(self, sample: Sequence[np.ndarray]) -> None:
        full = f"keypoints/{self.layout_name}"
        value_range(sample[self.layout.presence_output], full, "presence scores", 0.0, 1.0,
                    self.layout.presence_output)
        if self.layout.side_output is not None:
            value_range(sample[self.layout.side_output], full, "handedness scores", 0.0, 1.0,
                        self.layout.side_output)

    def decode(self, outputs: Sequence[np.ndarray]) -> Keypoints:
        lay = self.layout
        raw = np.asarray(outputs[lay.points_output], np.float32).reshape(lay.rows, lay.stride)[: lay.compared]
        h, w = self.size
        points = (raw[:, :2] / np.asarray([w, h], np.float32)).astype(np.float32)
        score = float(np.asarray(outputs[lay.presence_output]).ravel()[0])
        side = float(np.asarray(outputs[lay.side_output]).ravel()[0]) if lay.side_output is not None else None
        return Keypoints(points, score, score >= self.score_threshold, side)

    def disagreement(self, a: Keypoints, b: Keypoints) -> float:
        if a.present != b.present:
            return 1.0
        if not a.present:
            return 0.0  # nothing there, and still nothing: stable
        if a.side is not None and b.side is not None and (a.side > 0.5) != (b.side > 0.5):
            return 1.0
        return pck_disagreement(a.points, b.points, self.tolerance)

    def describe(self, prediction: Keypoints) -> dict[str, Any]:
        out: dict[str, Any] = {"count": len(prediction), "score": prediction.score}
        if prediction.side is not None:
            out["handedness"] = prediction.side
        if prediction.present:
            lo, hi = prediction.points.min(axis=0), prediction.points.max(axis=0)
            out["box"] = [float(v) for v in (*lo, *hi)]
        return out

