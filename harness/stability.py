"""Stability under perturbation: unstable fraction per perturbation and severity."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgeprobe.harness.bodies import RobustnessBody

#: Risk zones (fraction of unstable predictions). "More than 20% of predictions
#: unstable" puts a model in the risk zone; from 50% we call it broken.
RISK_THRESHOLD = 0.20
BROKEN_THRESHOLD = 0.50


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Chosen over the normal approximation because it stays inside [0, 1] and
    behaves at 0 and n successes, which is where stable models live.
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0 or n successes the bound is exactly 0 or 1; float rounding must not move it.
    lo = 0.0 if successes == 0 else max(0.0, centre - half)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def risk_zone(fraction: float, risk: float = RISK_THRESHOLD, broken: float = BROKEN_THRESHOLD) -> str:
    if fraction >= broken:
        return "broken"
    if fraction >= risk:
        return "at_risk"
    return "ok"


@dataclass
class _Cell:
    n: int = 0
    unstable: int = 0
    disagreement_sum: float = 0.0


@dataclass
class StabilityWindow:
    """Accumulates (perturbation, severity) -> unstable counts for one window."""

    cells: dict[tuple[str, float], _Cell] = field(default_factory=dict)
    frames_probed: int = 0

    def add(self, perturbation: str, severity: float, disagreement: float, threshold: float) -> None:
        cell = self.cells.setdefault((perturbation, float(severity)), _Cell())
        cell.n += 1
        cell.unstable += int(disagreement > threshold)
        cell.disagreement_sum += float(disagreement)

    def summary(self, risk: float = RISK_THRESHOLD,
                broken: float = BROKEN_THRESHOLD) -> list[dict[str, float | int | str]]:
        out: list[dict[str, float | int | str]] = []
        for (name, severity), c in sorted(self.cells.items()):
            lo, hi = wilson_interval(c.unstable, c.n)
            fraction = c.unstable / c.n if c.n else 0.0
            out.append(
                {
                    "perturbation": name,
                    "severity": severity,
                    "n": c.n,
                    "unstable": c.unstable,
                    "fraction": fraction,
                    "ci_low": lo,
                    "ci_high": hi,
                    "mean_disagreement": c.disagreement_sum / c.n if c.n else 0.0,
                    "zone": risk_zone(fraction, risk, broken),
                }
            )
        return out

    def clear(self) -> None:
        self.cells.clear()
        self.frames_probed = 0


ZONE_ORDER = ("ok", "at_risk", "broken")


def zones_by_perturbation(cells: list[dict[str, float | int | str]]) -> dict[str, str]:
    """Worst zone each perturbation reached over its severities: the figure a fleet view sorts by."""
    out: dict[str, str] = {}
    for c in cells:
        name, zone = str(c["perturbation"]), str(c["zone"])
        if ZONE_ORDER.index(zone) >= ZONE_ORDER.index(out.get(name, "ok")):
            out[name] = zone
    return out


@dataclass
class RobustnessRun:
    """Robustness windows pooled over a run: counts add up, so pooled fractions and intervals are exact."""

    risk: float = RISK_THRESHOLD
    broken: float = BROKEN_THRESHOLD
    cells: dict[tuple[str, float], list[int]] = field(default_factory=dict)
    relations: dict[str, list[int]] = field(default_factory=dict)
    breaking_points: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, body: RobustnessBody) -> None:
        for c in body.cells:
            counts = self.cells.setdefault((c.perturbation, float(c.severity)), [0, 0])
            counts[0] += c.unstable
            counts[1] += c.n
        for r in body.relations or []:
            counts = self.relations.setdefault(str(r["relation"]), [0, 0])
            counts[0] += int(r["violations"])
            counts[1] += int(r["n"])
        for bp in body.breaking_points or []:
            self.breaking_points[str(bp["perturbation"])] = bp  # the latest search stands

    def summary(self) -> dict[str, Any]:
        cells: list[dict[str, float | int | str]] = []
        for (name, severity), (unstable, n) in sorted(self.cells.items()):
            lo, hi = wilson_interval(unstable, n)
            frac = unstable / n if n else 0.0
            cells.append({"perturbation": name, "severity": severity, "n": n, "unstable": unstable,
                          "fraction": frac, "ci_low": lo, "ci_high": hi,
                          "zone": risk_zone(frac, self.risk, self.broken)})
        relations = []
        for name, (bad, n) in sorted(self.relations.items()):
            lo, hi = wilson_interval(bad, n)
            relations.append({"relation": name, "violations": bad, "n": n, "rate": bad / n if n else 0.0,
                              "ci_low": lo, "ci_high": hi})
        bps = {name: {k: bp.get(k) for k in ("summary", "verdict", "holds", "low", "possibly", "surely", "severity",
                                             "rounds", "frames", "looks")}
               for name, bp in sorted(self.breaking_points.items())}
        return {"cells": cells, "zones": zones_by_perturbation(cells), "breaking_points": bps,
                "relations": relations}
