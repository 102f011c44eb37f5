from __future__ import annotations

from pathlib import Path

import pytest

from edgeprobe.agent.config import load_config
from edgeprobe.harness.errors import ConfigError

GOOD = """\
device_id: cam-1
source:
  uri: clip.avi
model:
  path: model.onnx
probe:
  every_n_frames: 4
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "agent.yaml"
    p.write_text(text)
    return p


def test_good_config_resolves_paths_relative_to_the_file(tmp_path: Path) -> None:
    loaded = load_config(_write(tmp_path, GOOD))
    assert loaded.config.model.path == str(tmp_path / "model.onnx")
    assert loaded.config.source.uri == str(tmp_path / "clip.avi")
    assert loaded.config.probe.every_n_frames == 4
    assert len(loaded.sha256) == 64


def test_config_hash_changes_with_content(tmp_path: Path) -> None:
    a = load_config(_write(tmp_path, GOOD)).sha256
    b = load_config(_write(tmp_path, GOOD.replace("4", "5"))).sha256
    assert a != b


def test_env_vars_and_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELS", "/opt/models")
    text = GOOD.replace("model.onnx", "${MODELS}/m.onnx").replace("clip.avi", "rtsp://cam/stream")
    cfg = load_config(_write(tmp_path, text)).config
    assert cfg.model.path == "/opt/models/m.onnx" and cfg.source.uri == "rtsp://cam/stream"


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent.yaml line \d+: YAML syntax error"):
        load_config(_write(tmp_path, GOOD + "probe: [unclosed\n"))


def test_unknown_key_names_line_and_suggests(tmp_path: Path) -> None:
    text = GOOD.replace("  every_n_frames: 4", "  every_n_frame: 4")
    pattern = r'line 7: unknown key \'probe.every_n_frame\' \(did you mean "every_n_frames"\?\)'
    with pytest.raises(ConfigError, match=pattern):
        load_config(_write(tmp_path, text))


def test_wrong_type_names_key_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 7: probe.every_n_frames: Expected `int`, got `str`"):
        load_config(_write(tmp_path, GOOD.replace("every_n_frames: 4", "every_n_frames: four")))


def test_missing_required_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"required key 'model' is missing"):
        load_config(_write(tmp_path, "source:\n  uri: x.avi\n"))


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(_write(tmp_path, "- a\n- b\n"))


def test_overrides_are_validated_like_the_file(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, GOOD), {"broker.port": 1999}).config
    assert cfg.broker.port == 1999
    with pytest.raises(ConfigError, match=r"broker\.port"):
        load_config(_write(tmp_path, GOOD), {"broker.port": 70000})
