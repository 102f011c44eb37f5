"""The fleet's figures in Prometheus text format, read from the database at scrape time.

A custom collector (not counters updated on ingest) so that every collector
process in a shared-subscription group, or a separate read-only exporter,
serves the same figures: the database is the one source of truth.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from . import queries
from .store import quarantine_stats

#: camera-health flags exported as one 0/1 series each, so alerts can name the flag
KNOWN_FLAGS = ("dark", "overexposed", "blurry", "low_contrast", "frozen")


class FleetMetrics(Collector):
    def __init__(self, db_path: str | Path):
        self.db_path = str(db_path)
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            db = sqlite_utils.Database(self.db_path)
            try:
                yield from self._families(db)
            finally:
                db.close()

    def _families(self, db: sqlite_utils.Database) -> Iterator[Metric]:
        labels = ["device_id", "fleet"]
        online = GaugeMetricFamily("edgeprobe_device_online", "1 if the device's last lifecycle message was a birth",
                                   labels=labels)
        seen = GaugeMetricFamily("edgeprobe_device_last_seen_timestamp_seconds",
                                 "Timestamp of the newest message from the device", labels=labels)
        missing = GaugeMetricFamily("edgeprobe_device_seq_missing", "Messages the device numbered that never arrived",
                                    labels=labels)
        dropped = GaugeMetricFamily("edgeprobe_spool_dropped", "Messages the device's spool dropped when full",
                                    labels=labels)
        latency = GaugeMetricFamily("edgeprobe_latency_ms", "Latency percentile over all stored windows (merged "
                                    "histograms)", labels=[*labels, "stage", "quantile"])
        unstable = GaugeMetricFamily("edgeprobe_unstable_fraction", "Share of probed frames whose prediction changed",
                                     labels=[*labels, "perturbation", "severity"])
        flags = GaugeMetricFamily("edgeprobe_camera_flag", "1 if the latest health window raised this flag",
                                  labels=[*labels, "flag"])
        fleets = {}
        for d in queries.devices(db):
            dev, fleet = d["device_id"], d["fleet"] or ""
            fleets[dev] = fleet
            online.add_metric([dev, fleet], float(d["online"] or 0))
            if d["last_seen"]:
                seen.add_metric([dev, fleet], dt.datetime.fromisoformat(d["last_seen"]).timestamp())
            missing.add_metric([dev, fleet], float(d["seq_missing"] or 0))
        for dev, h in queries.latest_health(db).items():
            fleet = fleets.get(dev, "")
            dropped.add_metric([dev, fleet], float(h["spool_dropped"] or 0))
            for flag in sorted(set(KNOWN_FLAGS) | set(h["flags"])):
                flags.add_metric([dev, fleet, flag], float(flag in h["flags"]))
        for r in queries.latency_summary(db):
            for q in ("p50", "p90", "p95", "p99", "max"):
                if q in r:
                    latency.add_metric([r["device_id"], fleets.get(r["device_id"], ""), r["stage"], q], float(r[q]))
        for r in queries.robustness_summary(db):
            unstable.add_metric([r["device_id"], fleets.get(r["device_id"], ""), r["perturbation"],
                                 f"{r['severity']:g}"], float(r["fraction"]))
        qstats = quarantine_stats(db.conn)
        quarantined = GaugeMetricFamily("edgeprobe_quarantined_messages",
                                        "Messages quarantined and still kept (repeats of one payload included)")
        quarantined.add_metric([], float(qstats["messages"]))
        q_dropped = CounterMetricFamily("edgeprobe_quarantine_dropped_rows",
                                        "Quarantine rows dropped, oldest first, to keep it under its row and byte caps")
        q_dropped.add_metric([], float(qstats["dropped"]))
        yield from (online, seen, missing, dropped, latency, unstable, flags, quarantined, q_dropped)


def registry_for(db_path: str | Path) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetMetrics(db_path))
    return registry


def serve_metrics(db_path: str | Path, port: int, host: str = "127.0.0.1") -> None:
    """Serve /metrics from a daemon thread for as long as the process runs."""
    start_http_server(port, addr=host, registry=registry_for(db_path))
