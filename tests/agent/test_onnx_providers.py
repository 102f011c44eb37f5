"""Execution providers: never report a GPU provider the session did not actually get."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
from edgeprobe.agent.backends import load_backend
from edgeprobe.agent.config import ModelConfig
from edgeprobe.harness.errors import ConfigError


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
