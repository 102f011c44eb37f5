"""Task adapters: raw output tensors -> comparable predictions.

An adapter knows how to read a model's outputs for one task, how much two
predictions disagree (a number in [0, 1]) and above which disagreement a
prediction counts as unstable. Adapters are chosen in config by name
(``task.kind``) and layout (``task.layout``), and live in one registry
(:data:`ADAPTERS`) that plugins extend through the ``edgeprobe.adapters``
entry-point group.

Every adapter states the outputs it accepts (``accepts``, per layout) and
checks them strictly when it is built: :func:`make_adapter` checks the
declared shapes, or the shapes of one real inference where they are dynamic,
and the values of that inference (scores must be probabilities). A misfit is
one sentence naming the output, its shape, what the layout expects and the
layouts that would fit (:func:`fitting_layouts`, which ``edgeprobe init`` uses
to pick one).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.registry import Registry
from edgeprobe.harness.tasks.base import LayoutMisfit, OutputSpec, Prediction, TaskAdapter, shape_text
from edgeprobe.harness.tasks.classification import ClassificationAdapter
from edgeprobe.harness.tasks.detection import DetectionAdapter
from edgeprobe.harness.tasks.embedding import EmbeddingAdapter, TensorAdapter
from edgeprobe.harness.tasks.keypoints import KeypointsAdapter
from edgeprobe.harness.tasks.segmentation import SegmentationAdapter
from edgeprobe.harness.tasks.ssd_anchors import SsdAnchorsAdapter

#: Task adapters by kind: the built-ins, then plugins (entry points in ``edgeprobe.adapters``) on first use.
#: A plugin's entry point loads a class (or factory) taking the adapter options as keywords.
ADAPTERS: Registry[Callable[..., TaskAdapter]] = Registry(
    "task", group="edgeprobe.adapters", listing="edgeprobe tasks"
)
# Order is the order `init` and `task.kind: auto` try them in: the adapters that read several outputs of exact
# shapes first, then the ones any score vector fits (a landmark model's (1, 63) reads as 63 "classes" too).
ADAPTERS.register("detection", DetectionAdapter)
ADAPTERS.register("ssd_anchors", SsdAnchorsAdapter)
ADAPTERS.register("segmentation", SegmentationAdapter)
ADAPTERS.register("keypoints", KeypointsAdapter)
ADAPTERS.register("classification", ClassificationAdapter)
ADAPTERS.register("embedding", EmbeddingAdapter)
ADAPTERS.register("tensor", TensorAdapter)

#: Kinds that fit any output, so they never count as "a layout that fits".
GENERIC_KINDS = ("tensor",)

#: Offered by the agent to every adapter; only some take them.
_OFFERED = ("input_size", "labels")


def layouts_of(kind: str) -> tuple[str | None, ...]:
    """The layouts (or presets) an adapter declares; ``(None,)`` for one without layouts."""
    return tuple(getattr(ADAPTERS.get(kind), "layouts", (None,)) or (None,))


def accepts_of(kind: str) -> dict[str | None, str]:
    return dict(getattr(ADAPTERS.get(kind), "accepts", {}) or {})


def concrete_specs(specs: Sequence[OutputSpec], sample: Sequence[np.ndarray] | None) -> list[OutputSpec]:
    """The declared output specs, with the real shapes of one inference where dimensions are dynamic.

    Without a sample, a dynamic leading (batch) dimension is 1: edgeprobe always feeds one frame, so
    a model exported with a dynamic batch fits exactly the layouts its batch-of-one output fits.
    """
    out = []
    for i, spec in enumerate(specs):
        if sample is not None and i < len(sample) and any(d is None for d in spec.shape):
            arr = np.asarray(sample[i])
            out.append(OutputSpec(spec.name, tuple(int(d) for d in arr.shape), str(arr.dtype)))
        elif spec.shape and spec.shape[0] is None:
            out.append(OutputSpec(spec.name, (1, *spec.shape[1:]), spec.dtype))
        else:
            out.append(spec)
    return out


def _construct(kind: str, factory: Callable[..., TaskAdapter], options: dict[str, Any]) -> TaskAdapter:
    params = inspect.signature(factory).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {}
    for key, value in options.items():
        if takes_all or key in params:
            kwargs[key] = value
        elif key not in _OFFERED:
            raise ConfigError(f"task.{key} does not apply to task {kind!r}; remove it")
    try:
        return factory(**kwargs)
    except TypeError as exc:  # a plugin's factory refusing an option
        raise ConfigError(f"task {kind!r} does not take these options ({exc}); check the task section") from None


def _fit(adapter: TaskAdapter, specs: Sequence[OutputSpec], sample: Sequence[np.ndarray] | None) -> None:
    adapter.check_outputs(specs)
    check_values = getattr(adapter, "check_values", None)
    if sample is not None and check_values is not None:
        check_values(sample)


def fitting_layouts(specs: Sequence[OutputSpec], sample: Sequence[np.ndarray] | None = None,
                    input_size: tuple[int, int] | None = None) -> list[tuple[str, str | None]]:
    """Every registered (kind, layout) whose fit check passes on these outputs, in registry order.

    Generic kinds (``tensor``, which fits anything) are left out.
    """
    specs = concrete_specs(specs, sample)
    found: list[tuple[str, str | None]] = []
    for entry in ADAPTERS.entries_in_order():
        if entry.name in GENERIC_KINDS:
            continue
        for layout in layouts_of(entry.name):
            options: dict[str, Any] = {"input_size": input_size}
            if layout is not None:
                options["layout"] = layout
            try:
                _fit(_construct(entry.name, entry.value, options), specs, sample)
            except Exception:  # any misfit (or a plugin that cannot even be built this way) is "does not fit"
                continue
            found.append((entry.name, layout))
    return found


def layout_name(kind: str, layout: str | None) -> str:
    return f"{kind}/{layout}" if layout else kind


def fits_hint(specs: Sequence[OutputSpec], sample: Sequence[np.ndarray] | None,
              input_size: tuple[int, int] | None) -> str:
    fits = fitting_layouts(specs, sample, input_size)
    if fits:
        return "layouts that fit: " + ", ".join(layout_name(k, lay) for k, lay in fits)
    shapes = ", ".join(shape_text(s.shape) for s in concrete_specs(specs, sample))
    return f"no registered layout fits outputs {shapes} (task.kind tensor compares raw outputs)"


def make_adapter(kind: str, output_specs: Sequence[OutputSpec], sample: Sequence[np.ndarray] | None = None,
                 **options: Any) -> TaskAdapter:
    """Build the adapter named ``kind`` and check strictly that it fits the model's outputs.

    ``sample`` is the outputs of one real inference: it fills in dynamic
    dimensions and lets adapters check values (scores in [0, 1]). A task
    without ``layout`` takes the first of its layouts that fits.
    """
    factory = ADAPTERS.get(kind)
    specs = concrete_specs(output_specs, sample)
    input_size = options.get("input_size")
    layouts = layouts_of(kind)
    if options.get("layout") is None and None not in layouts and kind != "ssd_anchors":
        for layout in layouts:
            try:
                candidate = _construct(kind, factory, {**options, "layout": layout})
                _fit(candidate, specs, sample)
            except LayoutMisfit:
                continue
            return candidate
        raise LayoutMisfit(f"none of {kind}'s layouts ({', '.join(str(x) for x in layouts)}) fits outputs "
                           f"{', '.join(shape_text(s.shape) for s in specs)}; {fits_hint(specs, sample, input_size)}")
    adapter = _construct(kind, factory, options)
    try:
        _fit(adapter, specs, sample)
    except LayoutMisfit as exc:
        raise LayoutMisfit(f"{exc}; {fits_hint(specs, sample, input_size)}") from None
    return adapter


__all__ = ["ADAPTERS", "GENERIC_KINDS", "LayoutMisfit", "OutputSpec", "Prediction", "TaskAdapter", "accepts_of",
           "concrete_specs", "fits_hint", "fitting_layouts", "layout_name", "layouts_of", "make_adapter"]
