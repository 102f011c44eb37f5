"""`edgeprobe golden record`: store reference outputs for a suite's fixed frame set.

Run it on the reference host (the workstation, the fp32 model); the suite's
`golden` check then feeds the board the recorded input tensors and compares its
answers within task-aware tolerances, reports apart whether the board decodes
the source into the same pixels, and refuses a golden file recorded from
another model unless the check names that model's hash on purpose.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

golden_app = typer.Typer(help="Record reference outputs for golden-equivalence checks.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(golden_app, name="golden")


@golden_app.command("record")
def record(
    suite: Annotated[Path, typer.Argument(help="Suite YAML file (its model, task and frame set are used).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Golden file to write (.npz).")],
    frames: Annotated[bool, typer.Option("--frames/--no-frames", help="Store the decoded frames and the model's "
                                         "input tensors (lossless) so another host feeds the very same inputs; "
                                         "without them a host whose decoder differs can judge only the frames it "
                                         "decodes identically.")] = True,
) -> None:
    """Run the suite's model on its frame set and store the raw outputs, its inputs and the model hash."""
    import os

    from edgeprobe.agent.golden import record as record_golden
    from edgeprobe.agent.suite_session import open_session
    from edgeprobe.cli.assets import cache_dir
    from edgeprobe.cli.console import console
    from edgeprobe.cli.userinput import output_file, yaml_file
    from edgeprobe.harness.suite import load_suite

    os.environ.setdefault("EDGEPROBE_ASSETS", str(cache_dir()))
    yaml_file(suite, "suite file", "pass the path to a suite YAML file")
    loaded = load_suite(suite)
    output_file(out, "--out", "golden.npz")
    session = open_session(loaded)
    meta = record_golden(session, out, frames=frames)
    stored = (f"and the frames and input tensors themselves ({out.stat().st_size / 1e6:.1f} MB)" if frames
              else "(frame and tensor hashes only)")
    console.print(f"{out}: outputs of {len(meta['frames'])} frames from {meta['model']} "
                  f"(sha256 {meta['model_sha256'][:12]}...) on {meta['host']} ({meta['machine']}, "
                  f"{meta['decoder']}) {stored}")
