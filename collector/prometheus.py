"""The fleet's figures in Prometheus text format, as Prometheus users expect them.

Fleet figures are read at scrape time from what ingest maintains (collector/rollups.py:
one row set per device, never history), so every collector process in a shared group, or
a separate read-only exporter, serves the same figures: the database is the one source of
truth. Conventions (https://prometheus.io/docs/practices/naming/): base units
(``_seconds``), counters end in ``_total``, latency is a summary whose quantiles are the
device's last window and whose ``_sum``/``_count`` are cumulative, flags are one 0/1 series
per known flag so "not raised" is a 0 rather than a missing series. The collector process
adds its own figures (received, stored, quarantined, batch commit time, queue depth, lag)
from :mod:`.selfmetrics`.
"""

from __future__ import annotations

import datetime as dt
import platform
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edgeprobe.collector import queries
from edgeprobe.collector.rollups import KNOWN_FLAGS
from edgeprobe.collector.store import quarantine_stats

#: the quantiles of the latency summary (each device's last window, computed exactly by the agent)
QUANTILES = (("0.5", "p50_ms"), ("0.9", "p90_ms"), ("0.99", "p99_ms"))
#: the statuses a suite verdict can take, exported as one 0/1 series each
VERDICT_STATUSES = ("pass", "fail", "inconclusive", "error")

#: every metric family the fleet exporter can emit (dashboards and alerts are checked against this)
FLEET_METRICS = (
    "edgeprobe_build_info", "edgeprobe_device_online", "edgeprobe_device_last_seen_timestamp_seconds",
    "edgeprobe_device_ingest_lag_seconds", "edgeprobe_seq_gaps", "edgeprobe_spool_dropped",
    "edgeprobe_spool_queued", "edgeprobe_messages_stored", "edgeprobe_latency_seconds", "edgeprobe_fps",
    "edgeprobe_camera_brightness", "edgeprobe_camera_contrast", "edgeprobe_camera_sharpness",
    "edgeprobe_camera_flag", "edgeprobe_health_window_timestamp_seconds", "edgeprobe_unstable_ratio",
    "edgeprobe_breaking_point_severity", "edgeprobe_drift_psi", "edgeprobe_output_drift", "edgeprobe_input_drift",
    "edgeprobe_verdict_status", "edgeprobe_quarantined_messages", "edgeprobe_quarantine_dropped_rows",
)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edgeprobe")
    except PackageNotFoundError:
        return "unknown"


class FleetMetrics(Collector):
    """Fleet figures from the store; ``open_reader`` returns (reader, close) for one scrape."""

    def __init__(self, open_reader: Callable[[], tuple[queries.Reader, Callable[[], None]]]):
        self.open_reader = open_reader
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            db, close = self.open_reader()
            try:
                yield from self._families(db)
            finally:
                close()

    def _families(self, db: queries.Reader) -> Iterator[Metric]:
        build = GaugeMetricFamily("edgeprobe_build_info", "edgeprobe version of this exporter (always 1)",
                                  labels=["version", "python"])
        build.add_metric([_version(), platform.python_version()], 1.0)
        yield build
        labels = ["device_id", "fleet"]

        def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*labels, *extra])

        def counter(name: str, doc: str, extra: tuple[str, ...] = ()) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=[*labels, *extra])

        online = gauge("edgeprobe_device_online", "1 if the device's last lifecycle message was a birth")
        seen = gauge("edgeprobe_device_last_seen_timestamp_seconds", "Device timestamp of its newest message")
        lag = gauge("edgeprobe_device_ingest_lag_seconds",
                    "Seconds from the device stamping its newest message to the collector receiving it")
        gaps = counter("edgeprobe_seq_gaps", "Messages the device numbered that have not arrived (falls if late "
                                             "ones do)")
        fleets: dict[str, str] = {}
        for d in queries.devices(db):
            dev, fleet = d["device_id"], d["fleet"] or ""
            fleets[dev] = fleet
            online.add_metric([dev, fleet], float(d["online"] or 0))
            if d["last_seen"]:
                seen.add_metric([dev, fleet], dt.datetime.fromisoformat(d["last_seen"]).timestamp())
            gaps.add_metric([dev, fleet], float(max(0, d["seq_missing"] or 0)))
        yield from (online, seen, gaps)

        def lab(dev: str, *rest: str) -> list[str]:
            return [dev, fleets.get(dev, ""), *rest]

        stored = counter("edgeprobe_messages_stored", "Messages stored (each msg_id once)", ("kind",))
        for dev, kind, n in queries.kinds_per_device(db):
            stored.add_metric(lab(dev, kind), float(n))
        yield stored

        dropped = counter("edgeprobe_spool_dropped", "Messages the device's spool dropped when full")
        queued = gauge("edgeprobe_spool_queued", "Messages waiting in the device's spool (last health window)")
        fps = gauge("edgeprobe_fps", "Frames per second in the last health window")
        bright = gauge("edgeprobe_camera_brightness", "Mean grey level (0-255) in the last health window")
        contrast = gauge("edgeprobe_camera_contrast", "Grey-level standard deviation in the last health window")
        sharp = gauge("edgeprobe_camera_sharpness", "Variance of the Laplacian in the last health window")
        flags = gauge("edgeprobe_camera_flag", "1 if the last health window raised this flag", ("flag",))
        hts = gauge("edgeprobe_health_window_timestamp_seconds", "Device timestamp of the last health window")
        psi = gauge("edgeprobe_drift_psi", "Largest output PSI against the reference in the last drift window")
        out_d = gauge("edgeprobe_output_drift", "1 if the last drift window found output drift")
        in_d = gauge("edgeprobe_input_drift", "1 if the last drift window found the inputs moved")
        for dev, s in queries.device_state(db).items():
            if s["ingest_lag_s"] is not None:
                lag.add_metric(lab(dev), float(s["ingest_lag_s"]))
            if s["health_ts"] is not None:
                dropped.add_metric(lab(dev), float(s["spool_dropped"] or 0))
                queued.add_metric(lab(dev), float(s["spool_queued"] or 0))
                for fam, key in ((fps, "fps"), (bright, "brightness"), (contrast, "contrast"), (sharp, "sharpness")):
                    if s[key] is not None:
                        fam.add_metric(lab(dev), float(s[key]))
                hts.add_metric(lab(dev), float(s["health_ts"]))
                for flag in sorted(set(KNOWN_FLAGS) | set(s["flags"])):
                    flags.add_metric(lab(dev, flag), float(flag in s["flags"]))
            if s["drift_ts"] is not None:
                if s["drift_psi"] is not None:
                    psi.add_metric(lab(dev), float(s["drift_psi"]))
                if s["output_drift"] is not None:
                    out_d.add_metric(lab(dev), float(s["output_drift"]))
                if s["input_drift"] is not None:
                    in_d.add_metric(lab(dev), float(s["input_drift"]))
        yield from (lag, dropped, queued, fps, bright, contrast, sharp, flags, hts, psi, out_d, in_d)

        latency = Metric("edgeprobe_latency_seconds", "Per-stage latency: quantiles of the last window, "
                         "cumulative sum and count", "summary")
        for r in queries.latest_latency(db):
            base = {"device_id": r["device_id"], "fleet": fleets.get(r["device_id"], ""), "stage": r["stage"]}
            for q, key in QUANTILES:
                if r[key] is not None:
                    latency.add_sample("edgeprobe_latency_seconds", {**base, "quantile": q}, r[key] / 1000.0)
            latency.add_sample("edgeprobe_latency_seconds_sum", base, float(r["total_ms"]) / 1000.0)
            latency.add_sample("edgeprobe_latency_seconds_count", base, float(r["total_count"]))
        yield latency

        unstable = gauge("edgeprobe_unstable_ratio", "Share of probed frames whose prediction changed, last "
                                                     "robustness window", ("perturbation", "severity"))
        for r in queries.latest_robustness(db):
            if r["fraction"] is not None:
                unstable.add_metric(lab(r["device_id"], r["perturbation"], f"{r['severity']:g}"),
                                    float(r["fraction"]))
        breaking = gauge("edgeprobe_breaking_point_severity", "Smallest severity that broke the model in the last "
                                                              "bisection (absent: never broke up to 5)",
                         ("perturbation",))
        for r in queries.latest_breaking_points(db):
            if r["severity"] is not None:
                breaking.add_metric(lab(r["device_id"], r["perturbation"]), float(r["severity"]))
        verdict = gauge("edgeprobe_verdict_status", "1 for the status of the suite's last verdict", ("suite",
                                                                                                     "status"))
        for r in queries.latest_verdicts(db):
            for st in sorted(set(VERDICT_STATUSES) | ({r["status"]} if r["status"] else set())):
                verdict.add_metric(lab(r["device_id"], r["suite"], st), float(st == r["status"]))
        yield from (unstable, breaking, verdict)
        qstats = quarantine_stats(db)
        quarantined = GaugeMetricFamily("edgeprobe_quarantined_messages",
                                        "Messages quarantined and still kept (repeats of one payload included)")
        quarantined.add_metric([], float(qstats["messages"]))
        q_dropped = CounterMetricFamily("edgeprobe_quarantine_dropped_rows",
                                        "Quarantine rows dropped, oldest first, to keep it under its row and byte caps")
        q_dropped.add_metric([], float(qstats["dropped"]))
        yield from (quarantined, q_dropped)


def db_reader(db: str | Path) -> Callable[[], tuple[Any, Callable[[], None]]]:
    """A read-only connection per scrape, to a SQLite file or a PostgreSQL URL (collector/backend.py)."""
    def open_reader() -> tuple[Any, Callable[[], None]]:
        from edgeprobe.collector.backend import connect

        conn = connect(db, readonly=True)
        return conn.db, conn.close

    return open_reader


def registry_for(db_path: str | Path, collector: Any = None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetMetrics(db_reader(db_path)))
    if collector is not None:
        from edgeprobe.collector.selfmetrics import CollectorMetrics

        registry.register(CollectorMetrics(collector))
    return registry


def serve_metrics(db_path: str | Path, port: int, host: str = "127.0.0.1", collector: Any = None) -> None:
    """Serve /metrics from a daemon thread for as long as the process runs."""
    start_http_server(port, addr=host, registry=registry_for(db_path, collector))
