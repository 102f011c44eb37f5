"""Baseline bands for camera health, and the alerts raised when a figure leaves its band.

A band is what "normal" looks like for one camera: the 2nd to 98th
percentile of a per-frame figure over a recorded baseline (or the first
frames of a run), widened by a margin. Absolute thresholds cannot do this: a
camera facing a white wall is not "overexposed", one on a dark corridor is
not "dark". Sharpness, contrast and noise span orders of magnitude, so their
bands are drawn on a log scale.

The figure compared with the band is the median over a rolling window of
frames: one passing lorry must not page anyone, a lens that fogged over for
half the window must. An alert fires once when the median leaves the band
and clears once when it returns; its ``since`` is the first frame in the
window that was already out of band, which for a step change is the moment
the camera changed.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeprobe.harness.health import METRICS, FrameStats
from edgeprobe.harness.health_scale import LOG_METRICS, MIN_PAD

#: metric -> (alert when below the band, alert when above it): (name, what happened)
RULES: dict[str, tuple[tuple[str, str] | None, tuple[str, str] | None]] = {
    "brightness": (("dark", "went dark"), ("overexposed", "became overexposed")),
    "contrast": (("low_contrast", "lost contrast"), None),
    "sharpness": (("blurry", "went blurry"), None),
    "noise": (None, ("noisy", "became noisy")),
    "clipped": (None, ("clipped", "started clipping highlights or shadows")),
    "occlusion": (None, ("occluded", "looks covered (a large uniform region)")),
}
UPPER = {"brightness": 255.0, "clipped": 1.0, "occlusion": 1.0}


@dataclass(frozen=True)
class Band:
    metric: str
    low: float
    high: float
    source: str  # "baseline" (a recorded file) or "learned" (the run's first frames)

    def position(self, value: float) -> int:
        """-1 below, 0 inside, +1 above."""
        return -1 if value < self.low else (1 if value > self.high else 0)


def make_bands(samples: Mapping[str, Sequence[float] | np.ndarray], margin: float = 0.25, source: str = "baseline",
               ) -> dict[str, Band]:
    """Bands from per-frame samples of each metric; metrics without samples get none."""
    bands: dict[str, Band] = {}
    for metric in METRICS:
        x = np.asarray(samples.get(metric, ()), np.float64)
        x = x[np.isfinite(x)]
        if x.size == 0:
            continue
        log = metric in LOG_METRICS
        y = np.log1p(np.maximum(x, 0.0)) if log else x
        lo, hi = (float(v) for v in np.quantile(y, [0.02, 0.98]))
        pad = max(margin * (hi - lo), MIN_PAD[metric])
        low, high = lo - pad, hi + pad
        if log:
            low, high = math.expm1(max(low, 0.0)), math.expm1(high)
        low = max(low, 0.0)
        high = min(high, UPPER.get(metric, math.inf))
        bands[metric] = Band(metric, low, high, source)
    return bands


def _clock(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%H:%M:%S UTC")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat()


class HealthAlerts:
    """Rolling medians of the per-frame figures against their bands; frozen and replayed streams."""

    def __init__(self, device_id: str, bands: Mapping[str, Band] | None = None, window_frames: int = 30,
                 check_every: int = 5, frozen_share: float = 0.8):
        self.device_id = device_id
        self.bands: dict[str, Band] = dict(bands or {})
        self.w = max(2, window_frames)
        self.check_every = max(1, check_every)
        self.frozen_share = frozen_share
        self.values = np.zeros((self.w, len(METRICS)), np.float64)
        self.times = np.zeros(self.w, np.float64)
        self.frozen = np.zeros(self.w, bool)
        self.n = 0
        #: alert name -> the event that opened it
        self.active: dict[str, dict[str, Any]] = {}
        self.rolling: dict[str, float] = {}

    def set_bands(self, bands: Mapping[str, Band]) -> None:
        self.bands = dict(bands)

    def add(self, stats: FrameStats, wall_s: float, replaying: bool = False, lag: int | None = None,
            ) -> list[dict[str, Any]]:
        """Feed one frame; returns the events (alerts raised or cleared) it caused."""
        slot = self.n % self.w
        self.values[slot] = [getattr(stats, m) for m in METRICS]
        self.times[slot] = wall_s
        self.frozen[slot] = stats.motion == 0.0
        self.n += 1
        events: list[dict[str, Any]] = []
        filled = min(self.n, self.w)
        order: np.ndarray | None = None  # the ring's slots oldest first: sorted only when an alert opens
        if self.n >= self.w and self.n % self.check_every == 0:
            medians = np.median(self.values[:filled], axis=0)
            self.rolling = {m: float(v) for m, v in zip(METRICS, medians, strict=True)}
            for i, metric in enumerate(METRICS):
                band = self.bands.get(metric)
                if band is None:
                    continue
                pos = band.position(float(medians[i]))
                for side, rule in ((-1, RULES[metric][0]), (1, RULES[metric][1])):
                    if rule is None:
                        continue
                    name, verb = rule
                    if pos == side and name not in self.active:
                        if order is None:
                            order = np.argsort(self.times[:filled], kind="stable")
                        out = [j for j in order if band.position(float(self.values[j, i])) == side]
                        since = float(self.times[out[0]]) if out else wall_s
                        events.append(self._open(name, since, (
                            f"camera {self.device_id} {verb} at {_clock(since)} ({metric} {medians[i]:.3g}, "
                            f"{band.source} band {band.low:.3g}-{band.high:.3g})"),
                            metric=metric, value=float(medians[i]), band=[band.low, band.high],
                            band_source=band.source))
                    elif pos != side and name in self.active:
                        events.append(self._close(name, wall_s, f"{metric} {medians[i]:.3g} back in band "
                                                  f"{band.low:.3g}-{band.high:.3g}"))
            share = float(self.frozen[:filled].mean())
            if share >= self.frozen_share and "frozen" not in self.active:
                if order is None:
                    order = np.argsort(self.times[:filled], kind="stable")
                first = [j for j in order if self.frozen[j]]
                since = float(self.times[first[0]]) if first else wall_s
                events.append(self._open("frozen", since, (
                    f"camera {self.device_id} froze at {_clock(since)} ({share:.0%} of the last {filled} frames "
                    "identical to the one before, while frames keep arriving)"), frozen_share=share))
            elif share < self.frozen_share and "frozen" in self.active:
                events.append(self._close("frozen", wall_s, f"{share:.0%} of the last {filled} frames identical"))
        if replaying and "replayed" not in self.active:
            events.append(self._open("replayed", wall_s, (
                f"camera {self.device_id} is replaying a {lag}-frame loop since {_clock(wall_s)} (each frame "
                f"repeats the one {lag} frames earlier while the picture keeps changing)"), lag=lag))
        elif not replaying and "replayed" in self.active:
            events.append(self._close("replayed", wall_s, "frames no longer repeat the loop"))
        return events

    def _open(self, name: str, since: float, message: str, **extra: Any) -> dict[str, Any]:
        event = {"type": f"camera_{name}", "message": message, "device": self.device_id, "since": _iso(since),
                 **extra}
        self.active[name] = {**event, "_since": since}
        return event

    def _close(self, name: str, now: float, why: str) -> dict[str, Any]:
        opened = self.active.pop(name)
        duration = max(0.0, now - float(opened["_since"]))
        return {"type": f"camera_{name}_cleared", "device": self.device_id, "since": opened["since"],
                "until": _iso(now), "duration_s": round(duration, 3),
                "message": f"camera {self.device_id} is no longer {name} after {duration:.0f} s ({why})"}

    def summary(self) -> dict[str, Any]:
        """Optional health-message fields: bands, the rolling medians they were judged on, open alerts."""
        out: dict[str, Any] = {"alerts": sorted(self.active)}
        if self.bands:
            out["bands"] = {m: [b.low, b.high] for m, b in self.bands.items()}
            out["band_source"] = next(iter(self.bands.values())).source
        if self.rolling:
            out["rolling"] = dict(self.rolling)
        return out
