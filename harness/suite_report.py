"""The suite result's report data: degradation curves, latency CDFs and brightness slices, from measurements.

Pure functions of what the agent measured, so the on-device runner, the verdict message and the CLI's report
(edgeprobe/cli/report.py, junit.py) share one shape. It lives in harness rather than beside the CLI's report
because the suite result the agent returns (and ``run_check`` answers from, on a device without the CLI)
already carries this data section; the HTML and JUnit writers only render it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeprobe.harness.bodies import CheckFigure, VerdictBody
from edgeprobe.harness.slices import MIN_SAMPLES, NAMES, bucket_of, quintile_edges
from edgeprobe.harness.stability import wilson_interval

#: (perturbation, severity) -> disagreement per frame
Cells = dict[tuple[str, float], list[float]]


def curves(cells: Cells, threshold: float, empty: Sequence[bool] = ()) -> dict[str, list[dict[str, Any]]]:
    """Unstable share with its Wilson interval per (perturbation, severity) measured.

    ``empty`` marks frames with nothing to lose (no clean prediction): they are left out, as the checks leave
    them out, so a curve never shows a detector that found nothing as robust. No frame left: no curve.
    """
    out: dict[str, list[dict[str, Any]]] = {}
    for (name, sev), d in sorted(cells.items()):
        kept = [x for i, x in enumerate(d) if not (i < len(empty) and empty[i])]
        k, n = sum(x > threshold for x in kept), len(kept)
        if not n:
            continue
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


def slices(cells: Cells, threshold: float, brightness: list[float]) -> list[dict[str, Any]]:
    """Unstable share by brightness fifth (harness/slices.py's quintiles and names): where the model breaks.

    The edges are the frame set's own quintiles (a suite has no reference); only when every fifth holds
    harness.slices.MIN_SAMPLES frames (5 frames gave a "most fragile" headline). Each row carries its frames,
    probes and the Wilson interval of its unstable probes (probes of one frame are not independent, so it is a
    lower bound on the real uncertainty).
    """
    if len(brightness) < 5 * MIN_SAMPLES or not cells:
        return []
    per_frame = np.mean([[x > threshold for x in d] for d in cells.values()], axis=0)
    edges = quintile_edges(np.asarray(brightness))
    buckets = np.array([bucket_of(b, edges) for b in brightness])
    members = [np.flatnonzero(buckets == i) for i in range(5)]
    if min(len(m) for m in members) < MIN_SAMPLES:
        return []
    overall = float(per_frame.mean())
    rows = []
    for name, chunk in zip(NAMES["brightness"], members, strict=True):
        b = [brightness[j] for j in chunk]
        share = float(per_frame[chunk].mean())
        m = len(chunk) * len(cells)
        lo, hi = wilson_interval(round(share * m), m)
        rows.append({"slice": name, "frames": len(chunk), "probes": m, "brightness_min": min(b),
                     "brightness_max": max(b), "unstable_share": share, "ci_low": lo, "ci_high": hi,
                     "overall": overall, "ratio": share / overall if overall else None})
    return rows


def data(*, cells: Cells, threshold: float, empty: Sequence[bool], latency: dict[str, list[int]],
         budgets: list[dict[str, Any]], breaking: dict[str, dict[str, Any]], metamorphic: list[dict[str, Any]],
         health: dict[str, Any], brightness: list[float], worst: list[dict[str, Any]]) -> dict[str, Any]:
    """The result's ``data`` section (what the HTML report draws) from what the suite measured."""
    return {
        "curves": curves(cells, threshold, empty), "breaking_points": breaking, "metamorphic": metamorphic,
        "latency": {s: cdf(v) for s, v in latency.items() if v}, "latency_budgets": budgets, "health": health,
        "slices": slices(cells, threshold, brightness),
        # the pictures travel beside the JSON (suite_runner.Artifacts), not in it
        "worst_frames": [{k: v for k, v in w.items() if k not in ("clean", "perturbed")} for w in worst],
    }


def verdict_body(result: dict[str, Any]) -> VerdictBody:
    """The ``verdict`` message body of a suite result: the north star and each check's figure."""
    return VerdictBody(suite=result["suite"], status=result["status"], headline=result["headline"],
                       exit_code=result["exit_code"], duration_s=result["provenance"]["duration_s"],
                       checks=[CheckFigure(**{k: c[k] for k in ("name", "kind", "status", "figure", "limit", "unit",
                                                                "op")}) for c in result["checks"]])
