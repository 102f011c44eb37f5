"""`edgeprobe init MODEL`: a starter suite written from the model's own input spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

TEMPLATE = """\
# Acceptance suite for {model_name}, written by `edgeprobe init`.
# Input: {input_desc}. Outputs: {output_desc}.
# Check it with `edgeprobe validate {out}` and run it with
#   edgeprobe check {out} --junit junit.xml --html report.html
name: {name}
description: Starter suite; adjust the budgets and limits to what the deployment needs.
seed: 0
inconclusive: fail            # an undecided check fails the suite ("pass" to tolerate)

model:
  path: {model_path}
  threads: 0                  # 0 = the runtime's default
  preprocess:
    resize: {resize}          # stretch | center_crop | letterbox
    color: rgb                # channel order the model was trained on (frames arrive BGR)
    scale: 0.00392156862745098  # 1/255
    mean: [0.0, 0.0, 0.0]     # e.g. ImageNet: [0.485, 0.456, 0.406]
    std: [1.0, 1.0, 1.0]      # e.g. ImageNet: [0.229, 0.224, 0.225]

task:
  kind: {task}{task_note}

source:
  uri: {source}               # video file, image folder, camera index or stream URL
  frames: 32                  # the fixed frame set every robustness check uses
  stride: 10                  # keep every 10th frame, for variety

latency:
  samples: 2000               # at most; stops once every budget is decided
  max_seconds: 60

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


def register(app: typer.Typer) -> None:
    app.command("init")(init)


def init(
    model: Annotated[Path, typer.Argument(help="ONNX or TFLite model file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Suite file to write.")] = Path("suite.yaml"),
    source: Annotated[str, typer.Option(help="Frames to test on (video, image folder, camera).")] = "video.mp4",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing suite file.")] = False,
) -> None:
    """Write a starter suite for MODEL with commented defaults."""
    from ..agent.backends import load_backend
    from ..agent.config import ModelConfig
    from ..console import console
    from ..harness.errors import ConfigError
    from ..harness.fileio import atomic_write
    from ..harness.suite import load_suite
    from ..userinput import existing_file, output_file

    existing_file(model, "model file", "give the path of a .onnx or .tflite model")
    output_file(out, "--out", "suite.yaml")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it or -o to pick another file")
    backend = load_backend(ModelConfig(path=str(model)))
    text = TEMPLATE.format(**_fields(backend, model, out, source))
    atomic_write(out, lambda f: f.write(text.encode("utf-8")))
    try:
        load_suite(out)
    except ConfigError:
        out.unlink(missing_ok=True)
        raise
    console.print(f"{out}: starter suite for {model.name} ({backend.input_spec.width}x{backend.input_spec.height} "
                  f"{backend.input_spec.layout}); set source.uri and the preprocessing, then `edgeprobe check {out}`")


def _known_anchor_ssd(outputs: Any) -> bool:
    from ..harness.errors import EdgeprobeError
    from ..harness.tasks import make_adapter

    try:
        make_adapter("ssd_anchors", list(outputs))
    except (EdgeprobeError, KeyError):
        return False
    return True


def _fields(backend: Any, model: Path, out: Path, source: str) -> dict[str, str]:
    from ..harness.tasks import ADAPTERS

    spec = backend.input_spec
    outs = backend.output_specs
    dims = [d for d in (outs[0].shape if outs else ()) if d not in (1, None)]
    if len(dims) <= 1:
        task, note = "classification", "    # one score vector per frame"
    elif _known_anchor_ssd(outs):
        task, note = "ssd_anchors", "       # raw regressors + logits against a known SSD anchor set (MediaPipe)"
    elif "detection" in ADAPTERS:
        task, note = "detection", "         # boxes decoded by the detection adapter"
    else:
        task, note = "classification", f"    # CHECK: output shape {list(outs[0].shape)} looks like more than scores"
    return {
        "model_name": model.name, "name": model.stem.replace("_", "-") + "-acceptance",
        "model_path": str(model.resolve()), "out": str(out), "source": source, "task": task, "task_note": note,
        "resize": {"detection": "letterbox", "ssd_anchors": "stretch"}.get(task, "center_crop"),
        "input_desc": f"{spec.name} {list(spec.shape)} {spec.dtype} {spec.layout}",
        "output_desc": ", ".join(f"{o.name} {list(o.shape)}" for o in outs),
    }
