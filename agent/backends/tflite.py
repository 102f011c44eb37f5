"""TFLite backend through LiteRT (``ai-edge-litert``), or ``tflite-runtime`` where only that exists.

Quantised models take integers in and give integers out; the preprocessor
quantises the input with the model's own (scale, zero point) and ``infer``
dequantises every output, so adapters always see real-valued tensors, the same
as from ONNX Runtime.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeprobe.agent.backends.base import Backend, InputSpec, sha256_file
from edgeprobe.agent.backends.onnx import input_spec_from_shape
from edgeprobe.agent.backends.preprocess import Preprocessor
from edgeprobe.agent.config import ModelConfig
from edgeprobe.harness.errors import ModelError
from edgeprobe.harness.tasks import OutputSpec

try:  # LiteRT, the maintained runtime
    from ai_edge_litert import interpreter as _tfl

    _RUNTIME = "ai-edge-litert"
except ImportError:  # pragma: no cover - boards with only the older wheel
    from tflite_runtime import interpreter as _tfl  # type: ignore[import-not-found, no-redef, unused-ignore]

    _RUNTIME = "tflite-runtime"

_CUSTOM_OP = re.compile(r"unresolved custom op:?\s*([A-Za-z0-9_]+)", re.IGNORECASE)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(_RUNTIME)
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def quantization_of(detail: dict[str, Any]) -> tuple[float, int] | None:
    """Per-tensor (scale, zero point), or None for float tensors (LiteRT reports scale 0 there)."""
    scale, zero = detail.get("quantization", (0.0, 0))
    if not scale:
        return None
    return float(scale), int(zero)


def dequantize(values: np.ndarray, quantization: tuple[float, int] | None) -> np.ndarray:
    """Integer tensor -> real values: ``(q - zero_point) * scale`` (TFLite's affine scheme)."""
    if quantization is None:
        return values
    scale, zero = quantization
    return ((values.astype(np.float32) - np.float32(zero)) * np.float32(scale)).astype(np.float32)


def quantize(values: np.ndarray, quantization: tuple[float, int], dtype: np.dtype) -> np.ndarray:
    """Real values -> integers: ``round(x / scale) + zero_point``, saturated to the dtype's range."""
    scale, zero = quantization
    info = np.iinfo(dtype)
    return np.clip(np.round(np.asarray(values, np.float32) / np.float32(scale)) + zero, info.min,
                   info.max).astype(dtype)


def _load_error(path: Path, exc: Exception) -> ModelError:
    text = str(exc).strip()
    custom = _CUSTOM_OP.search(text)
    if custom:
        return ModelError(
            f"{path} uses the custom op {custom.group(1)}, which this TFLite runtime ({_RUNTIME}) does not "
            "have; use a model built from builtin ops or the runtime that ships that op (e.g. MediaPipe's)"
        )
    first = text.splitlines()[0] if text else type(exc).__name__
    return ModelError(f"{path} is not a model the TFLite runtime can load ({first[:200]})")


class TFLiteBackend(Backend):
    def __init__(self, cfg: ModelConfig):
        path = Path(cfg.path)
        t0 = time.perf_counter_ns()
        try:
            interp = _tfl.Interpreter(model_path=str(path), num_threads=cfg.threads or None)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise _load_error(path, exc) from None
        load_ns = time.perf_counter_ns() - t0
        self.interpreter = interp
        inp = interp.get_input_details()[0]
        dtype = np.dtype(inp["dtype"]).name
        signature = inp.get("shape_signature", inp["shape"])
        shape = tuple(int(d) if d > 0 else None for d in signature)
        base = input_spec_from_shape(inp["name"], shape, dtype, cfg.input_size)
        if any(d is None for d in shape):  # dynamic dims: fix them at the size we feed (batch 1)
            fixed = [1 if d is None else d for d in base.shape]
            interp.resize_tensor_input(int(inp["index"]), fixed)
            interp.allocate_tensors()
        quant = quantization_of(inp)
        spec = InputSpec(name=base.name, shape=base.shape, dtype=base.dtype, layout=base.layout,
                         height=base.height, width=base.width, channels=base.channels, quantization=quant)
        self._input_index = int(inp["index"])
        self._input_dtype = np.dtype(inp["dtype"])
        outs = interp.get_output_details()
        self._outputs = [(int(o["index"]), quantization_of(o)) for o in outs]
        # Outputs are dequantised in infer(), so downstream sees float32 where the model gives integers.
        output_specs = [
            OutputSpec(o["name"], tuple(int(d) for d in o["shape"]),
                       "float32" if quantization_of(o) else np.dtype(o["dtype"]).name)
            for o in outs
        ]
        meta: dict[str, str] = {}
        if quant is not None:
            meta["input_quantization"] = f"scale={quant[0]:g} zero_point={quant[1]}"
        super().__init__(
            path=path,
            sha256=sha256_file(path),
            input_spec=spec,
            output_specs=output_specs,
            preprocessor=Preprocessor(cfg.preprocess, spec.height, spec.width, spec.channels, spec.layout,
                                      np.dtype(dtype), quantization=quant),
            load_ns=load_ns,
            metadata=meta,
        )

    @property
    def runtime(self) -> str:
        return f"{_RUNTIME} {_version()}"

    @property
    def providers(self) -> list[str]:
        # Both wheels apply the XNNPACK delegate by default to the float and int8 ops it supports.
        return ["XNNPACK", "CPU"]

    def infer(self, tensor: np.ndarray) -> Sequence[np.ndarray]:
        if tensor.dtype != self._input_dtype:
            quant = self.input_spec.quantization
            raise ModelError(
                f"{self.path.name} takes {self._input_dtype.name} input"
                + (f" (quantised, scale {quant[0]:g}, zero point {quant[1]})" if quant else "")
                + f" but was fed {tensor.dtype.name}; feed frames through the backend's preprocessor, "
                "which quantises them"
            )
        self.interpreter.set_tensor(self._input_index, tensor)
        self.interpreter.invoke()
        return [dequantize(self.interpreter.get_tensor(i), q) for i, q in self._outputs]
