"""Breaking point: the smallest severity at which a perturbation breaks a model.

Severity is continuous in [0, 5] (see harness/perturbations), so the point
where the unstable fraction first reaches a threshold can be bisected. The
search runs on a fixed frame sample with seeds derived from (base seed, frame
index, perturbation, severity): every evaluation can be replayed pixel for
pixel from what :class:`SeverityProbe` records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import perturbations
from .errors import ConfigError
from .stability import wilson_interval

MAX_SEVERITY = 5.0


def check_unit(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")


@dataclass(frozen=True)
class SeverityProbe:
    """Unstable fraction of one perturbation at one severity on a fixed frame sample."""

    perturbation: str
    severity: float
    n: int
    unstable: int
    frame_indices: list[int]
    seeds: list[int]
    disagreements: list[float]

    @property
    def fraction(self) -> float:
        return self.unstable / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.unstable, self.n)


def unstable_fraction(images: Sequence[np.ndarray], frame_indices: Sequence[int], predict: Callable[[np.ndarray], Any],
                      adapter: Any, perturbation: str, severity: float, seed: int,
                      clean: Sequence[Any] | None = None) -> SeverityProbe:
    """Perturb every frame of the sample at ``severity`` and count predictions that moved past the task threshold.

    ``clean`` are the unperturbed predictions when the caller already has them.
    """
    if not images:
        raise ConfigError("the frame sample is empty; give at least one frame to probe")
    if len(frame_indices) != len(images):
        raise ConfigError(f"{len(images)} frames but {len(frame_indices)} frame indices; give one index per frame")
    pert = perturbations.get(perturbation)
    refs = list(clean) if clean is not None else [predict(img) for img in images]
    seeds, ds = [], []
    for img, idx, ref in zip(images, frame_indices, refs, strict=True):
        s = perturbations.derive_seed(seed, int(idx), perturbation, float(severity))
        seeds.append(s)
        ds.append(float(adapter.disagreement(ref, predict(pert.apply(img, float(severity), s)))))
    unstable = sum(d > adapter.threshold for d in ds)
    return SeverityProbe(perturbation, float(severity), len(ds), unstable, [int(i) for i in frame_indices], seeds, ds)


@dataclass
class BreakingPoint:
    """Result of a bisection: ``severity`` is None when the threshold is never reached within [low, high]."""

    severity: float | None
    #: largest severity seen below the threshold (the bracket's other end)
    below: float
    rounds: int
    threshold: float
    tolerance: float
    evaluations: list[tuple[float, float]] = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.severity is not None

    def as_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "found": self.found, "below": self.below, "rounds": self.rounds,
                "threshold": self.threshold, "tolerance": self.tolerance,
                "evaluations": [[s, f] for s, f in self.evaluations]}


def find_breaking_point(unstable_fraction_at: Callable[[float], float], threshold: float = 0.2,
                        tolerance: float = 0.05, max_rounds: int = 8, low: float = 0.0,
                        high: float = MAX_SEVERITY) -> BreakingPoint:
    """Smallest severity in [low, high] whose unstable fraction reaches ``threshold``, to within ``tolerance``.

    One round is one evaluation. The first looks at ``high`` (if the model
    holds there, there is no breaking point); then bisection halves the
    bracket. From [0, 5] to 0.05 takes 7 halvings, so 8 rounds suffice. The
    search assumes the fraction grows with severity; where it does not, it
    still returns a severity at which the threshold was reached.
    """
    check_unit("breaking-point threshold", threshold)
    if tolerance <= 0:
        raise ConfigError(f"breaking-point tolerance must be positive, got {tolerance!r}")
    if max_rounds < 1:
        raise ConfigError(f"breaking-point max_rounds must be at least 1, got {max_rounds!r}")
    evaluations: list[tuple[float, float]] = []

    def at(sev: float) -> float:
        frac = float(unstable_fraction_at(round(sev, 6)))
        evaluations.append((round(sev, 6), frac))
        return frac

    if at(high) < threshold:
        return BreakingPoint(None, high, 1, threshold, tolerance, evaluations)
    lo, hi, rounds = low, high, 1
    while hi - lo > tolerance and rounds < max_rounds:
        mid = (lo + hi) / 2
        rounds += 1
        if at(mid) >= threshold:
            hi = mid
        else:
            lo = mid
    return BreakingPoint(round(hi, 6), round(lo, 6), rounds, threshold, tolerance, evaluations)


def search(images: Sequence[np.ndarray], frame_indices: Sequence[int], predict: Callable[[np.ndarray], Any],
           adapter: Any, perturbation: str, seed: int, threshold: float = 0.2, tolerance: float = 0.05,
           max_rounds: int = 8, clean: Sequence[Any] | None = None) -> tuple[BreakingPoint, dict[str, Any]]:
    """Breaking point of one perturbation on a fixed sample, plus what replays it (frames, seed, probes)."""
    if not images:
        raise ConfigError("the frame sample is empty; give at least one frame to probe")
    perturbations.get(perturbation)
    refs = list(clean) if clean is not None else [predict(img) for img in images]
    probes: dict[float, SeverityProbe] = {}

    def at(sev: float) -> float:
        if sev not in probes:
            probes[sev] = unstable_fraction(images, frame_indices, predict, adapter, perturbation, sev, seed, refs)
        return probes[sev].fraction

    bp = find_breaking_point(at, threshold, tolerance, max_rounds)
    replay = {"perturbation": perturbation, "seed": seed, "frames": [int(i) for i in frame_indices],
              "probes": [{"severity": p.severity, "n": p.n, "unstable": p.unstable, "seeds": p.seeds}
                         for p in probes.values()]}
    return bp, replay
