"""Task adapters: raw output tensors -> comparable predictions.

An adapter knows how to read a model's outputs for one task, how much two
predictions disagree (a number in [0, 1]) and above which disagreement a
prediction counts as unstable. Adapters are chosen in config by name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from ..registry import Registry
from .base import OutputSpec, Prediction, TaskAdapter
from .classification import ClassificationAdapter
from .detection import DetectionAdapter
from .embedding import EmbeddingAdapter
from .segmentation import SegmentationAdapter
from .ssd_anchors import SsdAnchorsAdapter

#: Task adapters by kind: the built-ins, then plugins (entry points in ``edgeprobe.adapters``) on first use.
#: A plugin's entry point loads a class (or factory) taking the adapter options as keywords.
ADAPTERS: Registry[Callable[..., TaskAdapter]] = Registry(
    "task", group="edgeprobe.adapters", listing="edgeprobe tasks"
)
ADAPTERS.register("classification", ClassificationAdapter)
ADAPTERS.register("detection", DetectionAdapter)
ADAPTERS.register("segmentation", SegmentationAdapter)
ADAPTERS.register("embedding", EmbeddingAdapter)
ADAPTERS.register("ssd_anchors", SsdAnchorsAdapter)


def make_adapter(kind: str, output_specs: list[OutputSpec], **options: Any) -> TaskAdapter:
    """Build the adapter named ``kind`` and check it fits the model's outputs."""
    factory = ADAPTERS.get(kind)
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
