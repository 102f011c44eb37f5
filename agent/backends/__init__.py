"""Inference backends: load a model file, describe its input, run it.

Backends live in one registry (:data:`BACKENDS`, entry-point group
``edgeprobe.backends`` for plugins); ``load_backend`` picks ONNX Runtime or
LiteRT from the file's content (``model.backend: auto``) or takes the one the
config names, so everything downstream (perturbations, adapters, suites) is
backend-blind.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeprobe.agent.backends.base import Backend, InputSpec, sha256_file
from edgeprobe.agent.backends.preprocess import Preprocessor
from edgeprobe.agent.config import ModelConfig
from edgeprobe.harness.errors import ConfigError, ModelError
from edgeprobe.harness.modelconfig import TaskConfig
from edgeprobe.harness.registry import Registry
from edgeprobe.harness.tasks import TaskAdapter, fitting_layouts, make_adapter

__all__ = ["BACKENDS", "Backend", "InputSpec", "Preprocessor", "load_backend", "open_adapter", "sha256_file",
           "sniff_format"]


def _onnx(cfg: ModelConfig) -> Backend:
    from edgeprobe.agent.backends.onnx import OnnxBackend

    return OnnxBackend(cfg)


def _tflite(cfg: ModelConfig) -> Backend:
    try:
        from edgeprobe.agent.backends.tflite import TFLiteBackend  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        raise ConfigError(
            f"{Path(cfg.path).name} is a TFLite model but no LiteRT runtime is installed; "
            "install the extra: pip install 'edgeprobe[tflite]'"
        ) from None
    return TFLiteBackend(cfg)  # type: ignore[no-any-return, unused-ignore]


#: name -> factory(ModelConfig) -> Backend; a plugin's entry point loads such a factory (or Backend subclass).
BACKENDS: Registry[Callable[[ModelConfig], Backend]] = Registry(
    "backend", group="edgeprobe.backends", listing="edgeprobe tasks"
)
BACKENDS.register("onnxruntime", _onnx)
BACKENDS.register("tflite", _tflite)

_FORMAT_NAMES = {"onnxruntime": "an ONNX model", "tflite": "a TFLite model"}


def sniff_format(path: Path) -> str | None:
    """'tflite' or 'onnxruntime' from the file's first bytes, None when it is neither.

    A TFLite flatbuffer carries the identifier ``TFL3`` at bytes 4-8; an ONNX
    ModelProto is protobuf whose first field is ``ir_version`` (tag byte 0x08).
    """
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        return "tflite"
    if head[:1] == b"\x08":
        return "onnxruntime"
    return None


def load_backend(cfg: ModelConfig) -> Backend:
    path = Path(cfg.path)
    if not path.exists():
        raise ModelError(f"model file {path} does not exist; check model.path (for the bundled examples, run "
                         "`edgeprobe assets fetch`)")
    if not path.is_file():
        raise ModelError(f"model path {path} is not a file; point model.path at a .onnx or .tflite file")
    kind = cfg.backend
    content = sniff_format(path)
    by_suffix = {".tflite": "tflite", ".onnx": "onnxruntime"}.get(path.suffix.lower())
    if content and by_suffix and content != by_suffix:
        raise ModelError(
            f"model file {path.name} holds {_FORMAT_NAMES[content]}, not {_FORMAT_NAMES[by_suffix]} as its name "
            f"says; rename it to {path.stem}{'.tflite' if content == 'tflite' else '.onnx'}"
        )
    if kind == "auto":
        kind = content or by_suffix or "onnxruntime"
    elif content and kind in _FORMAT_NAMES and kind != content:
        raise ModelError(
            f"model.backend is {kind} but {path.name} holds {_FORMAT_NAMES[content]}; "
            f"set model.backend: {content} (or auto)"
        )
    return BACKENDS.get(kind)(cfg)


def open_adapter(backend: Backend, task: TaskConfig) -> TaskAdapter:
    """The task adapter for ``backend``'s outputs, fit-checked on one real inference.

    ``task.kind: auto`` takes the first registered layout that fits (as
    ``edgeprobe init`` does), else the raw-tensor comparison. Labels from the
    model's metadata go to classification only: a detector's or segmenter's
    metadata names rarely match its output channels one to one.
    """
    options: dict[str, Any] = task.adapter_options()
    options["input_size"] = (backend.input_spec.height, backend.input_spec.width)
    kind = task.kind
    sample = backend.sample_outputs()
    if kind == "auto":
        fits = fitting_layouts(backend.output_specs, sample, options["input_size"])
        kind, layout = fits[0] if fits else ("tensor", None)
        if layout is not None and "layout" not in options:
            options["layout"] = layout
    labels = task.labels or (backend.labels_from_metadata() if kind == "classification" else None)
    if labels:
        options["labels"] = labels
    return make_adapter(kind, backend.output_specs, sample=sample, **options)
