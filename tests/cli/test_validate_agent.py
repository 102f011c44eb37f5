"""`edgeprobe validate` on an agent or SDK config: the same model, task and probe checks the agent makes at start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import assert_clean_error, demo_config, run_cli


def test_an_agent_config_and_an_sdk_config_validate(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    agent = write_config(demo_config(orientation_model, short_clip, tmp_path / "s.db"), "agent.yaml")
    proc = run_cli("validate", str(agent))
    assert proc.returncode == 0, proc.stderr
    out = " ".join(proc.stdout.split())
    assert "valid agent config for device 'test-cam'" in out and "model fits classification" in out
    assert f"source {short_clip}" in out and "3 probe cell(s)" in out
    sdk_cfg = demo_config(orientation_model, short_clip, tmp_path / "s.db", probe={"enabled": False})
    del sdk_cfg["source"]
    proc = run_cli("validate", str(write_config(sdk_cfg, "sdk.yaml")))
    assert proc.returncode == 0, proc.stderr
    assert "no source (for edgeprobe.attach" in " ".join(proc.stdout.split()) and "(probing off)" in proc.stdout


def test_a_bad_agent_config_is_one_sentence(
    tmp_path: Path, orientation_model: Path, short_clip: Path, write_config: Callable[..., Path],
) -> None:
    typo = demo_config(orientation_model, short_clip, tmp_path / "s.db")
    typo["monitor"] = {"helth": {"every_n_frames": 2}}
    assert_clean_error(run_cli("validate", str(write_config(typo, "typo.yaml"))),
                       r"typo.yaml line \d+: unknown key 'monitor.helth'")
    missing = demo_config(tmp_path / "nope.onnx", short_clip, tmp_path / "s.db")
    assert_clean_error(run_cli("validate", str(write_config(missing, "missing.yaml"))),
                       r"model file .*nope.onnx does not exist")
