"""/metrics as Prometheus users expect it, checked by Prometheus' own linter (promtool from Debian's prometheus).

The exporter's output from a store holding every kind of message, plus a real collector's own
figures, must pass ``promtool check metrics`` (base units, ``_total`` counters, summary quantiles).
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.fleet_synth import stream
from edgeprobe.collector.prometheus import FLEET_METRICS, registry_for
from edgeprobe.collector.selfmetrics import COLLECTOR_METRICS
from edgeprobe.collector.service import Collector
from edgeprobe.collector.store import Incoming, Store
from edgeprobe.harness import schema

START = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.timezone.utc)
PROMTOOL = shutil.which("promtool")


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_exposition(tmp_path_factory.mktemp("prom") / "fleet.db")


def build_exposition(path: Path) -> str:
    """/metrics of a store holding every kind of message, with a real (unstarted) collector's own figures."""
    store = Store(path)
    for tick in stream(2, START, hours=0.5, every_s=300):
        store.ingest(tick)
    verdict = schema.make_envelope(kind="verdict", device_id="cam-0000", fleet="bench", session_id="s", seq=999,
                                   body={"suite": "acceptance", "status": "fail", "exit_code": 1}, ts=START,
                                   model_sha256="a" * 64, config_sha256="b" * 64)
    store.ingest([Incoming(schema.topic_for("bench", "cam-0000", "verdict"), schema.encode(verdict), START)])
    collector = Collector(store, "127.0.0.1", 1)  # never started: its figures are the zeros of a fresh process
    collector.stats.received_by_kind["health"] += 3
    collector.stats.commit_seconds.observe(0.004)
    text = generate_latest(registry_for(path, collector)).decode()
    store.close()
    return text


def test_promtool_check_metrics_passes(exposition: str) -> None:
    if PROMTOOL is None:
        pytest.skip("promtool is missing (make prometheus installs Debian's prometheus package)")
    r = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_exported_family_is_declared_and_present(exposition: str) -> None:
    # (prometheus_client adds a histogram's _created time as a family of its own in the text format)
    names = {f.name for f in text_string_to_metric_families(exposition)} - {
        "edgeprobe_collector_batch_commit_seconds_created"}
    assert names == set(FLEET_METRICS) | set(COLLECTOR_METRICS)
    samples = {s.name: s for f in text_string_to_metric_families(exposition) for s in f.samples}
    assert "edgeprobe_latency_seconds_count" in samples and "edgeprobe_collector_messages_received_total" in samples
    verdicts = {(s.labels["status"], s.value) for f in text_string_to_metric_families(exposition)
                if f.name == "edgeprobe_verdict_status" for s in f.samples}
    assert ("fail", 1.0) in verdicts and ("pass", 0.0) in verdicts
