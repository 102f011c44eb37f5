"""Pool the paired ratios of several `--json` runs and bound their median with a bootstrap interval.

A single run of ``examples/embed_app.py`` gives 15-20 pairs whose ratios spread several times the 3% to be
shown; pooled runs of the same command narrow what the median can be. The interval is the percentile
bootstrap (10,000 resamples, seeded) of the median, and of the mean beside it.

    python examples/embed_app.py --frames 1500 --pairs 20 --no-broker --no-probing --json > a.json
    python benchmarks/pool_ratios.py a.json b.json [--key fps_ratios]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections.abc import Callable, Sequence


def bootstrap(values: Sequence[float], stat: Callable[[Sequence[float]], float], resamples: int = 10_000,
              level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """The percentile bootstrap interval of ``stat`` over ``values``."""
    rng = random.Random(seed)
    draws = sorted(stat(rng.choices(values, k=len(values))) for _ in range(resamples))
    tail = int(resamples * (1 - level) / 2)
    return draws[tail], draws[resamples - 1 - tail]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", help="JSON outputs of runs of one benchmark command")
    ap.add_argument("--key", default="fps_ratios", help="the list of paired ratios in each file")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ratios: list[float] = []
    for name in args.files:
        with open(name, encoding="utf-8") as f:
            ratios += [float(r) for r in json.load(f)[args.key]]
    if len(ratios) < 2:
        raise SystemExit(f"error: {args.key} holds {len(ratios)} ratio(s) in all; pooling needs at least 2")
    out = {"pairs": len(ratios), "median": statistics.median(ratios),
           "median_95": bootstrap(ratios, statistics.median), "mean": statistics.fmean(ratios),
           "mean_95": bootstrap(ratios, statistics.fmean), "min": min(ratios), "max": max(ratios)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{out['pairs']} pairs: median x{out['median']:.4f} [{out['median_95'][0]:.4f}, "
              f"{out['median_95'][1]:.4f}], mean x{out['mean']:.4f} [{out['mean_95'][0]:.4f}, "
              f"{out['mean_95'][1]:.4f}] (95% bootstrap); spread {out['min']:.3f}-{out['max']:.3f}")


if __name__ == "__main__":
    main()
