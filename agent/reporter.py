"""A window's parts and how they go out: shared by the standalone agent and the in-process SDK.

Each part keeps its own window and builds its own body: latency (the stage
timings), robustness (the prober, fed by the probe worker's results), health
and drift (the monitor). :meth:`Reporter.emit` is "for each part: send its
body, then reset it"; :meth:`Reporter.collect` folds finished probe work in
between frames, and the probe stage's time (breaking-point searches included)
is recorded once, in the window the work finished in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from edgeprobe.agent.messages import Messenger
from edgeprobe.agent.monitor import Monitor
from edgeprobe.agent.probe_process import AnyWorker
from edgeprobe.agent.prober import Prober, ProbeResult
from edgeprobe.harness import schema
from edgeprobe.harness.latency import LatencyWindow
from edgeprobe.harness.stability import RobustnessRun


class Reporter:
    def __init__(self, messenger: Messenger, prober: Prober, worker: AnyWorker, monitor: Monitor,
                 latency_extras: Callable[[schema.LatencyBody], None],
                 status: Callable[[], dict[str, Any]], flags: Callable[[], list[str]]):
        self.messenger = messenger
        self.prober = prober
        self.worker = worker
        self.monitor = monitor
        self.latency = LatencyWindow()
        #: the run's robustness windows pooled, for the end-of-run summary
        zones = prober.cfg.risk_zones
        self.robustness_run = RobustnessRun(zones.at_risk, zones.broken)
        self._latency_extras = latency_extras
        self._status = status
        self._flags = flags

    def collect(self) -> int:
        """Fold finished probe work into this window (prober, monitor, the probe stage); returns frames probed."""
        probed = 0
        for result in self.worker.take():
            if isinstance(result, ProbeResult):
                self.prober.record(result)
                self.monitor.probed(result)  # exemplars come from the pixels the probe perturbed
                probed += 1
            else:
                self.prober.record_breaking(result)
            self.latency.add("probe", result.spent_ns)  # once, in the window the work finished in
        return probed

    def settle(self) -> int:
        """Collect the window's probes and start its breaking-point search when one is due.

        In wait mode the window waits for both, so its messages carry exactly its own frames' probes and the
        search; in drop mode the search runs while frames go on and lands in the window it finishes in.
        """
        if self.worker.wait:
            self.worker.drain()
        probed = self.collect()
        sample = self.prober.breaking_due()
        if sample is not None and self.worker.search(sample) and self.worker.wait:
            self.worker.drain()
            probed += self.collect()
        return probed

    def emit_tail(self, last: int, start: dt.datetime) -> int:
        """After the run's last window: probes (and a breaking-point search) that finished once it was sent.

        In drop mode a window is sent without waiting for its probes; the next window collects them, but the
        last window has none after it. What finished then goes out here, in one ``robustness`` message over no
        new frames (``frames: 0``, first and last the run's last frame), or nothing when nothing finished.
        Their probe time is not in a latency window: there is none left to carry it.
        """
        probed = self.collect()
        self._send_robustness(schema.Window(start_ts=start, end_ts=schema.utc_now(), first_frame=last,
                                            last_frame=last, frames=0))
        return probed

    def _send_robustness(self, window: schema.Window) -> None:
        robustness = self.prober.body(window)
        if robustness is not None:
            robustness.exemplars = self.monitor.fresh_exemplars()
            self.messenger.send("robustness", robustness)
            self.robustness_run.add(robustness)
        self.prober.reset()

    def emit(self, first: int, last: int, start: dt.datetime) -> int:
        """Each part sends its window body, then is reset; returns frames probed that were collected here."""
        probed = self.settle()
        window = schema.Window(start_ts=start, end_ts=schema.utc_now(), first_frame=first, last_frame=last,
                               frames=last - first + 1)
        latency = self.latency.body(window)
        if latency is not None:
            self._latency_extras(latency)
            self.messenger.send("latency", latency)
        self.latency.reset()
        self._send_robustness(window)
        self.messenger.send("health", self.monitor.health_body(window, self._status(), self._flags()))
        if self.monitor.cfg.enabled:
            drift, events = self.monitor.drift_body(window)
            self.messenger.send("drift", drift)
            for event in events:
                self.messenger.send("event", event)
        self.monitor.reset()
        return probed
