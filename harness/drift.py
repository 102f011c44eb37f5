"""Distribution drift against a reference, and whose fault it is.

Outputs: the class histogram (PSI), the score distribution (PSI and the
two-sample Kolmogorov-Smirnov statistic) and, where predictions are vectors
(class probabilities, embeddings), the shift of their mean. Inputs: the same
PSI and KS on each camera-health figure. Attribution: when the outputs moved,
did the input statistics move with them (camera, lighting, lens) or not (the
scene changed, or the model did)?

PSI thresholds follow the credit-scoring rule of thumb (below 0.1 stable,
0.1-0.25 a moderate shift, above 0.25 a significant one; N. Siddiqi, "Credit
Risk Scorecards", Wiley 2006). KS is reported as the statistic D, an effect
size in [0, 1], not as a p-value: consecutive video frames are strongly
autocorrelated, so an i.i.d. p-value would call every scene change
significant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprobe.harness.alerts import make_bands
from edgeprobe.harness.errors import EdgeprobeError
from edgeprobe.harness.health import METRICS

#: proportions are floored at this before the log in PSI, so an empty bin costs a finite, large amount
PSI_EPS = 1e-4
PSI_BINS = 10


class DriftError(EdgeprobeError):
    """A drift figure was asked of data it cannot be computed on (an empty sample, a broken baseline)."""


# --- statistics ---------------------------------------------------------------------------------


def psi_counts(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray,
               eps: float = PSI_EPS) -> float:
    """Population stability index of two histograms over the same bins: sum (a - e) ln(a / e).

    Symmetric in its two arguments and zero only for equal proportions.
    """
    e = np.asarray(expected, np.float64)
    a = np.asarray(actual, np.float64)
    if e.shape != a.shape or e.ndim != 1:
        raise DriftError(f"PSI needs two histograms over the same bins, got shapes {e.shape} and {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        raise DriftError("PSI needs at least one observation in each histogram; the sample is empty")
    pe = np.maximum(e / e.sum(), eps)
    pa = np.maximum(a / a.sum(), eps)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def psi_histograms(expected: Mapping[str, float], actual: Mapping[str, float]) -> float:
    """PSI of two categorical histograms keyed by class name (a class missing on one side counts 0)."""
    keys = sorted(set(expected) | set(actual))
    return psi_counts([expected.get(k, 0) for k in keys], [actual.get(k, 0) for k in keys])


def quantile_edges(reference: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Inner bin edges at the reference's quantiles (duplicates merged where values tie)."""
    inner = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(inner)


def psi_samples(reference: Sequence[float] | np.ndarray, sample: Sequence[float] | np.ndarray,
                bins: int = PSI_BINS) -> float:
    """PSI of a numeric sample against a reference, on the reference's quantile bins."""
    r = _finite(reference, "reference")
    s = _finite(sample, "window")
    edges = quantile_edges(r, bins)
    n = edges.size + 1
    # Right-closed bins (x <= edge falls below it), so a value equal to an edge always lands in the same bin.
    hr = np.bincount(np.searchsorted(edges, r, side="left"), minlength=n)
    hs = np.bincount(np.searchsorted(edges, s, side="left"), minlength=n)
    return psi_counts(hr, hs)


def ks_statistic(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov D: the largest gap between the two empirical CDFs, in [0, 1]."""
    x = np.sort(_finite(a, "reference"))
    y = np.sort(_finite(b, "window"))
    grid = np.concatenate([x, y])
    cx = np.searchsorted(x, grid, side="right") / x.size
    cy = np.searchsorted(y, grid, side="right") / y.size
    return float(np.max(np.abs(cx - cy)))


def mean_shift(reference_mean: Sequence[float] | np.ndarray, reference_var_total: float,
               vectors: Sequence[np.ndarray] | np.ndarray) -> float:
    """Distance of the window's mean vector from the reference mean, in units of the reference's spread.

    ``reference_var_total`` is the trace of the reference covariance (the mean squared distance of a
    vector from its mean), so 1.0 means the mean moved by a typical vector's own deviation.
    """
    v = np.asarray(vectors, np.float64)
    m = np.asarray(reference_mean, np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise DriftError("mean shift needs at least one output vector in the window; the sample is empty")
    if v.shape[1] != m.size:
        raise DriftError(f"output vectors have {v.shape[1]} values but the baseline's have {m.size}; "
                         "record a new baseline for this model")
    spread = float(np.sqrt(max(reference_var_total, 0.0)))
    return float(np.linalg.norm(v.mean(axis=0) - m) / max(spread, 1e-12))


def _finite(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(values, np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        raise DriftError(f"the {what} sample is empty; drift needs at least one frame on each side")
    return x


# --- what a frame contributes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One frame, as drift and slices see it: its input statistics and what the model answered."""

    inputs: tuple[float, ...]  # METRICS order
    classes: dict[str, int] = field(default_factory=dict)  # class -> count in this frame (1 for a classifier)
    label: str | None = None  # the frame's dominant class, for per-slice histograms
    values: dict[str, float] = field(default_factory=dict)  # score, count, foreground, norm
    vector: np.ndarray | None = None  # class probabilities or an embedding
    hour: float = 0.0  # local time of day, for time-of-day slices


def describe_output(adapter: Any, prediction: Any) -> tuple[dict[str, int], str | None, dict[str, float],
                                                           np.ndarray | None]:
    """(classes, label, numeric values, vector) of one prediction, from the adapter's own description."""
    desc = adapter.describe(prediction)
    classes: dict[str, int] = {}
    if "label" in desc:
        classes = {str(desc["label"]): 1}
    elif isinstance(desc.get("classes"), dict):
        classes = {str(k): int(v) for k, v in desc["classes"].items() if int(v) > 0}
    label = max(classes, key=lambda k: classes[k]) if classes else ("(none)" if "count" in desc else None)
    values = {k: float(desc[k]) for k in ("score", "count", "foreground", "norm") if k in desc}
    vector = getattr(prediction, "probs", None)
    if vector is None and isinstance(prediction, np.ndarray) and prediction.ndim == 1:
        vector = prediction
    return classes, label, values, (None if vector is None else np.asarray(vector, np.float64).ravel())


class Table:
    """Columns of many rows: what a reference or a drift window holds."""

    def __init__(self, inputs: Mapping[str, Sequence[float]], labels: Sequence[str | None],
                 values: Mapping[str, Sequence[float]], hours: Sequence[float], classes: Mapping[str, float],
                 vector_mean: Sequence[float] | None = None, vector_var_total: float | None = None,
                 vectors: np.ndarray | None = None):
        self.inputs = {m: np.asarray(inputs.get(m, ()), np.float64) for m in METRICS}
        self.labels = list(labels)
        self.values = {k: np.asarray(v, np.float64) for k, v in values.items()}
        self.hours = np.asarray(hours, np.float64)
        self.classes = dict(classes)
        self.vector_mean = None if vector_mean is None else np.asarray(vector_mean, np.float64)
        self.vector_var_total = vector_var_total
        self.vectors = vectors

    @property
    def n(self) -> int:
        return int(self.inputs["brightness"].size)

    @classmethod
    def from_rows(cls, rows: Sequence[Row]) -> Table:
        if not rows:
            raise DriftError("no frames to summarise; drift needs at least one frame")
        inputs = {m: [r.inputs[i] for r in rows] for i, m in enumerate(METRICS)}
        names = sorted({k for r in rows for k in r.values})
        values = {k: [r.values.get(k, np.nan) for r in rows] for k in names}
        classes: Counter[str] = Counter()
        for r in rows:
            classes.update(r.classes)
        vecs = [r.vector for r in rows if r.vector is not None]
        vectors = np.stack(vecs) if vecs and len({v.size for v in vecs}) == 1 else None
        mean = var = None
        if vectors is not None:
            mean = vectors.mean(axis=0)
            var = float(((vectors - mean) ** 2).sum(axis=1).mean())
        return cls(inputs, [r.label for r in rows], values, [r.hour for r in rows], dict(classes), mean, var,
                   vectors)

    def subset(self, mask: np.ndarray) -> Table:
        """The rows where ``mask`` holds (class histogram rebuilt from their labels)."""
        labels = [lab for lab, keep in zip(self.labels, mask, strict=True) if keep]
        classes = Counter(lab for lab in labels if lab is not None)
        return Table({m: v[mask] for m, v in self.inputs.items()}, labels,
                     {k: v[mask] for k, v in self.values.items()}, self.hours[mask], dict(classes))


# --- comparing a window with its reference --------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    psi: float = 0.25
    ks: float = 0.3
    mean_shift: float = 0.5
    #: input statistics count as moved from these (separate, because lighting drifts more than outputs)
    input_psi: float = 0.25
    input_ks: float = 0.3
    #: ... and at least this share of the window's frames left the health band
    input_outside: float = 0.1


def _numeric(ref: np.ndarray, win: np.ndarray) -> dict[str, float] | None:
    r, w = ref[np.isfinite(ref)], win[np.isfinite(win)]
    if r.size == 0 or w.size == 0:
        return None
    return {"psi": psi_samples(r, w), "ks": ks_statistic(r, w), "mean": float(w.mean()),
            "reference_mean": float(r.mean())}


def compare(reference: Table, window: Table, th: Thresholds) -> dict[str, Any]:
    """Every drift figure of ``window`` against ``reference``, the verdicts and the attribution."""
    if window.n == 0 or reference.n == 0:
        raise DriftError("drift needs at least one frame in both the reference and the window; the sample is empty")
    outputs: dict[str, Any] = {}
    drifted: list[str] = []
    if reference.classes and window.classes:
        psi = psi_histograms(reference.classes, window.classes)
        outputs["classes"] = {"psi": psi, "reference": _shares(reference.classes), "window": _shares(window.classes)}
        if psi >= th.psi:
            drifted.append(f"class histogram PSI {psi:.2f}")
    for name in sorted(set(reference.values) & set(window.values)):
        fig = _numeric(reference.values[name], window.values[name])
        if fig is None:
            continue
        outputs[name] = fig
        if fig["psi"] >= th.psi:
            drifted.append(f"{name} PSI {fig['psi']:.2f}")
        if fig["ks"] >= th.ks:
            drifted.append(f"{name} KS {fig['ks']:.2f}")
    if reference.vector_mean is not None and window.vectors is not None and reference.vector_var_total is not None \
            and window.vectors.shape[1] == reference.vector_mean.size:
        shift = mean_shift(reference.vector_mean, reference.vector_var_total, window.vectors)
        outputs["vector"] = {"mean_shift": shift}
        if shift >= th.mean_shift:
            drifted.append(f"mean output shift {shift:.2f}")
    inputs: dict[str, Any] = {}
    moved: list[str] = []
    for metric in METRICS:
        fig = _numeric(reference.inputs[metric], window.inputs[metric])
        if fig is None:
            continue
        fig["outside_band"] = outside = _outside_band(metric, reference.inputs[metric], window.inputs[metric])
        inputs[metric] = fig
        # Frames of one camera are so alike that PSI and KS call a one-grey-level change significant; a figure
        # counts as moved only if a share of the window also left the band that health alerts use (what is
        # normal for this camera). A share, not the median: the inputs must be seen to move as early as the
        # outputs, or the first frames of a failing camera would be blamed on the scene.
        if (fig["psi"] >= th.input_psi or fig["ks"] >= th.input_ks) and outside >= th.input_outside:
            moved.append(f"{metric} PSI {fig['psi']:.2f} KS {fig['ks']:.2f}, {outside:.0%} out of band")
    output_drift, input_drift = bool(drifted), bool(moved)
    if not output_drift:
        attribution = "none"
        message = "outputs match the reference" + (f"; inputs moved ({', '.join(moved)})" if moved else "")
    elif input_drift:
        attribution = "camera"
        message = (f"outputs drifted ({', '.join(drifted)}) and the input statistics moved with them "
                   f"({', '.join(moved)}): look at the camera, lighting or lens")
    else:
        attribution = "scene_or_model"
        message = (f"outputs drifted ({', '.join(drifted)}) while the input statistics stayed at the reference: "
                   "the scene or the model changed, not the camera")
    return {"frames": window.n, "reference_frames": reference.n, "outputs": outputs, "inputs": inputs,
            "output_drift": output_drift, "input_drift": input_drift, "attribution": attribution,
            "drifted": drifted, "inputs_moved": moved, "message": message}


def _outside_band(metric: str, ref: np.ndarray, win: np.ndarray) -> float:
    """Share of the window's frames outside the reference's health band for this metric."""
    band = make_bands({metric: ref}).get(metric)
    w = win[np.isfinite(win)]
    if band is None or w.size == 0:
        return 0.0
    return float(np.mean((w < band.low) | (w > band.high)))


def _shares(counts: Mapping[str, float], top: int = 8) -> dict[str, float]:
    total = float(sum(counts.values())) or 1.0
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
    return {k: round(v / total, 4) for k, v in ranked}


def psi_against_baseline(path: str, descriptions: Sequence[Mapping[str, Any]], model_sha256: str | None = None,
                         ) -> float:
    """PSI of a suite's predictions (adapter descriptions) against a recorded baseline file.

    The class histogram where predictions have classes, else the first numeric figure both sides have
    (score, foreground, count, norm). Used by the suite's `drift` check; the agent uses :func:`compare`.
    """
    import json

    from edgeprobe.harness.baseline import Baseline

    try:
        with open(path, encoding="utf-8") as fh:
            baseline = Baseline.from_dict(json.load(fh))
    except (OSError, ValueError) as exc:
        raise DriftError(f"cannot read baseline {path} ({type(exc).__name__}); record one with "
                         "`edgeprobe baseline record`") from None
    if model_sha256 and baseline.model_sha256 != model_sha256:
        raise DriftError(f"baseline {path} was recorded with model sha256 {baseline.model_sha256[:12]}... but the "
                         f"suite runs {model_sha256[:12]}...; record a new baseline for this model")
    if not descriptions:
        raise DriftError("no predictions to compare with the baseline; the frame sample is empty")
    classes: Counter[str] = Counter()
    for d in descriptions:
        if "label" in d:
            classes[str(d["label"])] += 1
        elif isinstance(d.get("classes"), dict):
            classes.update({str(k): int(v) for k, v in d["classes"].items()})
    if classes and baseline.table.classes:
        return psi_histograms(baseline.table.classes, classes)
    for name in ("score", "foreground", "count", "norm"):
        ref = baseline.table.values.get(name)
        got = [float(d[name]) for d in descriptions if name in d]
        if ref is not None and got and np.isfinite(ref).any():
            return psi_samples(ref, got)
    raise DriftError(f"baseline {path} and these predictions share no class histogram or score to compare")
