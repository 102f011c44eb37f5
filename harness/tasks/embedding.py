"""Embedding / generic tensor: two predictions disagree by their cosine distance.

Cosine distance lies in [0, 2]; it is clipped to [0, 1] because a
disagreement is a share, and vectors at right angles already share nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from edgeprobe.harness.errors import ConfigError, ModelError
from edgeprobe.harness.tasks.base import OutputSpec, misfit


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cos(a, b); 0 for two zero vectors, 1 when only one of them is zero."""
    x = np.asarray(a, np.float64).ravel()
    y = np.asarray(b, np.float64).ravel()
    nx, ny = float(np.linalg.norm(x)), float(np.linalg.norm(y))
    if nx == 0.0 or ny == 0.0:
        return 0.0 if nx == ny else 1.0
    return float(1.0 - np.dot(x, y) / (nx * ny))


class EmbeddingAdapter:
    """A feature vector: one (1, D) or (D,) output."""

    name = "embedding"
    layouts = (None,)
    accepts: ClassVar[dict[str | None, str]] = {None: "one (1, D) or (D,) feature vector"}

    def __init__(self, output: int = 0, threshold: float = 0.1, labels: Sequence[str] | None = None,
                 layout: str | None = None):
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"task.threshold must be in [0, 1], got {threshold}")
        self.output = output
        self.threshold = threshold

    def check_outputs(self, outputs: Sequence[OutputSpec]) -> None:
        if self.output >= len(outputs):
            raise ModelError(f"embedding reads output #{self.output} but the model has {len(outputs)} output(s)")
        spec = outputs[self.output]
        if len(spec.shape) > 2 or len([d for d in spec.shape if d != 1]) != 1:
            raise misfit(spec, "embedding", self.accepts[None])

    def decode(self, outputs: Sequence[np.ndarray]) -> np.ndarray:
        return np.asarray(outputs[self.output], np.float32).ravel().copy()

    def disagreement(self, a: np.ndarray, b: np.ndarray) -> float:
        return min(1.0, max(0.0, cosine_distance(a, b)))

    def describe(self, prediction: np.ndarray) -> dict[str, Any]:
        return {"norm": float(np.linalg.norm(prediction)), "dim": int(prediction.size)}


class TensorAdapter(EmbeddingAdapter):
    """Any output compared raw by cosine distance: the fallback for a model no task adapter reads.

    Task-blind on purpose: a detector's boxes are not matched, only its raw
    tensor compared, so verdicts are coarser than a real adapter's. It fits
    every output, so it is never offered by `init` while a real layout fits.
    """

    name = "tensor"
    accepts: ClassVar[dict[str | None, str]] = {None: "any output"}

    def __init__(self, output: int = 0, threshold: float = 0.05, labels: Sequence[str] | None = None,
                 layout: str | None = None):
        super().__init__(output=output, threshold=threshold, labels=labels, layout=layout)

    def check_outputs(self, outputs: Sequence[OutputSpec]) -> None:
        if self.output >= len(outputs):
            raise ModelError(f"tensor reads output #{self.output} but the model has {len(outputs)} output(s)")
