"""Classification: a probability vector per frame.

Disagreement, chosen by ``metric``: ``top1`` (the label flipped: 0 or 1),
``topk`` (1 - overlap of the two top-k sets, order ignored) or ``prob``
(total variation distance between the probability vectors, in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgeprobe.harness.errors import ConfigError, ModelError
from edgeprobe.harness.tasks.base import OutputSpec, misfit


@dataclass(frozen=True)
class ClassPrediction:
    probs: np.ndarray

    @property
    def top1(self) -> int:
        return int(np.argmax(self.probs))


def to_probabilities(scores: np.ndarray) -> np.ndarray:
    """Softmax unless the scores already are a probability vector.

    Models export either logits or softmax outputs; comparing top-1 does not
    care, but probability distances and drift histograms do.
    """
    x = np.asarray(scores, dtype=np.float64).ravel()
    if x.min() >= 0.0 and abs(x.sum() - 1.0) < 1e-3:
        return x
    e = np.exp(x - x.max())
    return e / e.sum()


METRICS = ("top1", "topk", "prob")


def topk_overlap(a: np.ndarray, b: np.ndarray, k: int) -> float:
    """Share of the top-k classes two probability vectors have in common."""
    k = max(1, min(k, len(a)))
    top_a = set(np.argsort(-a, kind="stable")[:k].tolist())
    top_b = set(np.argsort(-b, kind="stable")[:k].tolist())
    return len(top_a & top_b) / k


def total_variation(a: np.ndarray, b: np.ndarray) -> float:
    return float(0.5 * np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).sum())


class ClassificationAdapter:
    """Reads one (1, C) or (C,) score tensor."""

    name = "classification"
    layouts = (None,)
    accepts: ClassVar[dict[str | None, str]] = {None: "one (1, C) or (C,) score vector, C >= 2"}

    def __init__(self, output: int = 0, labels: Sequence[str] | None = None, threshold: float = 0.5,
                 metric: str | None = None, top_k: int | None = None, layout: str | None = None):
        metric = metric or ("topk" if top_k else "top1")
        if metric not in METRICS:
            raise ConfigError(f"task.metric must be one of {', '.join(METRICS)} for classification, got {metric!r}")
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"task.threshold must be in [0, 1], got {threshold}")
        if top_k is not None and top_k < 1:
            raise ConfigError(f"task.top_k must be at least 1, got {top_k}")
        self.output = output
        self.labels = list(labels) if labels else None
        self.threshold = threshold
        self.metric = metric
        self.top_k = top_k or 5

    def check_outputs(self, outputs: Sequence[OutputSpec]) -> None:
        if self.output >= len(outputs):
            raise ModelError(
                f"classification reads output #{self.output} but the model has {len(outputs)} output(s)"
            )
        spec = outputs[self.output]
        dims = [d for d in spec.shape if d != 1]
        if len(dims) != 1 or not isinstance(dims[0], int) or dims[0] < 2 or len(spec.shape) > 2:
            raise misfit(spec, "classification", self.accepts[None])
        n_classes = spec.shape[-1] if spec.shape else None
        if self.labels and isinstance(n_classes, int) and n_classes != len(self.labels):
            raise ModelError(
                f"{len(self.labels)} labels given but output {spec.name!r} has {n_classes} classes"
            )

    def decode(self, outputs: Sequence[np.ndarray]) -> ClassPrediction:
        scores = np.asarray(outputs[self.output])
        # First row of a batch; a bare (C,) vector is already one row.
        return ClassPrediction(to_probabilities(scores.reshape(-1, scores.shape[-1])[0]))

    def disagreement(self, a: ClassPrediction, b: ClassPrediction) -> float:
        if self.metric == "topk":
            return 1.0 - topk_overlap(a.probs, b.probs, self.top_k)
        if self.metric == "prob":
            return min(1.0, total_variation(a.probs, b.probs))
        return 0.0 if a.top1 == b.top1 else 1.0

    def label(self, index: int) -> str:
        if self.labels and 0 <= index < len(self.labels):
            return self.labels[index]
        return str(index)

    def describe(self, prediction: ClassPrediction) -> dict[str, Any]:
        top = prediction.top1
        return {"label": self.label(top), "index": top, "score": float(prediction.probs[top])}
