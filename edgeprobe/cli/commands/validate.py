"""`edgeprobe validate FILE`: check a suite, or an agent / SDK config, without running it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)


#: top-level keys only an agent config has (a suite has name and checks instead)
AGENT_KEYS = frozenset({"device_id", "fleet", "source", "broker", "spool", "monitor", "windows"})


def validate(suite: Annotated[Path, typer.Argument(help="Suite YAML file, or an agent / SDK config.")]) -> None:
    """Validate keys, budgets, perturbation names, the golden files, and that the model loads and fits the task.

    The model is loaded and run once, and the task adapter's fit check runs on
    its real outputs, so "valid" means `edgeprobe check` will start. An agent
    config (`edgeprobe run -c`, or `edgeprobe.attach` without a source) gets
    the same checks of its model, task and probe sections.
    """
    import os

    from edgeprobe.cli.assets import cache_dir
    from edgeprobe.cli.console import console
    from edgeprobe.cli.userinput import yaml_file
    from edgeprobe.harness.errors import ConfigError, ModelError
    from edgeprobe.harness.suite import GoldenCheck, check_name, load_suite

    os.environ.setdefault("EDGEPROBE_ASSETS", str(cache_dir()))
    yaml_file(suite, "suite file", "pass the path to a suite YAML file")
    if _is_agent_config(suite):
        _validate_agent_config(suite)
        return
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


def _is_agent_config(path: Path) -> bool:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return False  # the suite loader names the problem with its line
    return isinstance(doc, dict) and "checks" not in doc and bool(AGENT_KEYS & set(doc))


def _validate_agent_config(path: Path) -> None:
    """An agent or SDK config: its keys, then the model loaded and fit-checked as the agent would."""
    from edgeprobe.agent.config import load_config
    from edgeprobe.agent.pipeline import open_pipeline
    from edgeprobe.agent.prober import Prober
    from edgeprobe.cli.console import console

    cfg = load_config(path).config
    pipeline = open_pipeline(cfg.model, cfg.task)
    adapter = pipeline.adapter
    prober = Prober(cfg.probe, pipeline.predict, adapter.disagreement, adapter.threshold, adapter=adapter,
                    input_hw=pipeline.input_hw)
    layout = getattr(adapter, "layout", None) or getattr(adapter, "preset_name", None)
    task = f"{cfg.task.kind}/{layout}" if layout else cfg.task.kind
    source = f"source {cfg.source.uri}" if cfg.source is not None else "no source (for edgeprobe.attach: the app " \
                                                                       "hands frames over)"
    cells = sum(len(severities) for _, severities in prober.plan)
    console.print(f"{path}: valid agent config for device {cfg.device_id!r}, model fits {task}, {source}, "
                  f"{cells} probe cell(s)" + ("" if cfg.probe.enabled else " (probing off)"))
