"""The suite result's report data: degradation curves, latency CDFs and brightness slices, from measurements.

Pure functions of what the agent measured, so the on-device runner and the CLI's report share one shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeprobe.harness.stability import wilson_interval

#: (perturbation, severity) -> disagreement per frame
Cells = dict[tuple[str, float], list[float]]


def curves(cells: Cells, threshold: float) -> dict[str, list[dict[str, Any]]]:
    """Unstable share with its Wilson interval per (perturbation, severity) measured."""
    out: dict[str, list[dict[str, Any]]] = {}
    for (name, sev), d in sorted(cells.items()):
        k, n = sum(x > threshold for x in d), len(d)
        lo, hi = wilson_interval(k, n)
        out.setdefault(name, []).append({"severity": sev, "fraction": k / n, "ci_low": lo, "ci_high": hi, "n": n})
    return out


def cdf(samples_ns: list[int], points: int = 200) -> dict[str, Any]:
    """A compact CDF (quantiles) instead of every sample, so the JSON stays small."""
    ms = np.sort(np.asarray(samples_ns, dtype=np.float64) / 1e6)
    qs = np.linspace(0, 1, min(points, ms.size))
    return {"n": int(ms.size), "quantiles": qs.round(4).tolist(),
            "ms": np.quantile(ms, qs).round(4).tolist(),
            "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)), "max": float(ms[-1])}


#: frames per brightness fifth below which a slice's share says nothing (5 frames gave a "most fragile" headline)
MIN_SLICE_FRAMES = 10


def slices(cells: Cells, threshold: float, brightness: list[float]) -> list[dict[str, Any]]:
    """Unstable share by brightness fifth: where in the input space the model breaks.

    Only when every fifth has MIN_SLICE_FRAMES frames. Each row carries its frames, probes and the Wilson
    interval of its unstable probes (probes of one frame are not independent, so it is a lower bound on the
    real uncertainty).
    """
    n = len(brightness)
    if n < 5 * MIN_SLICE_FRAMES or not cells:
        return []
    per_frame = np.mean([[x > threshold for x in d] for d in cells.values()], axis=0)
    order = np.argsort(brightness)
    names = ["darkest fifth", "second fifth", "middle fifth", "fourth fifth", "brightest fifth"]
    overall = float(per_frame.mean())
    rows = []
    for i, chunk in enumerate(np.array_split(order, 5)):
        b = [brightness[j] for j in chunk]
        share = float(per_frame[chunk].mean())
        m = len(chunk) * len(cells)
        lo, hi = wilson_interval(round(share * m), m)
        rows.append({"slice": names[i], "frames": len(chunk), "probes": m, "brightness_min": min(b),
                     "brightness_max": max(b), "unstable_share": share, "ci_low": lo, "ci_high": hi,
                     "overall": overall, "ratio": share / overall if overall else None})
    return rows
