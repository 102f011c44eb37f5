"""A user's custom head and perturbation, registered through entry points only (no edgeprobe code changed).

``score_margin``: a classifier read as the margin between its two best scores
(a custom confidence head); two predictions disagree by how far the margin
moved. ``invert``: the photographic negative, blended in by severity.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from edgeprobe.harness.perturbations import Perturbation
from edgeprobe.harness.tasks.base import misfit


class ScoreMargin:
    name = "score_margin"
    layouts = (None,)
    accepts: ClassVar[dict[None, str]] = {None: "one (1, C) score vector, C >= 2"}

    def __init__(self, output: int = 0, threshold: float = 0.2, **_: Any) -> None:
        self.output = output
        self.threshold = threshold

    def check_outputs(self, outputs: Any) -> None:
        spec = outputs[self.output]
        if len(spec.shape) != 2 or not isinstance(spec.shape[1], int) or spec.shape[1] < 2:
            raise misfit(spec, "score_margin", self.accepts[None])

    def decode(self, outputs: Any) -> float:
        s = np.sort(np.asarray(outputs[self.output], np.float64).ravel())
        return float(s[-1] - s[-2])

    def disagreement(self, a: float, b: float) -> float:
        return min(1.0, abs(a - b))

    def describe(self, prediction: float) -> dict[str, Any]:
        return {"score": prediction}


def _invert(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    (alpha,) = params
    out = image.astype(np.float32) * (1 - alpha) + (255 - image.astype(np.float32)) * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


INVERT = Perturbation(name="invert", family="colour", fn=_invert,
                      table=((0.1,), (0.2,), (0.3,), (0.4,), (0.5,)), identity=(0.0,),
                      description="Photographic negative blended in.", source="edgeprobe-plugin-demo",
                      param_names=("alpha",))
