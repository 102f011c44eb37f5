"""Task adapters: raw output tensors -> comparable predictions.

An adapter knows how to read a model's outputs for one task, how much two
predictions disagree (a number in [0, 1]) and above which disagreement a
prediction counts as unstable. Adapters are chosen in config by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, did_you_mean
from .base import OutputSpec, Prediction, TaskAdapter
from .classification import ClassificationAdapter
from .detection import DetectionAdapter
from .embedding import EmbeddingAdapter
from .segmentation import SegmentationAdapter
from .ssd_anchors import SsdAnchorsAdapter

ADAPTERS: dict[str, Callable[..., TaskAdapter]] = {
    "classification": ClassificationAdapter,
    "detection": DetectionAdapter,
    "segmentation": SegmentationAdapter,
    "embedding": EmbeddingAdapter,
    "ssd_anchors": SsdAnchorsAdapter,
}


def make_adapter(kind: str, output_specs: list[OutputSpec], **options: Any) -> TaskAdapter:
    """Build the adapter named ``kind`` and check it fits the model's outputs."""
    try:
        factory = ADAPTERS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown task {kind!r}{did_you_mean(kind, ADAPTERS)}; known: {', '.join(sorted(ADAPTERS))}"
        ) from None
    accepted = inspect.signature(factory).parameters
    for key in list(options):
        if key not in accepted:
            if key in ("input_size", "labels"):  # offered by the agent to every adapter; only some use them
                options.pop(key)
                continue
            raise ConfigError(f"task.{key} does not apply to task {kind!r}; remove it")
    adapter = factory(**options)
    adapter.check_outputs(output_specs)
    return adapter


__all__ = ["ADAPTERS", "OutputSpec", "Prediction", "TaskAdapter", "make_adapter"]
