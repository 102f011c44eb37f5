"""Task adapters: raw output tensors -> comparable predictions.

An adapter knows how to read a model's outputs for one task, how much two
predictions disagree (a number in [0, 1]) and above which disagreement a
prediction counts as unstable. Adapters are chosen in config by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, did_you_mean
from .base import OutputSpec, Prediction, TaskAdapter
from .classification import ClassificationAdapter

ADAPTERS: dict[str, Callable[..., TaskAdapter]] = {
    "classification": ClassificationAdapter,
}


def make_adapter(kind: str, output_specs: list[OutputSpec], **options: Any) -> TaskAdapter:
    """Build the adapter named ``kind`` and check it fits the model's outputs."""
    try:
        factory = ADAPTERS[kind]
    except KeyError:
        raise ConfigError(
            f"unknown task {kind!r}{did_you_mean(kind, ADAPTERS)}; known: {', '.join(sorted(ADAPTERS))}"
        ) from None
    adapter = factory(**options)
    adapter.check_outputs(output_specs)
    return adapter


__all__ = ["ADAPTERS", "OutputSpec", "Prediction", "TaskAdapter", "make_adapter"]
