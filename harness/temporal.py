"""Temporal stability on consecutive live frames: how often the answer flips when the picture barely moved.

ImageNet-P's flip probability counts how often a model's top-1 changes
between consecutive frames of a slowly perturbed sequence (D. Hendrycks and
T. Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions
and Perturbations", ICLR 2019). On a live camera the sequence is the video
itself, and consecutive frames sometimes differ for real (a person walks in,
the picture cuts): a frame-difference gate counts a pair only when the mean
absolute grey difference of the two thumbnails is at most ``max_frame_diff``,
so scene changes are not blamed on the model. Byte-identical pairs (a frozen
camera) are left out too: a deterministic model cannot flip on them, and a
frozen stream would otherwise make any model look perfectly stable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeprobe.harness.stability import wilson_interval

#: default gate, grey levels on the 0..255 scale; consecutive frames of OpenCV's 10 fps pedestrian video differ
#: by 1.4 (median) and 2.4 (95th percentile), a cut or a light switched on by tens
MAX_FRAME_DIFF = 3.0


@dataclass
class FlipCounter:
    disagreement: Callable[[Any, Any], float]
    threshold: float
    max_frame_diff: float = MAX_FRAME_DIFF
    pairs: int = 0  # consecutive pairs seen
    counted: int = 0  # pairs that passed the gate
    flips: int = 0
    gated_out: int = 0  # the picture changed too much
    identical: int = 0  # byte-identical thumbnails
    _previous: Any = None

    def add(self, prediction: Any, motion: float | None, previous: Any = None) -> bool | None:
        """Feed the next frame's prediction and its difference to the previous frame.

        ``previous`` is the prediction on the frame just before, when the caller feeds only sampled frames
        (the agent's monitor); by default it is the prediction last fed here.
        Returns whether the pair flipped, or None when the pair was not counted.
        """
        if previous is None:
            previous = self._previous
        self._previous = prediction
        if previous is None or motion is None:
            return None
        self.pairs += 1
        if motion == 0.0:
            self.identical += 1
            return None
        if motion > self.max_frame_diff:
            self.gated_out += 1
            return None
        self.counted += 1
        flipped = self.disagreement(previous, prediction) > self.threshold
        self.flips += int(flipped)
        return flipped

    def summary(self) -> dict[str, Any]:
        lo, hi = wilson_interval(self.flips, self.counted)
        return {"pairs": self.pairs, "counted": self.counted, "flips": self.flips,
                "flip_rate": self.flips / self.counted if self.counted else 0.0, "ci_low": lo, "ci_high": hi,
                "gated_out": self.gated_out, "identical": self.identical, "max_frame_diff": self.max_frame_diff}

    def clear(self) -> None:
        """Start a new window; the last prediction stays so the pair across the boundary still counts."""
        self.pairs = self.counted = self.flips = self.gated_out = self.identical = 0
