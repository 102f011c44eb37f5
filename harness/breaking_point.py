"""Breaking point: the lowest severity at which a perturbation breaks a model, on any curve.

Severity is continuous in (0, 5] (see harness/perturbations). Real models are
not monotone in it (a detector hallucinates boxes under light noise and blanks
its map under heavy noise; dropout hurts a colour model most at severity 1), so
the search first looks at a coarse grid over the whole range, takes the *first*
grid interval where the threshold may be reached, and only bisects inside it.

Every look is a binomial sample (unstable frames of n), so it is decided by its
Wilson interval at the asked confidence, never by the point estimate:

- **broken** when the interval's lower bound reaches the threshold,
- **holding** when its upper bound stays below it,
- **unsure** otherwise.

The answer is a bracket: the model surely holds up to ``low`` (every look at or
below it held), it is possibly broken from ``possibly`` (the first look that did
not hold) and surely broken from ``surely`` (the first broken look; None when no
look was surely broken). "Holds up to severity 5" is said only when every grid
look held. Between two looks nothing is known: the grid spacing and the
bisection tolerance are the resolution of the answer, and the README quotes
the simulated error rates of the defaults (``benchmarks/breaking_point.py``).

The search is a pure function of a counting callback, so the agent's probe
worker and suites share it, and every look can be replayed from the seeds
:class:`SeverityProbe` records.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from edgeprobe.harness import perturbations
from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.stability import wilson_interval

MAX_SEVERITY = 5.0
#: every 0.5: enough points to see a dip between two severities ImageNet-C names
DEFAULT_GRID: tuple[float, ...] = tuple(round(0.5 * i, 4) for i in range(1, 11))
DEFAULT_CONFIDENCE = 0.95
DEFAULT_TOLERANCE = 0.1
#: bisection looks after the grid: 3 per bracket end take a 0.5 grid interval below 0.1
DEFAULT_MAX_ROUNDS = 6

LookState = Literal["holding", "unsure", "broken"]
Verdict = Literal["holds", "broken", "uncertain"]


def check_unit(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")


def z_of(confidence: float) -> float:
    """Two-sided normal quantile for a confidence level (0.95 -> 1.96)."""
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"breaking-point confidence must be in (0, 1), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


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


@dataclass(frozen=True)
class Look:
    """One evaluation of the curve: unstable frames of n at a severity, with its interval and what it shows."""

    severity: float
    unstable: int
    n: int
    ci_low: float
    ci_high: float
    state: LookState
    #: a grid look (True) or a bisection look inside the first grid interval (False)
    grid: bool

    @property
    def fraction(self) -> float:
        return self.unstable / self.n if self.n else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "unstable": self.unstable, "n": self.n, "fraction": self.fraction,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "state": self.state, "grid": self.grid}


def classify(unstable: int, n: int, threshold: float, z: float) -> tuple[float, float, LookState]:
    """Wilson interval of one look and its state against the threshold."""
    lo, hi = wilson_interval(unstable, n, z)
    state: LookState = "broken" if lo >= threshold else "holding" if hi < threshold else "unsure"
    return lo, hi, state


@dataclass
class BreakingPoint:
    """The measured curve and the bracket it supports (see the module docstring for what each end means)."""

    threshold: float
    confidence: float
    tolerance: float
    looks: list[Look] = field(default_factory=list)
    #: every grid look held: the only case that says "holds up to severity 5"
    holds: bool = False
    #: every look at or below this severity held (0 = nothing is known to hold)
    low: float = 0.0
    #: the first look that did not hold (None when every look held)
    possibly: float | None = None
    #: the first look that was surely broken (None when none was)
    surely: float | None = None
    #: frames per look could never show "holding" at this threshold and confidence, even with no unstable frame
    too_few_frames: bool = False
    #: frames left out because their clean prediction is empty (no box, no foreground): nothing to lose
    nothing_to_lose: int = 0

    @classmethod
    def without_evidence(cls, threshold: float, confidence: float, tolerance: float,
                         nothing_to_lose: int) -> BreakingPoint:
        """No frame had a clean prediction to lose: there is no curve, and no verdict but inconclusive."""
        return cls(threshold, confidence, tolerance, nothing_to_lose=nothing_to_lose)

    @property
    def found(self) -> bool:
        return self.surely is not None

    @property
    def severity(self) -> float | None:
        """The lowest severity surely broken (the bracket's upper end), None when none was."""
        return self.surely

    @property
    def rounds(self) -> int:
        return len(self.looks)

    @property
    def verdict(self) -> Verdict:
        if self.holds:
            return "holds"
        if self.surely is not None and self.possibly == self.surely and self.surely - self.low <= self.tolerance + 1e-9:
            return "broken"
        return "uncertain"

    @property
    def max_grid(self) -> float:
        grid = [lk.severity for lk in self.looks if lk.grid]
        return max(grid) if grid else MAX_SEVERITY

    def decide(self, min_severity: float) -> Literal["pass", "fail", "inconclusive"]:
        """A ``min_severity`` verdict: pass when the bracket lies above it, fail below it, inconclusive across it."""
        if not self.looks:
            return "inconclusive"
        if self.holds and min_severity <= self.max_grid:
            return "pass"
        if self.low >= min_severity:
            return "pass"
        if self.surely is not None and self.surely <= min_severity:
            return "fail"
        return "inconclusive"

    def describe(self) -> str:
        """One sentence a reader can act on, never stronger than the looks."""
        n = max((lk.n for lk in self.looks), default=0)
        if not self.looks:
            return (f"no breaking point can be measured: none of the {self.nothing_to_lose} frames had a clean "
                    "prediction to lose (no box, no foreground); give frames that show what the model finds")
        at = f"{self.threshold:.0%} unstable at {self.confidence:.0%} confidence, {n} frames per look"
        if self.nothing_to_lose:
            at += f"; {self.nothing_to_lose} frames with nothing to lose left out"
        if self.holds:
            return f"holds up to severity {self.max_grid:g} (every grid look below {at})"
        surely = f"{self.surely:.2f}" if self.surely is not None else f"beyond {self.max_grid:g} or never"
        if self.verdict == "broken":
            return f"breaks between severity {self.low:.2f} and {self.surely:.2f} ({at})"
        why = " (too few frames to show any severity holding)" if self.too_few_frames else ""
        return (f"holds up to {self.low:.2f}, possibly broken from {self.possibly:.2f}, surely broken from "
                f"{surely} ({at}){why}")

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "holds": self.holds, "low": self.low, "possibly": self.possibly,
                "surely": self.surely, "severity": self.severity, "found": self.found, "rounds": self.rounds,
                "threshold": self.threshold, "confidence": self.confidence, "tolerance": self.tolerance,
                "too_few_frames": self.too_few_frames, "nothing_to_lose": self.nothing_to_lose,
                "summary": self.describe(),
                "looks": [lk.as_dict() for lk in self.looks]}


def _bracket(looks: list[Look]) -> tuple[float, float | None, float | None]:
    """(low, possibly, surely) from looks sorted by severity; the clean frame (severity 0) holds by definition."""
    low, possibly, surely = 0.0, None, None
    for lk in looks:
        if possibly is None:
            if lk.state == "holding":
                low = lk.severity
            else:
                possibly = lk.severity
        if lk.state == "broken":
            surely = lk.severity
            break
    return low, possibly, surely


def find_breaking_point(unstable_at: Callable[[float], tuple[int, int]], threshold: float = 0.2,
                        confidence: float = DEFAULT_CONFIDENCE, grid: Sequence[float] = DEFAULT_GRID,
                        tolerance: float = DEFAULT_TOLERANCE, max_rounds: int = DEFAULT_MAX_ROUNDS) -> BreakingPoint:
    """Bracket the lowest severity whose unstable fraction reaches ``threshold``.

    ``unstable_at(severity)`` returns ``(unstable frames, frames)``. Every grid
    severity is looked at (so the whole curve is reported and a dip is seen);
    then up to ``max_rounds`` bisection looks narrow the bracket's ends, each to
    within ``tolerance``, inside the first grid interval where they lie.
    """
    check_unit("breaking-point threshold", threshold)
    if threshold <= 0:
        raise ConfigError("breaking-point threshold must be above 0 (every model reaches 0% unstable)")
    z = z_of(confidence)
    if tolerance <= 0:
        raise ConfigError(f"breaking-point tolerance must be positive, got {tolerance!r}")
    if max_rounds < 0:
        raise ConfigError(f"breaking-point max_rounds must be 0 or more, got {max_rounds!r}")
    points = sorted({round(float(s), 4) for s in grid})
    if not points or points[0] <= 0 or points[-1] > MAX_SEVERITY:
        raise ConfigError(f"breaking-point grid must be severities in (0, {MAX_SEVERITY:g}], got {list(grid)!r}")
    looks: dict[float, Look] = {}

    def look(sev: float, on_grid: bool) -> None:
        sev = round(sev, 4)
        if sev in looks:
            return
        k, n = unstable_at(sev)
        if n <= 0:
            raise ConfigError("the frame sample is empty; give at least one frame to probe")
        lo, hi, state = classify(int(k), int(n), threshold, z)
        looks[sev] = Look(sev, int(k), int(n), lo, hi, state, on_grid)

    for s in points:
        look(s, True)
    ordered = sorted(looks.values(), key=lambda lk: lk.severity)
    n_max = max(lk.n for lk in ordered)
    too_few = classify(0, n_max, threshold, z)[2] != "holding"
    for _ in range(max_rounds):
        ordered = sorted(looks.values(), key=lambda lk: lk.severity)
        low, possibly, surely = _bracket(ordered)
        if possibly is None:
            break
        below = max((lk.severity for lk in ordered if surely is not None and lk.severity < surely), default=0.0)
        if not too_few and possibly - low > tolerance:
            target = (low + possibly) / 2
        elif surely is not None and surely - below > tolerance:
            target = (below + surely) / 2
        else:
            break
        if round(target, 4) in looks:
            break
        look(target, False)
    ordered = sorted(looks.values(), key=lambda lk: lk.severity)
    low, possibly, surely = _bracket(ordered)
    holds = all(lk.state == "holding" for lk in ordered if lk.grid)
    return BreakingPoint(threshold, confidence, tolerance, ordered, holds, low, possibly, surely, too_few)


def search(images: Sequence[np.ndarray], frame_indices: Sequence[int], predict: Callable[[np.ndarray], Any],
           adapter: Any, perturbation: str, seed: int, threshold: float = 0.2,
           tolerance: float = DEFAULT_TOLERANCE, max_rounds: int = DEFAULT_MAX_ROUNDS,
           clean: Sequence[Any] | None = None, confidence: float = DEFAULT_CONFIDENCE,
           grid: Sequence[float] = DEFAULT_GRID) -> tuple[BreakingPoint, dict[str, Any]]:
    """Breaking point of one perturbation on a fixed sample, plus what replays it (frames, seed, probes)."""
    if not images:
        raise ConfigError("the frame sample is empty; give at least one frame to probe")
    perturbations.get(perturbation)
    refs = list(clean) if clean is not None else [predict(img) for img in images]
    probes: dict[float, SeverityProbe] = {}

    def at(sev: float) -> tuple[int, int]:
        if sev not in probes:
            probes[sev] = unstable_fraction(images, frame_indices, predict, adapter, perturbation, sev, seed, refs)
        return probes[sev].unstable, probes[sev].n

    bp = find_breaking_point(at, threshold, confidence, grid, tolerance, max_rounds)
    replay = {"perturbation": perturbation, "seed": seed, "frames": [int(i) for i in frame_indices],
              "probes": [{"severity": p.severity, "n": p.n, "unstable": p.unstable, "seeds": p.seeds}
                         for p in probes.values()]}
    return bp, replay
