"""The collector process's own figures: what it received, stored and quarantined, how long commits take.

Process-local (each collector of a shared group is scraped on its own port and reports its own
share; counters restart at 0 with the process, which ``rate()`` handles), unlike the fleet
figures, which every collector reads from the shared database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edgeprobe.harness.schema import KINDS

#: batch commit seconds: a batch of hundreds of messages commits in milliseconds when healthy;
#: seconds mean the database is the bottleneck
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

COLLECTOR_METRICS = (
    "edgeprobe_collector_messages_received", "edgeprobe_collector_messages_stored",
    "edgeprobe_collector_messages_quarantined", "edgeprobe_collector_store_errors",
    "edgeprobe_collector_batch_commit_seconds", "edgeprobe_collector_queue_depth",
    "edgeprobe_collector_ingest_lag_seconds", "edgeprobe_collector_last_commit_timestamp_seconds",
)

_KNOWN = frozenset(KINDS)


def kind_of_topic(topic: str) -> str:
    """The kind a topic names (its last level), or "other" so a hostile topic cannot mint label values."""
    kind = topic.rpartition("/")[2]
    return kind if kind in _KNOWN else "other"


def new_commit_histogram() -> Histogram:
    return Histogram("edgeprobe_collector_batch_commit_seconds", "Seconds one batch took to validate and commit",
                     buckets=COMMIT_BUCKETS, registry=None)


class CollectorMetrics(Collector):
    """Reads a running :class:`~.service.Collector`'s stats at scrape time."""

    def __init__(self, collector: Any):
        self.collector = collector

    def collect(self) -> Iterator[Metric]:
        s = self.collector.stats
        received = CounterMetricFamily("edgeprobe_collector_messages_received",
                                       "Messages this collector received from the broker (redeliveries included)",
                                       labels=["kind"])
        for kind, n in sorted(s.received_by_kind.items()):
            received.add_metric([kind], float(n))
        yield received
        yield CounterMetricFamily("edgeprobe_collector_messages_stored", "Messages this collector stored for the "
                                  "first time", value=float(s.stored))
        yield CounterMetricFamily("edgeprobe_collector_messages_quarantined", "Messages this collector put in "
                                  "quarantine (failed validation)", value=float(s.quarantined))
        yield CounterMetricFamily("edgeprobe_collector_store_errors", "Batches whose commit failed and was retried",
                                  value=float(s.errors))
        yield from s.commit_seconds.collect()
        yield GaugeMetricFamily("edgeprobe_collector_queue_depth", "Messages received and not yet committed",
                                value=float(self.collector.queue_depth()))
        yield GaugeMetricFamily("edgeprobe_collector_ingest_lag_seconds", "Seconds the oldest message of the last "
                                "batch waited between arrival and commit", value=float(s.last_lag_s))
        last = GaugeMetricFamily("edgeprobe_collector_last_commit_timestamp_seconds",
                                 "Wall-clock time of the last committed batch (0: none yet)",
                                 value=float(s.last_commit_ts))
        yield last


def now() -> float:
    return time.time()
