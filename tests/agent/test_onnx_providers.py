"""Execution providers: never report a GPU provider the session did not actually get."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import onnxruntime as ort
import pytest
import yaml

from edgeprobe.agent.backends import load_backend
from edgeprobe.agent.config import ModelConfig
from edgeprobe.harness.errors import ConfigError
from tests.conftest import assert_clean_error, run_cli


def test_unavailable_provider_names_the_available_ones(orientation_model: Path) -> None:
    with pytest.raises(ConfigError, match=r"FooExecutionProvider not available .* available: .*CPUExecutionProvider"):
        load_backend(ModelConfig(path=str(orientation_model), providers=["FooExecutionProvider"]))


def test_provider_that_silently_fell_back_to_cpu_is_an_error(
    orientation_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an H100 box showed: TensorRT is listed by onnxruntime-gpu, fails to load, and ORT runs on the CPU."""
    real_session = ort.InferenceSession

    def fallback_session(path: str, sess_options: Any = None, providers: Any = None) -> Any:
        print("Falling back to ['CPUExecutionProvider'] and retrying.")  # what onnxruntime prints
        return real_session(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["TensorrtExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", fallback_session)
    pattern = r"TensorrtExecutionProvider are in this onnxruntime build but failed to load"
    with pytest.raises(ConfigError, match=pattern):
        load_backend(ModelConfig(path=str(orientation_model),
                                 providers=["TensorrtExecutionProvider", "CPUExecutionProvider"]))


def test_cpu_session_reports_its_providers(orientation_model: Path) -> None:
    backend = load_backend(ModelConfig(path=str(orientation_model)))
    assert backend.providers == ["CPUExecutionProvider"]
    assert backend.describe()["providers"] == ["CPUExecutionProvider"]


def test_provider_entries_with_options_reach_onnx_runtime(orientation_model: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """{name, options} entries go to ORT's providers= as (name, options) pairs, in order, names alone as ({})."""
    real_session = ort.InferenceSession
    seen: list[Any] = []

    def recording_session(path: str, sess_options: Any = None, providers: Any = None) -> Any:
        seen.append(providers)
        return real_session(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", recording_session)
    cfg = msgspec.convert({"path": str(orientation_model), "providers": [
        {"name": "CPUExecutionProvider", "options": {"arena_extend_strategy": "kSameAsRequested"}}]}, ModelConfig)
    backend = load_backend(cfg)
    assert seen == [[("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})]]
    assert backend.providers == ["CPUExecutionProvider"]
    plain = ModelConfig(path=str(orientation_model), providers=["CPUExecutionProvider"])
    assert plain.provider_options() == [("CPUExecutionProvider", {})] and plain.provider_names() == [
        "CPUExecutionProvider"]


def _agent_yaml(tmp_path: Path, model: Path, providers: list[Any]) -> Path:
    from tests.conftest import demo_config

    cfg = demo_config(model, tmp_path / "clip.avi", tmp_path / "s.db")
    cfg["model"]["providers"] = providers
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


TRT = {"name": "TensorrtExecutionProvider", "options": {
    "trt_engine_cache_enable": True, "trt_engine_cache_path": "trt-engines", "trt_fp16_enable": True}}


def test_tensorrt_options_on_a_build_without_tensorrt_exit_2_in_one_sentence(tmp_path: Path,
                                                                            orientation_model: Path) -> None:
    cfg = _agent_yaml(tmp_path, orientation_model, [TRT, "CPUExecutionProvider"])
    proc = run_cli("bench", str(orientation_model), "--config", str(cfg), "--max-samples", "5")
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT: the refusal cannot be shown here")
    assert_clean_error(proc, r"execution provider\(s\) TensorrtExecutionProvider not available in this onnxruntime "
                             r"build; available: .*CPUExecutionProvider")


@pytest.mark.parametrize(("entry", "pattern"), [
    ({"name": "CUDAExecutionProvider", "options": {"device_id": {"gpu": 0}}}, r"model\.providers"),
    ({"options": {"device_id": 0}}, r"model\.providers.*name"),
    ({"name": "CPUExecutionProvider", "option": {}}, r"option"),
])
def test_malformed_provider_entries_are_config_errors(tmp_path: Path, orientation_model: Path,
                                                      entry: dict[str, Any], pattern: str) -> None:
    from edgeprobe.agent.config import load_config

    with pytest.raises(ConfigError, match=pattern) as err:
        load_config(_agent_yaml(tmp_path, orientation_model, [entry]))
    assert "\n" not in str(err.value)


def test_engine_cache_path_lives_in_the_state_directory(tmp_path: Path, orientation_model: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Under systemd the config is a read-only credential: a relative cache path lands in StateDirectory."""
    from edgeprobe.agent.config import load_config

    cfg = _agent_yaml(tmp_path, orientation_model, [TRT, "CPUExecutionProvider"])
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    options = load_config(cfg).config.model.provider_options()[0][1]
    assert options["trt_engine_cache_path"] == str(tmp_path / "state" / "trt-engines")
    assert options["trt_fp16_enable"] is True and options["trt_engine_cache_enable"] is True
    monkeypatch.delenv("STATE_DIRECTORY")
    options = load_config(cfg).config.model.provider_options()[0][1]
    assert options["trt_engine_cache_path"] == str(tmp_path / "trt-engines")  # else: beside the config
