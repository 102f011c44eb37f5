"""`edgeprobe validate suite.yaml`: check a suite without running it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


def validate(suite: Annotated[Path, typer.Argument(help="Suite YAML file.")]) -> None:
    """Validate keys, budgets, perturbation names and that the model and golden files exist."""
    import os

    from ..assets import cache_dir
    from ..console import console
    from ..harness.errors import ConfigError, ModelError
    from ..harness.suite import GoldenCheck, check_name, load_suite
    from ..userinput import yaml_file

    os.environ.setdefault("EDGEPROBE_ASSETS", str(cache_dir()))
    yaml_file(suite, "suite file", "pass the path to a suite YAML file")
    loaded = load_suite(suite)
    s = loaded.suite
    if not Path(s.model.path).is_file():
        raise ModelError(f"{loaded.line_of('model.path')}: model file {s.model.path} does not exist; "
                         "fix model.path (or run `make assets`)")
    for i, c in enumerate(s.checks):
        if isinstance(c, GoldenCheck) and not Path(c.file).is_file():
            raise ConfigError(f"{loaded.line_of(f'checks[{i}].file')}: golden file {c.file} does not exist; "
                              f"record it with `edgeprobe golden record {suite} -o {c.file}`")
    console.print(f"{suite}: valid suite {s.name!r} with {len(s.checks)} check(s): "
                  + ", ".join(check_name(c) for c in s.checks))
