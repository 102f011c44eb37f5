"""The model, preprocessing and task sections: one spelling for agent configs and suites.

An agent config (``agent.yaml``) and an acceptance suite (``suite.yaml``) both
say which model to load, how frames reach its input and how its outputs are
read. Both files use these Structs, so a ``model:`` or ``task:`` section can
be copied from one to the other unchanged, and a key documented once means
the same everywhere.

The task section takes the options every adapter understands as plain keys
(``layout``, ``score_threshold``, ...) and anything adapter-specific (a
plugin's own options, ``anchors:`` for ``ssd_anchors``) either as a plain key
listed here or under ``options:``; both reach the adapter as keywords.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from edgeprobe.harness.yamlconfig import NonNegInt, PosInt, Unit


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class PreprocessConfig(_Strict):
    #: how frames reach the model's input size
    resize: Literal["stretch", "center_crop", "letterbox"] = "stretch"
    #: channel order the model expects (frames arrive BGR from OpenCV)
    color: Literal["rgb", "bgr"] = "rgb"
    #: pixel = (pixel * scale - mean) / std, per channel
    scale: float = 1.0 / 255.0
    mean: list[float] = msgspec.field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: list[float] = msgspec.field(default_factory=lambda: [1.0, 1.0, 1.0])


class ProviderConfig(_Strict):
    """An execution provider with options, e.g. ``{name: TensorrtExecutionProvider, options: {trt_fp16_enable: true}}``.

    The options go to ONNX Runtime unchanged (its per-provider option names: TensorRT's
    ``trt_engine_cache_enable``/``trt_engine_cache_path``/``trt_fp16_enable``, CUDA's ``device_id``, ...).
    """

    name: Annotated[str, msgspec.Meta(min_length=1)]
    options: dict[str, str | int | float | bool] = msgspec.field(default_factory=dict)


class ModelConfig(_Strict):
    #: a .onnx or .tflite file (relative paths: against the file that names it)
    path: str
    backend: str = "auto"
    #: ONNX Runtime execution providers in order of preference: names, or {name, options} entries
    providers: list[str | ProviderConfig] = msgspec.field(default_factory=lambda: ["CPUExecutionProvider"])
    #: intra-op threads (0 = runtime default)
    threads: NonNegInt = 0
    #: [height, width] fed to a model whose input height/width are dynamic (a dynamic batch is always 1)
    input_size: Annotated[list[PosInt], msgspec.Meta(min_length=2, max_length=2)] | None = None
    preprocess: PreprocessConfig = msgspec.field(default_factory=PreprocessConfig)

    def provider_names(self) -> list[str]:
        return [p if isinstance(p, str) else p.name for p in self.providers]

    def provider_options(self) -> list[tuple[str, dict[str, str | int | float | bool]]]:
        """What ONNX Runtime's ``providers=`` takes: (name, options) per provider, in order."""
        return [(p, {}) if isinstance(p, str) else (p.name, dict(p.options)) for p in self.providers]


#: Keys of the task section handed to the adapter when set (kind and labels are handled apart).
_ADAPTER_KEYS = ("output", "threshold", "layout", "metric", "top_k", "iou", "score_threshold", "nms_iou",
                 "box_order", "strides", "mask_threshold", "anchors", "tolerance")


class TaskConfig(_Strict):
    #: a registered task adapter (`edgeprobe tasks` lists them, plugins included)
    kind: str = "classification"
    #: class names; for models that carry them in metadata this may be omitted
    labels: list[str] | None = None
    output: NonNegInt = 0
    #: disagreement above this counts as unstable
    threshold: Unit = 0.5
    #: output layout or preset of the adapter (`edgeprobe tasks` lists each adapter's layouts)
    layout: str | None = None
    #: classification disagreement: top1 | topk | prob
    metric: str | None = None
    top_k: PosInt | None = None
    #: detection: IoU for matching two predictions, score filter, NMS IoU, box order, grid strides
    iou: Unit | None = None
    score_threshold: Unit | None = None
    nms_iou: Unit | None = None
    box_order: Literal["yxyx", "xyxy"] | None = None
    strides: list[PosInt] | None = None
    #: segmentation: foreground probability cut for one-channel outputs
    mask_threshold: Unit | None = None
    #: ssd_anchors: MediaPipe SsdAnchorsCalculator options (input_size, strides, min_scale, max_scale, ...)
    anchors: dict[str, Any] | None = None
    #: keypoints: a keypoint moved when further than this share of the keypoint box diagonal
    tolerance: Unit | None = None
    #: any other adapter option (plugins' own), passed through as keywords
    options: dict[str, Any] = msgspec.field(default_factory=dict)

    def adapter_options(self) -> dict[str, Any]:
        """The options the task adapter takes, leaving out what the user did not set."""
        out = {k: getattr(self, k) for k in _ADAPTER_KEYS if getattr(self, k) is not None}
        for key, value in self.options.items():
            if key in out and out[key] != value:
                raise_conflict(key)
            out[key] = value
        return out


def check_task_names(task: TaskConfig, where: str, lines: dict[str, int], prefix: str = "task") -> None:
    """A misspelt task kind or layout, named with its file and line when the file is read.

    The adapter is built only once the model is loaded (its outputs decide what fits), which is too late and
    too far from the file to say where the typo is; a built-in adapter without layouts would even ignore one.
    Plugins' adapters check their own layouts when built.
    """
    from edgeprobe.harness.errors import ConfigError
    from edgeprobe.harness.tasks import ADAPTERS, layouts_of

    def at(key: str) -> str:
        line = lines.get(f"{prefix}.{key}") or lines.get(prefix)
        return f"{where} line {line}" if line else where

    if task.kind == "auto":
        return
    try:
        entry = ADAPTERS.entry(task.kind)
    except ConfigError as exc:
        raise ConfigError(f"{at('kind')}: {prefix}.kind: {exc}") from None
    if task.layout is None or entry.origin != "builtin":
        return
    known = [x for x in (*layouts_of(task.kind), *getattr(entry.value, "layout_aliases", ())) if x is not None]
    if task.layout not in known:
        from edgeprobe.harness.errors import did_you_mean

        takes = f"it takes one of {', '.join(known)}" if known else "it takes none: remove the key"
        raise ConfigError(f"{at('layout')}: {prefix}.layout {task.layout!r} is not a layout of {task.kind}"
                          f"{did_you_mean(task.layout, known)}; {takes} (`edgeprobe tasks` lists each task's "
                          "layouts)")


def raise_conflict(key: str) -> None:
    from edgeprobe.harness.errors import ConfigError

    raise ConfigError(f"task.{key} and task.options.{key} disagree; keep one of them")
