"""`edgeprobe baseline record` and the agent's use of it, through the real CLI; bad input is one sentence, exit 2."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import cv2
import pytest
import yaml

from tests.conftest import assert_clean_error, demo_config, run_cli


def _spooled(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])


@pytest.fixture
def recorded(tmp_path: Path, orientation_model: Path, short_clip: Path,
             write_config: Callable[..., Path]) -> tuple[Path, Path]:
    cfg = write_config(demo_config(orientation_model, short_clip, tmp_path / "spool.db",
                                   monitor={"drift": {"window_frames": 30, "min_frames": 20}}))
    out = tmp_path / "baseline.json"
    proc = run_cli("baseline", "record", "-c", str(cfg), "-o", str(out), "--max-frames", "50", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 50 and summary["rows"] == 50
    assert summary["model_sha256"] == hashlib.sha256(orientation_model.read_bytes()).hexdigest()
    return cfg, out


def test_record_then_run_against_it(recorded: tuple[Path, Path], tmp_path: Path,
                                    write_config: Callable[..., Path]) -> None:
    cfg, out = recorded
    data = json.loads(out.read_text())
    assert data["format"] == "edgeprobe-baseline/1" and data["frames"] == 50
    assert sum(data["classes"].values()) == 50 and len(data["rows"]["brightness"]) == 50
    assert len(data["vector"]["mean"]) == 4  # the classifier's four orientation probabilities
    assert out.stat().st_size < 64_000
    config = yaml.safe_load(cfg.read_text())
    config["monitor"]["baseline"] = str(out)
    # Health (and the drift windows it feeds) sampled on every frame, so 40 frames complete a drift window.
    config["monitor"].setdefault("health", {})["every_n_frames"] = 1
    run = run_cli("run", "-c", str(write_config(config, "with-baseline.yaml")), "--max-frames", "40", "--json")
    assert run.returncode == 0, run.stderr
    monitor = json.loads(run.stdout)["monitor"]
    assert monitor["reference"] == "baseline"
    assert set(monitor["bands"]) >= {"brightness", "sharpness", "noise"}
    assert monitor["drift"]["attribution"] in ("none", "scene_or_model")  # same camera, same clip
    assert monitor["health"]["noise"] > 0 and monitor["temporal"]["counted"] > 0


def test_baseline_of_another_model_is_refused_and_nothing_measured_is_lost(
        recorded: tuple[Path, Path], tmp_path: Path, write_config: Callable[..., Path]) -> None:
    cfg, out = recorded
    first = run_cli("run", "-c", str(cfg), "--max-frames", "20")  # measure something; it waits in the spool
    assert first.returncode == 0, first.stderr
    spool = tmp_path / "spool.db"
    before = _spooled(spool)
    assert before > 0
    data = json.loads(out.read_text())
    data["model_sha256"] = hashlib.sha256(b"another model").hexdigest()
    other = tmp_path / "other-model.json"
    other.write_text(json.dumps(data))
    config = yaml.safe_load(cfg.read_text())
    config["monitor"]["baseline"] = str(other)
    proc = run_cli("run", "-c", str(write_config(config, "other.yaml")), "--max-frames", "5")
    assert_clean_error(proc, r"baseline .*other-model.json was recorded with model sha256 [0-9a-f]{12}\.\.\. but this "
                       r"agent runs [0-9a-f]{12}\.\.\.; record a new baseline")
    assert _spooled(spool) == before


@pytest.mark.parametrize("content, pattern", [
    (b"\x00\xff not json", r"cannot read baseline file .*bad.json"),
    (b'{"format": "edgeprobe-baseline/1", "rows": {}}', r"baseline file .*bad.json is not usable: it is incomplete"),
    (None, r"baseline file .*bad.json does not exist; record one with `edgeprobe baseline record"),
])
def test_unreadable_baseline_files(tmp_path: Path, orientation_model: Path, short_clip: Path,
                                   write_config: Callable[..., Path], content: bytes | None, pattern: str) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_bytes(content)
    cfg = write_config(demo_config(orientation_model, short_clip, tmp_path / "s.db", monitor={"baseline": str(bad)}))
    assert_clean_error(run_cli("run", "-c", str(cfg), "--max-frames", "2"), pattern)


@pytest.mark.parametrize("key, value, pattern", [
    ("ks_threshold", 1.5, r"line \d+: monitor\.drift\.ks_threshold: Expected `float` <= 1"),
    ("input_outside_band", -0.1, r"line \d+: monitor\.drift\.input_outside_band: Expected `float` >= 0"),
    ("psi_threshold", 0, r"monitor\.drift\.psi_threshold: Expected `float` > 0"),
])
def test_thresholds_out_of_range(tmp_path: Path, orientation_model: Path, short_clip: Path,
                                 write_config: Callable[..., Path], key: str, value: float, pattern: str) -> None:
    cfg = write_config(demo_config(orientation_model, short_clip, tmp_path / "s.db",
                                   monitor={"drift": {key: value}}))
    assert_clean_error(run_cli("run", "-c", str(cfg), "--max-frames", "2"), pattern)


def test_empty_frame_sample_and_unwritable_output(tmp_path: Path, orientation_model: Path,
                                                  write_config: Callable[..., Path]) -> None:
    empty = tmp_path / "empty.avi"
    writer = cv2.VideoWriter(str(empty), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    writer.release()
    cfg = write_config(demo_config(orientation_model, empty, tmp_path / "s.db"))
    assert_clean_error(run_cli("baseline", "record", "-c", str(cfg), "-o", str(tmp_path / "b.json")), r"no frames")
    assert not (tmp_path / "b.json").exists()
    folder = tmp_path / "no-images"
    folder.mkdir()
    cfg2 = write_config(demo_config(orientation_model, folder, tmp_path / "s.db"), "folder.yaml")
    assert_clean_error(run_cli("baseline", "record", "-c", str(cfg2), "-o", str(tmp_path / "b.json")),
                       r"holds no images")
    assert_clean_error(run_cli("baseline", "record", "-c", str(cfg), "-o", str(tmp_path / "nope" / "b.json")),
                       r"folder .*nope does not exist")


def test_a_run_too_short_for_a_drift_verdict_says_so(tmp_path: Path, orientation_model: Path, short_clip: Path,
                                                     write_config: Callable[..., Path]) -> None:
    cfg = write_config(demo_config(orientation_model, short_clip, tmp_path / "s.db"))
    run = run_cli("run", "-c", str(cfg), "--max-frames", "20", "--json")
    assert run.returncode == 0, run.stderr
    drift = json.loads(run.stdout)["monitor"]["drift"]
    assert drift["attribution"] is None and drift["message"].startswith("no drift verdict yet: ")
    assert "monitor.health.every_n_frames" in drift["message"]
