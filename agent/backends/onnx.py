"""ONNX Runtime backend."""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edgeprobe.agent.backends.base import Backend, InputSpec, sha256_file
from edgeprobe.agent.backends.preprocess import Preprocessor
from edgeprobe.agent.config import ModelConfig
from edgeprobe.harness.errors import ConfigError, ModelError
from edgeprobe.harness.tasks import OutputSpec
from edgeprobe.harness.tasks.base import shape_text

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
}


def _dims(shape: Sequence[object]) -> tuple[int | None, ...]:
    return tuple(d if isinstance(d, int) and d > 0 else None for d in shape)


def input_spec_from_shape(name: str, shape: tuple[int | None, ...], dtype: str,
                          input_size: Sequence[int] | None = None) -> InputSpec:
    """Work out layout and spatial size from a 4-D image input shape.

    A dynamic batch is fed 1 frame; a dynamic height/width takes ``input_size``
    (``model.input_size: [H, W]``), which must agree with fixed dimensions.
    """
    if len(shape) != 4:
        raise ModelError(
            f"input {name!r} has shape {list(shape)}; edgeprobe feeds images and needs a 4-D "
            "(batch, channels, height, width) or (batch, height, width, channels) input"
        )
    _, a, b, c = shape
    if a in (1, 3) and c not in (1, 3):
        layout, ch, h, w = "NCHW", a, b, c
    elif c in (1, 3):
        layout, ch, h, w = "NHWC", c, a, b
    else:
        raise ModelError(
            f"cannot tell the channel axis of input {name!r} with shape {list(shape)}; "
            "edgeprobe expects 1 or 3 channels first or last"
        )
    if input_size is not None:
        ih, iw = int(input_size[0]), int(input_size[1])
        if (h is not None and h != ih) or (w is not None and w != iw):
            raise ModelError(
                f"model.input_size {[ih, iw]} disagrees with input {name!r}'s fixed size {list(shape)}; "
                f"remove model.input_size or set it to {[h or ih, w or iw]}"
            )
        h, w = ih, iw
    if h is None or w is None:
        raise ModelError(
            f"input {name!r} has a dynamic height/width {shape_text(shape)}; set "
            "model.input_size: [H, W] (or `edgeprobe bench --input-size HxW`); a dynamic batch is always 1"
        )
    # The batch stays as declared (None = dynamic): the deployed path feeds 1, `bench --batch` more.
    full = (shape[0], ch, h, w) if layout == "NCHW" else (shape[0], h, w, ch)
    return InputSpec(name=name, shape=full, dtype=dtype, layout=layout, height=h, width=w, channels=ch)


class OnnxBackend(Backend):
    def __init__(self, cfg: ModelConfig):
        path = Path(cfg.path)
        available = ort.get_available_providers()
        names = cfg.provider_names()
        missing = [p for p in names if p not in available]
        if missing:
            raise ConfigError(
                f"execution provider(s) {', '.join(missing)} not available in this onnxruntime build; "
                f"available: {', '.join(available)}"
            )
        opts = ort.SessionOptions()
        if cfg.threads:
            opts.intra_op_num_threads = cfg.threads
        opts.log_severity_level = 3
        t0 = time.perf_counter_ns()
        # onnxruntime print()s its provider fallback to stdout, which would corrupt --json output.
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                session = ort.InferenceSession(str(path), sess_options=opts, providers=cfg.provider_options())
            except Exception as exc:  # onnxruntime raises several unrelated types
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if any(opt for _, opt in cfg.provider_options()):  # CUDA/TensorRT refuse unknown option names
                    raise ConfigError(f"ONNX Runtime could not open {path} with the options in model.providers "
                                      f"({first[:200]}); check each option against that provider's "
                                      "documentation, or the model without them") from None
                raise ModelError(f"{path} is not a model ONNX Runtime can load ({first[:200]})") from None
        load_ns = time.perf_counter_ns() - t0
        # A provider can be listed as available yet fail to load (TensorRT without libnvinfer):
        # onnxruntime then silently runs on the CPU. Measuring that as "TensorRT" would be a lie.
        failed = [p for p in names if p not in session.get_providers()]
        if failed:
            raise ConfigError(
                f"execution provider(s) {', '.join(failed)} are in this onnxruntime build but failed to load "
                f"(missing CUDA/TensorRT libraries?); the session got {', '.join(session.get_providers())}: "
                "install the libraries or remove them from model.providers"
            )
        self.session = session
        inp = session.get_inputs()[0]
        dtype = _ORT_TYPES.get(inp.type, "float32")
        spec = input_spec_from_shape(inp.name, _dims(inp.shape), dtype, cfg.input_size)
        outputs = [OutputSpec(o.name, _dims(o.shape), _ORT_TYPES.get(o.type, o.type)) for o in session.get_outputs()]
        self._input_name = inp.name
        self._output_names = [o.name for o in session.get_outputs()]
        meta = dict(session.get_modelmeta().custom_metadata_map)
        super().__init__(
            path=path,
            sha256=sha256_file(path),
            input_spec=spec,
            output_specs=outputs,
            preprocessor=Preprocessor(cfg.preprocess, spec.height, spec.width, spec.channels, spec.layout,
                                      np.dtype(dtype)),
            load_ns=load_ns,
            metadata=meta,
        )

    @property
    def runtime(self) -> str:
        return f"onnxruntime {ort.__version__}"

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def infer(self, tensor: np.ndarray) -> Sequence[np.ndarray]:
        return self.session.run(self._output_names, {self._input_name: tensor})
