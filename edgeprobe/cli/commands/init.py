"""`edgeprobe init MODEL`: a starter suite (or, with ``--agent``, an agent config) that runs, written from what
the model says about itself.

init loads the model, runs it once and picks the task kind and layout by the
same fit checks `check` applies (every registered layout is tried on that real
inference); it writes the preprocessing it can read (MediaPipe detectors'
[-1, 1] or [0, 1] with letterbox, ImageNet mean/std when the metadata names
them), paths relative to the suite, and a comment on how sure it is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeprobe.harness.yamlconfig import looks_like_url_or_device

#: the model and task sections, the same in a suite and an agent config (harness/modelconfig.py)
MODEL_TASK = """\
model:
  path: {model_path}
  threads: 0                  # 0 = the runtime's default{input_size_line}
  preprocess:
    resize: {resize}          # stretch | center_crop | letterbox
    color: {color}                # channel order the model was trained on (frames arrive BGR)
    scale: {scale}
    mean: {mean}
    std: {std}

task:
  kind: {task}{layout_line}
"""

TEMPLATE = """\
# Acceptance suite for {model_name}, written by `edgeprobe init`.
# Input: {input_desc}. Outputs: {output_desc}.
# Task: {confidence}
# Preprocessing: {pre_note}
# Check it with `edgeprobe validate {out}` and run it with
#   edgeprobe check {out} --junit junit.xml --html report.html
name: {name}
description: Starter suite; adjust the budgets and limits to what the deployment needs.
seed: 0
inconclusive: fail            # an undecided check fails the suite ("pass" to tolerate)

{model_task}
source:
  uri: {source}               # video file, image folder, camera index or stream URL
  frames: {frames}                  # the fixed frame set every robustness check uses
  stride: {stride}                  # keep every Nth frame, for variety

latency:
  samples: {samples}               # at most; stops once every budget is decided
  max_seconds: {max_seconds}

checks:
  - kind: latency
    stage: e2e                # decode | preprocess | inference | postprocess | e2e
    budget: p99=100ms         # a p99 claim needs at least a few hundred runs
    confidence: 0.95
  - kind: latency
    stage: inference
    budget: p95=50ms
    confidence: 0.95
  - kind: robustness
    perturbation: gaussian_noise    # `edgeprobe perturbations` lists them
    severity: 2
    max_unstable: 0.2
    confidence: 0.95          # judged on the Wilson interval: across the limit = inconclusive (decide: point to not)
  - kind: robustness
    perturbation: gaussian_blur
    severity: 2
    max_unstable: 0.2
    confidence: 0.95
  - kind: breaking_point
    perturbation: pixel_dropout
    min_severity: 1.0         # must surely hold below 20% unstable up to this severity
    confidence: 0.95
  - kind: health
    metric: sharpness         # brightness | contrast | sharpness | clipped | frozen_frames
    min: 20
  # - kind: golden            # after `edgeprobe golden record {out} -o golden.npz` on the reference host
  #   file: golden.npz
  #   min_agreement: 0.99
"""

AGENT_TEMPLATE = """\
# Agent config for {model_name}, written by `edgeprobe init --agent`.
# Input: {input_desc}. Outputs: {output_desc}.
# Task: {confidence}
# Preprocessing: {pre_note}
# Check it with `edgeprobe validate {out}`; {use}
fleet: default
# device_id: cam-01           # one per camera, as the collector keys everything by it (default: this host's name)

{source_block}
{model_task}
probe:
  cpu_share: 0.03             # probing (perturbed re-runs of frames) takes at most 3% of one core
  seed: 0
  perturbations:              # `edgeprobe perturbations` lists them
    - {{name: gaussian_noise, severities: [1, 3, 5]}}
    - {{name: gaussian_blur,  severities: [1, 3, 5]}}
    - {{name: pixel_dropout,  severities: [1, 3, 5]}}

monitor:
  health:
    every_n_frames: 10        # camera statistics on one frame in ten

windows:                      # each window's latency, robustness, health and drift go out as it closes
  frames: 300
  seconds: 10                 # whichever comes first

broker:                       # the MQTT broker the collector reads (`edgeprobe collect`)
  host: 127.0.0.1
  port: 1883

spool:
  path: edgeprobe-spool.db    # results wait here until the broker has them (relative to this file)
"""


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    model: Annotated[Path, typer.Argument(help="ONNX or TFLite model file.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="File to write (default suite.yaml, or agent.yaml with --agent).")] = None,
    source: Annotated[str | None, typer.Option(
        help="Frames to test on (video, image folder, camera); with --agent, what the agent watches (leave it "
             "out for an app that hands frames over with edgeprobe.attach).")] = None,
    agent: Annotated[bool, typer.Option(
        "--agent", help="Write an agent config (for `edgeprobe run`, or edgeprobe.attach) instead of a suite.")]
        = False,
    input_size: Annotated[str | None, typer.Option(
        "--input-size", help="HxW for a model with a dynamic input size (default 640x640 there).")] = None,
    frames: Annotated[int, typer.Option(help="Frames in the suite's fixed frame set.")] = 32,
    stride: Annotated[int, typer.Option(help="Keep every Nth source frame.")] = 10,
    latency_samples: Annotated[int, typer.Option(help="Most timed runs of the latency checks.")] = 2000,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a starter suite for MODEL that `edgeprobe check` runs as written (or, with --agent, an agent config
    that `edgeprobe run` and `edgeprobe.attach` take as written)."""
    from edgeprobe.agent.backends import load_backend
    from edgeprobe.agent.config import ModelConfig, load_config
    from edgeprobe.cli.console import console
    from edgeprobe.cli.userinput import existing_file, output_file, parse_input_size
    from edgeprobe.harness.errors import ConfigError, ModelError
    from edgeprobe.harness.fileio import atomic_write
    from edgeprobe.harness.suite import load_suite

    out = out or Path("agent.yaml" if agent else "suite.yaml")
    existing_file(model, "model file", "give the path of a .onnx or .tflite model")
    output_file(out, "--out", "agent.yaml" if agent else "suite.yaml")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it or -o to pick another file")
    for name, value in (("--frames", frames), ("--stride", stride), ("--latency-samples", latency_samples)):
        if value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    size = parse_input_size(input_size) if input_size else None
    try:
        backend = load_backend(ModelConfig(path=str(model), input_size=size))
    except ModelError as exc:
        if size is not None or "dynamic height/width" not in str(exc):
            raise
        size = [640, 640]  # a dynamic model: pick a common detector size, said in the file
        backend = load_backend(ModelConfig(path=str(model), input_size=size))
    fields = _fields(backend, model, out, source or "video.mp4", size)
    fields["model_task"] = MODEL_TASK.format(**fields)
    if agent:
        if source is None:
            fields["source_block"] = ("# No source: the application hands its frames over (edgeprobe.attach); "
                                      "for `edgeprobe run`\n# add source: {uri: <camera index, stream URL, video "
                                      "or folder>}\n")
            fields["use"] = f'attach it in the application with edgeprobe.attach("{out}")'
        else:
            fields["source_block"] = (f"source:\n  uri: {fields['source']}               # camera index, stream "
                                      "URL, video file or image folder\n")
            fields["use"] = f"run it with `edgeprobe run -c {out}`"
        text = AGENT_TEMPLATE.format(**fields)
    else:
        fields.update(frames=str(frames), stride=str(stride), samples=str(latency_samples),
                      max_seconds="60" if latency_samples > 300 else "20")
        text = TEMPLATE.format(**fields)
    atomic_write(out, lambda f: f.write(text.encode("utf-8")))
    try:
        load_config(out) if agent else load_suite(out)
    except ConfigError:
        out.unlink(missing_ok=True)
        raise
    what = "agent config" if agent else "starter suite"
    console.print(f"{out}: {what} for {model.name}: {fields['confidence']}; "
                  + (fields["use"] if agent else f"run `edgeprobe check {out}`"))


def _relative(path: str, out: Path) -> str:
    """``path`` relative to the suite's folder (suites move with their models), absolute across drives."""
    try:
        return os.path.relpath(Path(path).resolve(), out.resolve().parent)
    except ValueError:
        return str(Path(path).resolve())


_IMAGENET = ("[0.485, 0.456, 0.406]", "[0.229, 0.224, 0.225]")


def _preprocess(backend: Any, kind: str, layout: str | None) -> tuple[dict[str, str], str]:
    """Preprocessing read from the model (MediaPipe presets, metadata), and a note on where it came from."""
    meta = {k.lower(): str(v) for k, v in backend.metadata.items()}
    unit = {"resize": "letterbox" if kind in ("detection", "ssd_anchors") else "stretch", "color": "rgb",
            "scale": "0.00392156862745098", "mean": "[0.0, 0.0, 0.0]", "std": "[1.0, 1.0, 1.0]"}
    if kind == "ssd_anchors" and layout and not layout.startswith("palm"):
        # MediaPipe's face and pose detector graphs feed [-1, 1] (ImageToTensorCalculator range -1..1), letterboxed.
        return ({**unit, "scale": "0.00784313725490196", "mean": "[1.0, 1.0, 1.0]"},
                f"MediaPipe {layout} detector: RGB in [-1, 1], letterboxed, as its graph feeds it")
    if kind == "ssd_anchors":
        return unit, f"MediaPipe {layout} detector: RGB in [0, 1], letterboxed, as its graph feeds it"
    if kind == "keypoints":
        # MediaPipe's landmark graphs feed a square crop around the hand/person, RGB in [0, 1].
        return ({**unit, "resize": "letterbox"},
                f"MediaPipe {layout} landmarks: RGB in [0, 1], letterboxed (frames should be crops around one "
                "hand/person, as MediaPipe's detector stage gives it)")
    if kind == "detection" and layout == "yolox":
        # Megvii's YOLOX feeds BGR pixel values unnormalised (its preprocessing since 0.1.1), letterboxed.
        return ({**unit, "color": "bgr", "scale": "1.0"},
                "YOLOX layout: BGR pixels 0-255 unnormalised, letterboxed, as YOLOX's own preprocessing feeds it "
                "(CHECK if this export was trained otherwise)")
    if "mean" in meta and "std" in meta:
        mean, std = (f"[{meta[k].strip('[]() ')}]" for k in ("mean", "std"))
        return {**unit, "mean": mean, "std": std}, "mean and std from the model's metadata"
    if any("imagenet" in v.lower() for v in meta.values()) or any("imagenet" in k for k in meta):
        return ({**unit, "mean": _IMAGENET[0], "std": _IMAGENET[1]},
                "the metadata names ImageNet: ImageNet mean/std")
    if "stride" in meta and "names" in meta:
        return unit, "Ultralytics metadata (names, stride): RGB in [0, 1], letterboxed"
    return unit, ("CHECK: the model says nothing about its preprocessing; RGB in [0, 1] is a guess "
                  "(ImageNet models want mean [0.485, 0.456, 0.406] std [0.229, 0.224, 0.225])")


def _fields(backend: Any, model: Path, out: Path, source: str, size: list[int] | None) -> dict[str, str]:
    from edgeprobe.harness.tasks import fitting_layouts, layout_name

    spec = backend.input_spec
    outs = backend.output_specs
    fits = fitting_layouts(outs, backend.sample_outputs(), (spec.height, spec.width))
    if fits:
        kind, layout = fits[0]
        others = [layout_name(k, lay) for k, lay in fits[1:]]
        confidence = (f"{layout_name(kind, layout)} is the only registered layout that fits the outputs of a real "
                      "inference" if not others else
                      f"{layout_name(kind, layout)} picked; these fit too: {', '.join(others)} (check which is meant)")
    else:
        kind, layout = "tensor", None
        confidence = "CHECK: no registered layout fits, so raw outputs are compared (cosine distance)"
    pre, pre_note = _preprocess(backend, kind, layout)
    dynamic = any(d is None for d in spec.shape[1:]) or size is not None
    size_line = (f"\n  input_size: [{spec.height}, {spec.width}]   # the model's input is dynamic; "
                 "frames are fed at this size" if dynamic else "")
    uri = source if looks_like_url_or_device(source) or not Path(source).exists() else _relative(source, out)
    return {
        "model_name": model.name, "name": model.stem.replace("_", "-") + "-acceptance",
        "model_path": _relative(str(model), out), "out": str(out), "source": uri, "task": kind,
        "layout_line": f"\n  layout: {layout}" if layout else "", "input_size_line": size_line,
        "confidence": confidence, "pre_note": pre_note, **pre,
        "input_desc": f"{spec.name} {list(spec.shape)} {spec.dtype} {spec.layout}",
        "output_desc": ", ".join(f"{o.name} {list(o.shape)}" for o in outs),
    }
