"""Inference backends: load a model file, describe its input, run it.

``load_backend`` picks ONNX Runtime or LiteRT by file suffix (or by config),
so everything downstream (perturbations, adapters, suites) is backend-blind.
"""

from __future__ import annotations

from pathlib import Path

from ...harness.errors import ConfigError, ModelError
from ..config import ModelConfig
from .base import Backend, InputSpec, sha256_file
from .preprocess import Preprocessor

__all__ = ["Backend", "InputSpec", "Preprocessor", "load_backend", "sha256_file"]


def load_backend(cfg: ModelConfig) -> Backend:
    path = Path(cfg.path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist; check model.path (or run `make assets`)")
    if not path.is_file():
        raise ModelError(f"model path {path} is not a file; point model.path at a .onnx or .tflite file")
    kind = cfg.backend
    if kind == "auto":
        kind = "tflite" if path.suffix.lower() == ".tflite" else "onnxruntime"
    if kind == "onnxruntime":
        from .onnx import OnnxBackend

        return OnnxBackend(cfg)
    if kind == "tflite":
        try:
            from .tflite import TFLiteBackend  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise ConfigError(
                f"{path.name} is a TFLite model but no LiteRT runtime is installed; "
                "install the extra: pip install 'edgeprobe[tflite]'"
            ) from None
        return TFLiteBackend(cfg)  # type: ignore[no-any-return, unused-ignore]
    raise ConfigError(f"unknown backend {kind!r}")  # unreachable: config validates it
