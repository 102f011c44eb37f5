"""A recorded baseline: what a camera's inputs and its model's outputs looked like when all was well.

Written by ``edgeprobe baseline record`` (or learned from a run's first
frames) and read by the agent, it holds the exact class histogram, per-frame
columns of input statistics, scores and labels (evenly thinned to at most
``MAX_ROWS`` frames, enough for quantile bins and KS), the mean and spread of
output vectors, and the model's sha256: a baseline describes one model, and a
different model is expected to answer differently, so it is refused.

This module turns it into and out of plain JSON-able dicts; reading and
writing files is the agent's business.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprobe.harness.drift import DriftError, Row, Table
from edgeprobe.harness.health import METRICS

FORMAT = "edgeprobe-baseline/1"
MAX_ROWS = 2000


@dataclass
class Baseline:
    table: Table
    model_sha256: str
    frames: int  # frames observed (the table may hold fewer, thinned)
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        t = self.table
        return {
            "format": FORMAT, "model_sha256": self.model_sha256, "frames": self.frames, **self.meta,
            "classes": t.classes,
            "rows": {**{m: _round(t.inputs[m]) for m in METRICS}, "label": t.labels,
                     "hour": _round(t.hours, 3), **{f"value.{k}": _round(v) for k, v in t.values.items()}},
            "vector": None if t.vector_mean is None else {"mean": _round(t.vector_mean, 6),
                                                          "var_total": t.vector_var_total},
        }

    @classmethod
    def from_dict(cls, data: Any) -> Baseline:
        """Validate a parsed baseline file; DriftError names what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DriftError(f"it is not an edgeprobe baseline (no \"format\": \"{FORMAT}\")")
        try:
            rows: dict[str, Any] = data["rows"]
            n = len(rows["brightness"])
            inputs = {m: [float(x) for x in rows[m]] for m in METRICS}
            labels = [None if x is None else str(x) for x in rows["label"]]
            hours = [float(x) for x in rows["hour"]]
            values = {k[len("value."):]: [float(x) for x in v] for k, v in rows.items() if k.startswith("value.")}
            columns: list[Sequence[Any]] = [*inputs.values(), labels, hours, *values.values()]
            if any(len(c) != n for c in columns):
                raise DriftError("its per-frame columns differ in length")
            if n == 0:
                raise DriftError("it holds no frames")
            classes = {str(k): float(v) for k, v in data["classes"].items()}
            vec = data.get("vector")
            mean = [float(x) for x in vec["mean"]] if vec else None
            var = float(vec["var_total"]) if vec else None
            sha = str(data["model_sha256"])
            frames = int(data["frames"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DriftError(f"it is incomplete or malformed ({type(exc).__name__}: {exc})") from None
        meta = {k: v for k, v in data.items()
                if k not in ("format", "model_sha256", "frames", "classes", "rows", "vector")}
        return cls(Table(inputs, labels, values, hours, classes, mean, var), sha, frames, meta)


def _round(x: np.ndarray | Sequence[float], digits: int = 5) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), digits) for v in np.asarray(x, np.float64)]


class Recorder:
    """Accumulates frames into a baseline: exact class counts and vector moments, thinned per-frame columns."""

    def __init__(self, max_rows: int = MAX_ROWS):
        self.max_rows = max_rows
        self.rows: list[Row] = []
        self.frames = 0
        self.classes: Counter[str] = Counter()
        self._vsum: np.ndarray | None = None
        self._vsq = 0.0
        self._vn = 0
        self._stride = 1  # keep one frame in this many; doubles whenever the kept rows reach 2 * max_rows

    def add(self, row: Row) -> None:
        self.frames += 1
        self.classes.update(row.classes)
        if row.vector is not None and (self._vsum is None or self._vsum.size == row.vector.size):
            self._vsum = row.vector.copy() if self._vsum is None else self._vsum + row.vector
            self._vsq += float(row.vector @ row.vector)
            self._vn += 1
        if (self.frames - 1) % self._stride == 0:
            self.rows.append(row)
        if len(self.rows) >= 2 * self.max_rows:  # memory stays bounded on long recordings, frames evenly spaced
            self.rows = self.rows[::2]
            self._stride *= 2

    def build(self, model_sha256: str, **meta: Any) -> Baseline:
        if not self.rows:
            raise DriftError("no frames were observed, so there is nothing to record")
        step = max(1, -(-len(self.rows) // self.max_rows))
        table = Table.from_rows(self.rows[::step])
        table.classes = dict(self.classes)
        if self._vsum is not None and self._vn:
            # Over every frame, not only the thinned ones: E|v|^2 - |E v|^2 is the covariance trace.
            mean = self._vsum / self._vn
            table.vector_mean = mean
            table.vector_var_total = max(0.0, self._vsq / self._vn - float(mean @ mean))
        return Baseline(table, model_sha256, self.frames, meta)
