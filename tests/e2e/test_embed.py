"""The in-process SDK end to end: a real app (examples/embed_app.py) -> spool -> real mosquitto -> collector."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from edgeprobe.cli.localbroker import LocalBroker
from edgeprobe.collector import queries
from tests.conftest import REPO, demo_config
from tests.e2e.util import count, start_collector, stop, wait_for


def _sdk_config(model: Path, clip: Path, spool: Path, **extra: object) -> dict:
    cfg = demo_config(model, clip, spool, device_id="embed-cam", **extra)
    del cfg["source"]  # the app owns the camera
    cfg["broker"] = {"enabled": True}
    return cfg


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_embedded_app_reports_every_kind_through_broker_and_collector(
    tmp_path: Path, broker: LocalBroker, orientation_model: Path, short_clip: Path,
    write_config: Callable[..., Path],
) -> None:
    db = tmp_path / "fleet.db"
    config = write_config(_sdk_config(orientation_model, short_clip, tmp_path / "spool.db",
                                      # 24 frames of 120 handed over with pixels (health samples, their
                                      # predecessors, probes): fewer than the SDK's slots, so none can be
                                      # dropped however slowly its process runs on a loaded machine
                                      monitor={"health": {"every_n_frames": 10, "learn_frames": 5}},
                                      probe={"every_n_frames": 10}))
    collector = start_collector(db, broker.address, tmp_path)
    try:
        app = subprocess.run(
            [sys.executable, "examples/embed_app.py", "--frames", "120", "--probe-only", "--json", "--config",
             str(config), "--video", str(short_clip), "--broker", broker.address, "--spool",
             str(tmp_path / "spool.db")], capture_output=True, text=True, timeout=180, cwd=REPO)
        assert app.returncode == 0, app.stderr
        out = json.loads(app.stdout)
        sent = out["probe"]["messages"]
        assert wait_for(lambda: count(db, "SELECT COUNT(*) FROM messages WHERE kind = 'death'") == 1, 30)
    finally:
        stop(collector)
    assert out["with_probe"]["frames"] == 120 and out["probe"]["errors"] == 0 and out["probe"]["dropped"] == 0
    import sqlite_utils

    fleet = sqlite_utils.Database(db)
    kinds = queries.kind_counts(fleet)
    assert kinds == sent  # everything the app's probe spooled reached the collector, nothing else
    assert kinds["latency"] == kinds["health"] == kinds["drift"] == 6  # 120 frames in windows of 20
    assert kinds["robustness"] >= 1 and kinds["birth"] == kinds["death"] == 1
    assert fleet["quarantine"].count == 0
    seqs = [r[0] for r in fleet.execute("SELECT seq FROM messages WHERE device_id = 'embed-cam' ORDER BY seq")]
    assert seqs == list(range(len(seqs)))
    latency = {r["stage"]: r for r in queries.latency_summary(fleet)}
    # the app's own timings went into the windows: every frame's inference and e2e (their sum)
    assert latency["inference"]["count"] == latency["e2e"]["count"] == 120
    assert latency["e2e"]["p50"] >= latency["inference"]["p50"]
    (health,) = queries.health_summary(fleet)
    assert health["frames"] == 120


def test_attach_refuses_a_bad_config_in_one_sentence_before_the_app_runs(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    import edgeprobe
    from edgeprobe.harness.errors import EdgeprobeError, ModelError

    bad = write_config(_sdk_config(orientation_model, short_clip, tmp_path / "s.db",
                                   probe={"perturbations": [{"name": "gausian_noise"}]}))
    with pytest.raises(EdgeprobeError, match=r"unknown perturbation 'gausian_noise'") as err:
        edgeprobe.attach(bad)
    assert "\n" not in str(err.value)
    missing = write_config(_sdk_config(tmp_path / "nope.onnx", short_clip, tmp_path / "s.db"), "missing.yaml")
    with pytest.raises(ModelError, match=r"does not exist"):
        edgeprobe.attach(missing)


def test_observe_never_raises_into_the_app_and_close_is_idempotent(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    import numpy as np

    import edgeprobe

    cfg = _sdk_config(orientation_model, short_clip, tmp_path / "s.db", windows={"frames": 5})
    cfg["broker"] = {"enabled": False}
    probe = edgeprobe.attach(write_config(cfg))
    frame = np.zeros((64, 64, 3), np.uint8)
    good = [np.array([[0.1, 0.7, 0.1, 0.1]], np.float32)]
    probe.observe(frame, good, timings={"inference": 1000})
    probe.observe(frame, [np.zeros((3, 3), np.float32)], timings={"inference": 1000})  # not the model's outputs
    probe.observe(frame, good, timings={"inference": "fast"})  # type: ignore[dict-item]
    probe.observe(None, None)  # type: ignore[arg-type]
    for _ in range(10):
        probe.observe(frame, good, timings={"inference": 2000})
    probe.close()
    probe.close()
    probe.observe(frame, good)  # after close: ignored, not raised
    stats = probe.stats()
    assert stats["observed"] == 15 and stats["errors"] >= 2 and stats["messages"]["death"] == 1
    assert stats["messages"]["latency"] >= 2  # the good frames still made their windows
