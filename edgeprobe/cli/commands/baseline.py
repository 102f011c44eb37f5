"""`edgeprobe baseline record`: what a camera and its model look like when all is well.

The agent compares every window with it: health bands (went blurry, dark,
covered), output drift (class histogram, scores, mean output) and input
drift, and slices by brightness/contrast quintile. A baseline belongs to one
model: the agent refuses one recorded with another model's hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

baseline_app = typer.Typer(help="Record the reference that drift and health bands are judged against.",
                           no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(baseline_app, name="baseline")


@baseline_app.command("record")
def record(
    config: Annotated[Path, typer.Option("--config", "-c", help="Agent YAML file (model, task, source).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Baseline file to write (.json).")],
    max_frames: Annotated[int, typer.Option(help="Frames to record.", min=1)] = 300,
    source: Annotated[str | None, typer.Option(help="Override source.uri.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary line.")] = False,
) -> None:
    """Run the agent's model on its source and store output distribution and input statistics with the model hash."""
    import os

    from edgeprobe.agent.config import load_config
    from edgeprobe.agent.monitor import record_baseline
    from edgeprobe.cli.assets import cache_dir
    from edgeprobe.cli.console import console, interactive, progress_bar
    from edgeprobe.cli.userinput import output_file, yaml_file
    from edgeprobe.harness.errors import ConfigError

    os.environ.setdefault("EDGEPROBE_ASSETS", str(cache_dir()))
    output_file(out, "--out", "baseline.json")
    yaml_file(config, "config file", "pass the path to an agent YAML file")
    loaded = load_config(config, {"source.uri": source} if source else None)
    with progress_bar("recording baseline", max_frames, interactive(json_output)) as bar:
        def on_frame(n: int) -> None:
            if bar is not None:
                bar.update(bar.task_ids[0], completed=n)

        baseline = record_baseline(loaded, max_frames, on_frame)
    data = baseline.to_dict()
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data), encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write baseline {out}: {exc.strerror or exc}; pick another --out") from None
    t = baseline.table
    top = sorted(t.classes.items(), key=lambda kv: -kv[1])[:4]
    summary = {"out": str(out), "frames": baseline.frames, "rows": t.n, "model_sha256": baseline.model_sha256,
               "classes": dict(top), "brightness_median": float(_median(t.inputs["brightness"])),
               "sharpness_median": float(_median(t.inputs["sharpness"]))}
    if json_output:
        print(json.dumps(summary))
    else:
        shares = ", ".join(f"{k} {v / max(1, sum(t.classes.values())):.0%}" for k, v in top)
        console.print(f"{out}: {baseline.frames} frames from {data.get('model')} "
                      f"(sha256 {baseline.model_sha256[:12]}...); classes {shares or 'none'}; "
                      f"median brightness {summary['brightness_median']:.0f}, "
                      f"sharpness {summary['sharpness_median']:.0f}")


def _median(x: object) -> float:
    import numpy as np

    return float(np.median(np.asarray(x, np.float64)))
