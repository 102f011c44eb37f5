"""How often the breaking-point search is wrong, on curves whose breaking point is known.

Simulates the search (harness.breaking_point.find_breaking_point, defaults:
grid every 0.5, Wilson 95% looks, tolerance 0.1, 6 bisection looks) on a
fixed sample of n frames, as the agent and suites run it: each frame gets a
latent draw u ~ U(0, 1) once and is unstable at severity s when u < p(s), so
looks at two severities see the same frames (correlated, as on a real sample).

Printed per curve and frame count:

- ``false holds``: runs that said "holds up to severity 5" on a curve that
  reaches the threshold (the error this search must never make often);
- ``holds``: runs that said "holds" on a curve that never reaches it (power);
- ``coverage``: runs whose bracket (low, surely] contains the true breaking
  point (surely = none counts as an open upper end);
- ``false broken``: runs that called a severity surely broken below the
  true breaking point (or on a curve that never reaches the threshold);
- ``width``: median and 90th percentile of surely - low over runs that found
  a surely-broken severity; ``open``: runs with no surely-broken severity.

Run: ``python benchmarks/breaking_point.py [--runs 2000] [--frames 8 16 24 32]``.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np

from edgeprobe.harness.breaking_point import find_breaking_point

THRESHOLD = 0.2


def logistic(mid: float, scale: float = 0.3, top: float = 0.9) -> Callable[[float], float]:
    return lambda s: top / (1 + math.exp(-(s - mid) / scale))


def ramp(p: Callable[[float], float], width: float = 0.5) -> Callable[[float], float]:
    """Zero at the clean frame (severity 0), as every real curve is, rising to ``p`` over ``width``."""
    return lambda s: p(s) * min(1.0, s / width)


CURVES: dict[str, Callable[[float], float]] = {
    # the case: a true crossing at 3.3 that the old search missed 24% of the time on 8 frames
    "monotone, crosses at 3.3": logistic(3.3 + 0.3 * math.log(3.5), 0.3),
    "step at 2.37": lambda s: 0.9 if s >= 2.37 else 0.02,
    "monotone, never reaches 20% (15% at 5)": logistic(4.0, 0.4, 0.16),
    # pixel_dropout on the demo: 37-52% unstable at severity 1, 12% at 5
    "falling: 45% at 1, 10% at 5": ramp(lambda s: max(0.1, 0.54 - 0.09 * s), 1.0),
    "U-shaped: 50% at 1, 4% at 3, 50% at 5": ramp(lambda s: min(0.9, 0.04 + 0.115 * (s - 3.0) ** 2), 1.0),
    "bump: 4% except 35% at 2-2.6": lambda s: 0.35 if 2.0 <= s <= 2.6 else 0.04,
    "never: 5% everywhere": lambda s: 0.05,
}


def true_breaking_point(p: Callable[[float], float]) -> float | None:
    for s in np.arange(0.001, 5.0005, 0.001):
        if p(float(s)) >= THRESHOLD:
            return float(s)
    return None


def simulate(p: Callable[[float], float], n: int, runs: int, rng: np.random.Generator) -> dict[str, float]:
    truth = true_breaking_point(p)
    holds = covered = opened = false_broken = 0
    widths: list[float] = []
    for _ in range(runs):
        u = rng.random(n)

        def at(s: float, u: np.ndarray = u) -> tuple[int, int]:
            return int((u < p(s)).sum()), n

        bp = find_breaking_point(at, threshold=THRESHOLD)
        holds += bp.holds
        if bp.surely is None:
            opened += 1
        else:
            widths.append(bp.surely - bp.low)
            false_broken += truth is None or bp.surely < truth - 1e-9
        if truth is not None:
            covered += bp.low < truth + 1e-9 and (bp.surely is None or truth <= bp.surely + 1e-9)
    out = {"truth": truth if truth is not None else float("nan"), "holds": holds / runs, "open": opened / runs,
           "false_broken": false_broken / runs,
           "coverage": covered / runs if truth is not None else float("nan"),
           "width_p50": float(np.median(widths)) if widths else float("nan"),
           "width_p90": float(np.percentile(widths, 90)) if widths else float("nan")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--frames", type=int, nargs="+", default=[8, 16, 24, 32])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"threshold {THRESHOLD:.0%}, {args.runs} runs per row, defaults of find_breaking_point")
    print(f"{'curve':40s} {'n':>3s} {'truth':>6s} {'false holds':>11s} {'holds':>6s} {'coverage':>8s} "
          f"{'false broken':>12s} {'width p50':>9s} {'p90':>5s} {'open':>5s}")
    for name, p in CURVES.items():
        for n in args.frames:
            r = simulate(p, n, args.runs, rng)
            crosses = not math.isnan(r["truth"])
            false_holds = f"{r['holds']:.1%}" if crosses else "-"
            holds = "-" if crosses else f"{r['holds']:.1%}"
            cov = f"{r['coverage']:.1%}" if crosses else "-"
            print(f"{name:40s} {n:3d} {r['truth']:6.2f} {false_holds:>11s} {holds:>6s} {cov:>8s} "
                  f"{r['false_broken']:12.1%} {r['width_p50']:9.2f} {r['width_p90']:5.2f} {r['open']:5.0%}")


if __name__ == "__main__":
    main()
