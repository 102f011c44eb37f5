"""Realistic fleet messages without running agents: what a device sends, window by window.

Used by benchmarks/fleet.py (1,000 devices x 30 days through the real store) and by the
collector tests (rollups checked against the raw rows they summarise). Latency windows carry
real HdrHistograms built by the harness from drawn samples, robustness windows real cells with
Wilson intervals, health windows camera statistics and flags, every kind with its envelope.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgeprobe.collector.store import Incoming
from edgeprobe.harness import schema
from edgeprobe.harness.latency import summarize_ns
from edgeprobe.harness.stability import wilson_interval

STAGES = ("decode", "preprocess", "inference", "postprocess", "e2e")
CELLS = (("gaussian_noise", 1.0), ("gaussian_noise", 5.0), ("jpeg", 3.0))
BIRTH = {"model": {}, "source": {}, "host": {}, "capabilities": {}}
MODEL_SHA, CONFIG_SHA = "a" * 64, "b" * 64


class Device:
    """One camera's message stream: seq numbers, timestamps and figures that drift a little."""

    def __init__(self, device_id: str, fleet: str = "bench", seed: int = 0, samples: int = 50):
        self.device_id, self.fleet = device_id, fleet
        self.rng = random.Random(seed)
        self.np_rng = np.random.default_rng(seed)
        self.seq = 0
        self.session = uuid.uuid4().hex[:16]
        self.samples = samples
        self._hdr_pool: list[dict[str, Any]] = []
        self.windows_sent = 0

    def _msg(self, kind: str, body: dict[str, Any], ts: dt.datetime) -> Incoming:
        env = schema.make_envelope(kind=kind, device_id=self.device_id, fleet=self.fleet, session_id=self.session,
                                   seq=self.seq, body=body, ts=ts,
                                   model_sha256=MODEL_SHA, config_sha256=CONFIG_SHA)
        self.seq += 1
        return Incoming(schema.topic_for(self.fleet, self.device_id, kind), schema.encode(env), ts)

    def _window(self, ts: dt.datetime, span_s: float, frames: int) -> dict[str, Any]:
        return {"start_ts": (ts - dt.timedelta(seconds=span_s)).isoformat(), "end_ts": ts.isoformat(),
                "first_frame": self.seq * frames, "last_frame": self.seq * frames + frames - 1, "frames": frames}

    def _stages(self) -> dict[str, Any]:
        # Summaries are expensive to build (real histograms); a pool of 16 per device, drawn from, keeps a
        # synthetic month cheap while every window still carries a real, mergeable histogram.
        if len(self._hdr_pool) < 16:
            base = self.rng.uniform(5e6, 30e6)
            stages = {}
            for st in STAGES:
                ns = self.np_rng.gamma(4.0, base / 4.0 * (2.5 if st == "e2e" else 1.0), self.samples)
                s = summarize_ns(ns.astype(np.int64), with_intervals=False)
                stages[st] = {k: getattr(s, k) for k in ("count", "p50", "p90", "p95", "p99", "max", "mean",
                                                         "stdev", "hdr")}
            self._hdr_pool.append(stages)
            return stages
        return self.rng.choice(self._hdr_pool)

    def birth(self, ts: dt.datetime) -> Incoming:
        return self._msg("birth", BIRTH, ts)

    def windows(self, ts: dt.datetime, span_s: float = 10.0, frames: int = 100) -> list[Incoming]:
        """One reporting window: latency, robustness and health (drift and verdicts now and then)."""
        w = self._window(ts, span_s, frames)
        out = [self._msg("latency", {"window": w, "warmup_runs": 0, "stages": self._stages()}, ts)]
        cells = []
        for pert, sev in CELLS:
            n = 10
            unstable = sum(self.rng.random() < sev / 10 for _ in range(n))
            lo, hi = wilson_interval(unstable, n)
            cells.append({"perturbation": pert, "severity": sev, "n": n, "unstable": unstable,
                          "fraction": unstable / n, "ci_low": lo, "ci_high": hi, "mean_disagreement": 0.1})
        bps = [{"perturbation": "gaussian_noise", "severity": round(self.rng.uniform(1, 5), 2)}]
        out.append(self._msg("robustness", {"window": w, "frames_probed": 10, "seed": 0, "cells": cells,
                                            "breaking_points": bps}, ts))
        dark = self.rng.random() < 0.05
        out.append(self._msg("health", {
            "window": w, "fps": self.rng.uniform(9, 11), "brightness": 5.0 if dark else self.rng.uniform(90, 140),
            "contrast": self.rng.uniform(30, 60), "sharpness": self.rng.uniform(100, 400), "clipped": 0.01,
            "frozen_frames": 0, "spool_queued": 0, "spool_dropped": 0, "flags": ["dark"] if dark else [],
            "noise": 1.5, "occlusion": 0.0, "alerts": ["dark"] if dark else []}, ts))
        self.windows_sent += 1
        if self.windows_sent % 6 == 1:  # drift once a minute at the default 10 s windows
            out.append(self._msg("drift", {"window": w, "outputs": {"classes": {"psi": self.rng.uniform(0, 0.4)}},
                                           "output_drift": False, "input_drift": False, "attribution": "none"}, ts))
        return out


def stream(devices: int, start: dt.datetime, hours: float, every_s: float = 10.0,
           seed: int = 0, prefix: str = "cam-") -> Iterator[list[Incoming]]:
    """Each reporting tick's messages from every device, oldest tick first (births first)."""
    fleet = [Device(f"{prefix}{i:04d}", seed=seed * 100_003 + i) for i in range(devices)]
    yield [d.birth(start) for d in fleet]
    ticks = int(hours * 3600 / every_s)
    for t in range(1, ticks + 1):
        ts = start + dt.timedelta(seconds=t * every_s)
        yield [m for d in fleet for m in d.windows(ts, every_s)]
