"""`edgeprobe validate suite.yaml`: check a suite without running it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(suite: Annotated[Path, typer.Argument(help="Suite YAML file.")]) -> None:
    """Validate keys, budgets, perturbation names, the golden files, and that the model loads and fits the task.

    The model is loaded and run once, and the task adapter's fit check runs on
    its real outputs, so "valid" means `edgeprobe check` will start.
    """
    import os

    from edgeprobe.cli.assets import cache_dir
    from edgeprobe.cli.console import console
    from edgeprobe.cli.userinput import yaml_file
    from edgeprobe.harness.errors import ConfigError, ModelError
    from edgeprobe.harness.suite import GoldenCheck, check_name, load_suite

    os.environ.setdefault("EDGEPROBE_ASSETS", str(cache_dir()))
    yaml_file(suite, "suite file", "pass the path to a suite YAML file")
    loaded = load_suite(suite)
    s = loaded.suite
    if not Path(s.model.path).is_file():
        raise ModelError(f"{loaded.line_of('model.path')}: model file {s.model.path} does not exist; "
                         "fix model.path (for the bundled examples, run `edgeprobe assets fetch`)")
    for i, c in enumerate(s.checks):
        if isinstance(c, GoldenCheck) and not Path(c.file).is_file():
            raise ConfigError(f"{loaded.line_of(f'checks[{i}].file')}: golden file {c.file} does not exist; "
                              f"record it with `edgeprobe golden record {suite} -o {c.file}`")
    from edgeprobe.agent.backends import load_backend, open_adapter

    backend = load_backend(s.model)
    try:
        adapter = open_adapter(backend, s.task)
    except ConfigError as exc:
        raise ConfigError(f"{loaded.line_of('task')}: {exc}") from None
    layout = getattr(adapter, "layout", None) or getattr(adapter, "preset_name", None)
    task = f"{s.task.kind}/{layout}" if layout else s.task.kind
    console.print(f"{suite}: valid suite {s.name!r}, model fits {task}, with {len(s.checks)} check(s): "
                  + ", ".join(check_name(c) for c in s.checks))
