"""Worst-frame exemplars from live probing: small JPEGs a user can drill down to.

The frames where the model broke most easily (highest disagreement, then the
lowest severity) are kept as one small JPEG each, the clean frame and the
perturbed one side by side, with the perturbation, severity and seed that
replay the exact pixels. They travel inside the ``robustness`` message as
base64 rather than as files next to the spool: the collector is usually on
another machine and a path on the board would dangle there, and the bytes
stay small and bounded (two 96 px wide halves at JPEG quality 70 is 3-5 KB;
the heap holds the run's ``keep`` worst, each is sent once, in the window in
which it entered, so a window carries at most ``keep`` and a later, worse
frame that displaces an earlier one is sent too), so the spool and MQTT
carry them like any other figure.
"""

from __future__ import annotations

import base64
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

HALF_WIDTH = 96
QUALITY = 70


def side_by_side_jpeg(clean: np.ndarray, perturbed: np.ndarray, half_width: int = HALF_WIDTH,
                      quality: int = QUALITY) -> tuple[bytes, int, int]:
    """One JPEG with the clean frame on the left and the perturbed one on the right; (bytes, width, height)."""
    h, w = clean.shape[:2]
    size = (half_width, max(1, round(h * half_width / w)))
    halves = [cv2.resize(img, size, interpolation=cv2.INTER_AREA) for img in (clean, perturbed)]
    if halves[0].ndim != halves[1].ndim:
        halves = [x if x.ndim == 3 else cv2.cvtColor(x, cv2.COLOR_GRAY2BGR) for x in halves]
    both = np.hstack(halves)
    ok, buf = cv2.imencode(".jpg", both, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("frame could not be encoded as JPEG")
    return buf.tobytes(), int(both.shape[1]), int(both.shape[0])


@dataclass(order=True)
class _Entry:
    key: tuple[float, float, int]  # (disagreement, -severity, -frame): larger is worse
    item: dict[str, Any] = field(compare=False)


class Exemplars:
    """A bounded heap of the run's worst probed frames; new entries are handed out once."""

    def __init__(self, keep: int = 4):
        self.keep = keep
        self.heap: list[_Entry] = []
        self.fresh: list[dict[str, Any]] = []

    def qualifies(self, disagreement: float, severity: float, frame_index: int) -> bool:
        if self.keep <= 0 or disagreement <= 0:
            return False
        key = (disagreement, -severity, -frame_index)
        return len(self.heap) < self.keep or key > self.heap[0].key

    def offer(self, frame_index: int, image: np.ndarray, perturbation: str, severity: float, seed: int,
              disagreement: float, perturb: Callable[[np.ndarray, float, int], np.ndarray],
              extra: dict[str, Any] | None = None) -> bool:
        """Keep this probe if it is among the worst so far; the perturbed pixels are rebuilt from the seed."""
        if not self.qualifies(disagreement, severity, frame_index):
            return False
        jpeg, w, h = side_by_side_jpeg(image, perturb(image, severity, seed))
        item = {"frame_index": frame_index, "perturbation": perturbation, "severity": float(severity),
                "seed": int(seed), "disagreement": float(disagreement), "width": w, "height": h,
                "jpeg_base64": base64.b64encode(jpeg).decode("ascii"), **(extra or {})}
        entry = _Entry((disagreement, -severity, -frame_index), item)
        if len(self.heap) < self.keep:
            heapq.heappush(self.heap, entry)
        else:
            dropped = heapq.heapreplace(self.heap, entry)
            self.fresh = [x for x in self.fresh if x is not dropped.item]
        self.fresh.append(item)
        return True

    def take_fresh(self) -> list[dict[str, Any]]:
        """Exemplars that entered since the last call (each is sent once)."""
        out, self.fresh = self.fresh, []
        return out

    def worst(self) -> list[dict[str, Any]]:
        return [e.item for e in sorted(self.heap, reverse=True)]
