"""deploy/prometheus/alerts.yml passes promtool's checks and unit tests; every alert and Grafana panel names
a series the collector exports (so a renamed metric cannot silently blank a panel or disarm an alert)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.collector.test_prometheus import build_exposition
from tests.conftest import REPO

PROM = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "edgeprobe-fleet.json"
PROMTOOL = shutil.which("promtool")
NAME = re.compile(r"\bedgeprobe_[a-z0-9_]+")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    text = build_exposition(tmp_path_factory.mktemp("rules") / "fleet.db")
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if PROMTOOL is None:
        pytest.skip("promtool is missing (make prometheus installs Debian's prometheus package)")
    return subprocess.run([PROMTOOL, *args], cwd=PROM, capture_output=True, text=True, timeout=120)


def test_promtool_check_rules() -> None:
    r = _promtool("check", "rules", "alerts.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 6 rules found" in r.stdout


def test_promtool_test_rules() -> None:
    r = _promtool("test", "rules", "alerts_test.yml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_alerts_name_only_exported_series(exported: set[str]) -> None:
    rules = [r for g in yaml.safe_load((PROM / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == {
        "EdgeprobeCameraOffline", "EdgeprobeCameraUnhealthy", "EdgeprobeBreakingPointFell",
        "EdgeprobeLatencyBudgetBurnt", "EdgeprobeSpoolDropping", "EdgeprobeCollectorLagging"}
    for r in rules:
        names = set(NAME.findall(r["expr"]))
        assert names and names <= exported, (r["alert"], names - exported)


def test_grafana_dashboard_queries_name_exported_series(exported: set[str]) -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["panels"] and dash["uid"] == "edgeprobe-fleet"
    named: set[str] = set()
    for panel in dash["panels"]:
        exprs = [t["expr"] for t in panel["targets"]]
        assert exprs, panel["title"]
        for e in exprs:
            names = set(NAME.findall(e))
            assert names, (panel["title"], e)
            assert names <= exported, (panel["title"], names - exported)
            named |= names
    # the dashboard shows the collector itself, not only the cameras
    assert any(n.startswith("edgeprobe_collector_") for n in named)
