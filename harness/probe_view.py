"""The resolution robustness probes work at: the frame shrunk to just cover the model's input.

ImageNet-C's severity tables are in pixels of ~224 px images (a blur sigma,
a JPEG quality over 8x8 blocks, a pixelation factor). Applied to a full
768x576 or 1920x1080 frame that the model then shrinks 3-8x, the same
severity is a far milder corruption than the paper's, and noise in
particular averages away in the downscale: the model would look robust for
the wrong reason. So probes perturb the frame resized (aspect kept, area
interpolation, never enlarged) to the smallest size that still covers the
model's input, and compare against the clean prediction on that same view.
It is also 5-40x fewer pixels to perturb, which is CPU and memory the
deployed model keeps. ``native`` keeps the full frame, for models that see
it whole or for comparing with figures taken that way.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

Resolution = Literal["model", "native"]
RESOLUTIONS: tuple[str, ...] = ("model", "native")


def view_size(height: int, width: int, input_hw: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the view: aspect kept, at least the model's input on both sides, never larger than the frame."""
    th, tw = input_hw
    scale = max(th / height, tw / width)
    if scale >= 1.0:
        return height, width
    return max(th, min(height, round(height * scale))), max(tw, min(width, round(width * scale)))


def probe_view(image: np.ndarray, input_hw: tuple[int, int] | None, resolution: Resolution = "model") -> np.ndarray:
    """The frame probes perturb (the same array when no shrinking is due)."""
    if resolution == "native" or input_hw is None or min(input_hw) <= 0:
        return image
    h, w = image.shape[:2]
    vh, vw = view_size(h, w, input_hw)
    if (vh, vw) == (h, w):
        return image
    out = cv2.resize(image, (vw, vh), interpolation=cv2.INTER_AREA)
    return np.asarray(out).reshape((vh, vw, *image.shape[2:]))
