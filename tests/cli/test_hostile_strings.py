"""Device-supplied strings reach the terminal as text, never as rich markup; optional figures may be missing.

A real store is filled with schema-valid messages whose names are markup
(``[/]``, ``[bold red]``), a flag with a comma, and a latency stage without a
histogram, then `fleet status`, `fleet cameras` and `summary` run as a user runs them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from edgeprobe.collector.store import Incoming, Store
from edgeprobe.harness import schema
from tests.conftest import run_cli

NOW = dt.datetime.now(dt.timezone.utc)
WINDOW = {"start_ts": NOW.isoformat(), "end_ts": NOW.isoformat(), "first_frame": 0, "last_frame": 9, "frames": 10}
MARKUP = "[/]"
FLAG = "[bold red]dark, really[/bold red]"


def _msg(kind: str, seq: int, body: dict) -> Incoming:
    m = schema.make_envelope(kind=kind, device_id="cam-1", fleet="f", session_id="s", seq=seq, body=body,
                             model_sha256="a" * 64, config_sha256="b" * 64)
    return Incoming(schema.topic_for("f", "cam-1", kind), schema.encode(m), NOW)


@pytest.fixture(scope="module")
def hostile_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / "fleet.db"
    store = Store(path)
    stage = {"count": 5, "p50": 1.0, "p90": 1.0, "p95": 1.0, "p99": 1.0, "max": 1.0, "mean": 1.0, "stdev": 0.0,
             "hdr": ""}
    cell = {"perturbation": MARKUP, "severity": 1.0, "n": 10, "unstable": 5, "fraction": 0.5, "ci_low": 0.2,
            "ci_high": 0.8, "mean_disagreement": 0.5}
    batch = [
        _msg("birth", 0, {"model": {}, "source": {}, "host": {}, "capabilities": {}}),
        _msg("latency", 1, {"window": WINDOW, "warmup_runs": 0, "stages": {MARKUP: stage, "e2e": stage}}),
        _msg("robustness", 2, {"window": WINDOW, "frames_probed": 10, "seed": 0, "cells": [cell]}),
        _msg("health", 3, {"window": WINDOW, "fps": 10, "brightness": 3, "contrast": 1, "sharpness": 1,
                           "clipped": 0, "frozen_frames": 0, "spool_queued": 0, "spool_dropped": 0,
                           "flags": [MARKUP, FLAG]}),
    ]
    assert store.ingest(batch) == (4, 0)
    store.close()
    return path


@pytest.mark.parametrize("args", [("fleet", "status"), ("fleet", "cameras"), ("fleet", "cameras", "--unhealthy")])
def test_fleet_commands_print_markup_names_as_text(hostile_db: Path, args: tuple[str, ...]) -> None:
    r = run_cli(*args, "--db", str(hostile_db))
    assert r.returncode == 0, r.stderr
    assert MARKUP in r.stdout and "Traceback" not in r.stderr
    r = run_cli(*args, "--db", str(hostile_db), "--json")
    rows = next(iter(v for k, v in json.loads(r.stdout).items() if isinstance(v, list)))
    assert sorted(rows[0]["camera_flags"]) == sorted([MARKUP, FLAG])  # the comma did not split the flag


def test_summary_prints_markup_names_and_a_stage_without_histogram(hostile_db: Path) -> None:
    r = run_cli("summary", "--db", str(hostile_db))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "KeyError" not in r.stderr
    assert r.stdout.count(MARKUP) >= 2  # the stage and the perturbation (rich may wrap the flag cell)


def test_render_summary_tolerates_rows_missing_optional_figures() -> None:
    from rich.console import Console

    from edgeprobe.cli.commands.summary import render_summary

    console = Console(record=True, width=200)
    render_summary({"database": "x.db", "kinds": {"latency": 1}, "quarantined": 0,
                    "devices": [{"device_id": MARKUP}],
                    "latency": [{"device_id": MARKUP, "stage": MARKUP, "count": 3}],
                    "robustness": [{"device_id": MARKUP, "perturbation": MARKUP}],
                    "health": [{"device_id": MARKUP, "flags": [FLAG]}]}, console)
    text = console.export_text()
    assert text.count(MARKUP) >= 4 and "dark, really" in text
