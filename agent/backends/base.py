"""The Backend contract and what it reports about a model."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeprobe.agent.backends.preprocess import Preprocessor
from edgeprobe.harness.tasks import OutputSpec


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class InputSpec:
    """The model's (first) input, as the preprocessor must produce it."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str
    layout: str  # "NCHW" or "NHWC"
    height: int
    width: int
    channels: int
    #: (scale, zero_point) for quantised inputs, else None
    quantization: tuple[float, int] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "layout": self.layout,
                "height": self.height, "width": self.width, "channels": self.channels,
                "quantization": list(self.quantization) if self.quantization else None}


@dataclass
class Backend(ABC):
    """Loads a model and runs preprocess -> infer; the adapter does postprocess.

    Stages are separate methods so the agent can time each one on its own.
    """

    path: Path
    sha256: str
    input_spec: InputSpec
    output_specs: list[OutputSpec]
    preprocessor: Preprocessor
    #: wall time to create the session / interpreter (cold start), ns
    load_ns: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    _sample: list[np.ndarray] | None = field(default=None, init=False, repr=False)

    @property
    @abstractmethod
    def runtime(self) -> str:
        """Name and version of the runtime, e.g. 'onnxruntime 1.20.1'."""

    @property
    def providers(self) -> list[str]:
        return []

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        return self.preprocessor(image)

    @abstractmethod
    def infer(self, tensor: np.ndarray) -> Sequence[np.ndarray]:
        """Run the model on one preprocessed batch."""

    def sample_outputs(self) -> list[np.ndarray]:
        """The outputs of one real inference on a mid-grey frame, for the adapters' fit checks.

        Real shapes where the model declares dynamic ones, and real values
        (a layout that reads regressors as scores is caught on them). Run once
        per backend and cached.
        """
        if self._sample is None:
            p = self.preprocessor
            frame = np.full((p.height, p.width, 3), 114, np.uint8)
            x = self.preprocess(frame)
            batch = self.input_spec.shape[0]
            if isinstance(batch, int) and batch > 1:  # a fixed batch is fed whole
                x = np.repeat(x, batch, axis=0)
            self._sample = [np.asarray(o) for o in self.infer(x)]
        return self._sample

    def labels_from_metadata(self) -> list[str] | None:
        """Class names some exporters store in metadata (PaddleClas: 'character')."""
        for key in ("character", "labels", "names", "classes"):
            if key in self.metadata:
                raw = self.metadata[key]
                parts = [p for p in (raw.splitlines() if "\n" in raw else raw.split(",")) if p.strip()]
                if parts:
                    return [p.strip() for p in parts]
        return None

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "runtime": self.runtime,
            "providers": self.providers,
            "input": self.input_spec.as_dict(),
            "outputs": [{"name": o.name, "shape": list(o.shape), "dtype": o.dtype} for o in self.output_specs],
            "load_ms": self.load_ns / 1e6,
        }
