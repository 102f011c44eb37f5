"""`make demo`'s main job, as a user runs it: broker, collector, agent, summary and suite, on the bundled example.

The demo is what a newcomer sees first, so what the README promises of it is
checked here on the real thing (real mosquitto, the real model and video,
the example config and suite), not on a trimmed copy that could drift apart.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import pytest
from junitparser import JUnitXml

from tests.conftest import run_cli


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    out = tmp_path_factory.mktemp("demo")
    proc = run_cli("demo", "--out", str(out), timeout=300, env={"COLUMNS": "200"})
    # Exit 0: the demo ran; its suite failing one check on purpose (JPEG at the model's scale) is part of the show.
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, out


def test_summary_reports_every_part_of_the_mission(demo: tuple[str, Path]) -> None:
    text, _ = demo
    assert "300 frames in" in text and "0 message(s) left in the spool" in text
    for stage in ("decode", "preprocess", "inference", "postprocess", "e2e", "probe"):
        assert f"│ {stage}" in text, stage
    for perturbation in ("gaussian_noise", "gaussian_blur", "pixel_dropout"):
        assert f"breaking point {perturbation}: " in text
    assert "relation rotate90: " in text and "relation translate: " in text
    assert "camera health (last window, bands learned from the first frames)" in text
    assert "drift against the learned reference" in text
    # The deliberate failure is deterministic (seeded probes on a fixed frame set); the two latency checks
    # judge this machine's pace, so on a loaded one they may also fail or stay inconclusive: the headline
    # counts them and the JPEG failure is there either way.
    assert "FAIL: " in text and " of 8 checks not passed (" in text and "jpeg_compression @ severity 5" in text

def test_database_and_reports_are_where_the_summary_says(demo: tuple[str, Path]) -> None:
    text, out = demo
    db = out / "fleet.db"
    assert str(db) in text.replace("\n", "")
    with sqlite3.connect(db) as conn:
        kinds = dict(conn.execute("SELECT kind, COUNT(*) FROM messages GROUP BY kind").fetchall())
        quarantined = conn.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]
        bodies = {kind: [json.loads(b) for (b,) in conn.execute(
            "SELECT body FROM messages WHERE kind = ? ORDER BY seq", (kind,))] for kind in ("latency", "robustness")}
    # Windows close after 100 frames or 10 s, whichever comes first, so a slow (loaded) machine may cut more
    # of them: what must hold is that they tile the 300 measured frames, none over 100, and that every
    # window reports latency, health and drift, and the 60 probed frames (one in five) are all accounted for.
    frames = [b["window"]["frames"] for b in bodies["latency"]]
    assert sum(frames) == 300 and max(frames) <= 100 and len(frames) >= 3, frames
    spans = [(b["window"]["first_frame"], b["window"]["last_frame"]) for b in bodies["latency"]]
    assert all(nxt[0] == prev[1] + 1 for prev, nxt in itertools.pairwise(spans)), spans
    assert kinds["birth"] >= 1 and kinds["latency"] == kinds["health"] == kinds["drift"] == len(frames)
    assert sum(b["frames_probed"] for b in bodies["robustness"]) == 60
    assert 1 <= kinds["robustness"] <= len(frames) and quarantined == 0
    suite = JUnitXml.fromfile(str(out / "junit.xml"))
    failed = {case.name for group in suite for case in group if not case.is_passed}
    # Deterministic (seeded probes on a fixed frame set): JPEG at the model's scale flips 20 of 24 frames, and
    # dropout breaks the model below severity 1. The other shares are judged on their intervals, so on 24 frames a
    # few flips against a 20% limit may stay inconclusive; latency judges this machine's pace.
    assert suite.tests == 8 and {"jpeg_compression @ severity 5", "pixel_dropout breaking point"} <= failed, failed
    verdicts = {case.name: case.system_out or "" for group in suite for case in group}
    assert all(name.startswith("latency") or "jpeg" in name or "breaking point" in name
               or ": inconclusive:" in verdicts[name] for name in failed), verdicts
    assert "<svg" in (out / "report.html").read_text()
