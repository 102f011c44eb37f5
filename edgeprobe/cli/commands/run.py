"""`edgeprobe run`: the on-device agent."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="Agent YAML file.")],
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many measured frames.", min=1)] = None,
    source: Annotated[str | None, typer.Option(help="Override source.uri.")] = None,
    model: Annotated[str | None, typer.Option(help="Override model.path.")] = None,
    broker: Annotated[str | None, typer.Option(help="Override the broker as HOST:PORT.")] = None,
    no_broker: Annotated[bool, typer.Option("--no-broker", help="Measure and spool only.")] = False,
    device_id: Annotated[str | None, typer.Option(help="Override device_id.")] = None,
    spool: Annotated[str | None, typer.Option(help="Override spool.path.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the run's figures as JSON.")] = False,
    heartbeat_file: Annotated[Path | None, typer.Option(
        envvar="EDGEPROBE_HEARTBEAT_FILE",
        help="Touch this file while the agent is alive (a container HEALTHCHECK runs `edgeprobe heartbeat` on it).",
    )] = None,
) -> None:
    """Run the agent: measure the model on the source and report to the broker."""
    import os

    from edgeprobe.agent.config import load_config
    from edgeprobe.agent.runner import Agent
    from edgeprobe.cli.assets import cache_dir
    from edgeprobe.cli.console import console, interactive, progress_bar
    from edgeprobe.cli.userinput import host_port, yaml_file
    from edgeprobe.harness.yamlconfig import looks_like_url_or_device, resolve_path

    # Paths typed on the command line are the user's, relative to where they type them (the working
    # directory); the config file's own paths stay relative to the config file.
    cwd = Path.cwd()
    overrides: dict[str, Any] = {}
    if source:
        overrides["source.uri"] = source if looks_like_url_or_device(source) else resolve_path(source, cwd)
    if model:
        overrides["model.path"] = resolve_path(model, cwd)
    if device_id:
        overrides["device_id"] = device_id
    if spool:
        overrides["spool.path"] = resolve_path(spool, cwd)
    if no_broker:
        overrides["broker.enabled"] = False
    if broker:
        overrides["broker.host"], overrides["broker.port"] = host_port(broker)
        overrides["broker.enabled"] = True
    # Configs may name the example assets as ${EDGEPROBE_ASSETS}/file.
    os.environ.setdefault("EDGEPROBE_ASSETS", str(cache_dir()))
    yaml_file(config, "config file", "pass the path to an agent YAML file")
    loaded = load_config(config, overrides)
    check_spool(Path(loaded.config.spool.path), "--spool" if spool else "spool.path")
    from edgeprobe.agent.sdnotify import Heartbeat, Notifier

    notifier = Notifier()  # systemd Type=notify + WatchdogSec (deploy/edgeprobe-agent.service); no-op elsewhere
    # Pings from its own thread while the loop shows life: a camera outage is not a hang (agent/sdnotify.py).
    heartbeat = Heartbeat(notifier, file=heartbeat_file).start()
    try:
        with heartbeat.loading("loading the model"):  # an engine build may outlast systemd's start timeout
            agent = Agent(loaded)
        notifier.ready(f"measuring {loaded.config.device_id}")

        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())

        with progress_bar(f"{loaded.config.device_id}: frames", max_frames, interactive(json_output)) as bar:
            def on_frame(n: int) -> None:
                heartbeat.frame(n)
                if bar is not None:
                    bar.update(bar.task_ids[0], completed=n)

            stats = agent.run(max_frames=max_frames, stop=stop, on_frame=on_frame, on_idle=heartbeat.idle)
    finally:
        heartbeat.stop()
    notifier.stopping()  # after the last ping: systemd reads nothing into a ping that follows it

    figures = {
        "device_id": loaded.config.device_id, "frames": stats.frames, "warmup_runs": stats.warmup_runs,
        "probed_frames": stats.probed_frames, "windows": stats.windows, "wall_s": round(stats.wall_s, 3),
        "fps": round(stats.fps, 2), "peak_rss_mb": round(stats.peak_rss_mb, 1),
        "probe_peak_rss_mb": round(stats.probe_peak_rss_mb, 1),
        "first_result_s": stats.first_result_s, "messages": stats.messages,
        "spool_pending": stats.spool_pending, "model_sha256": agent.backend.sha256,
        "config_sha256": loaded.sha256, "robustness": agent.robustness_run.summary(),
        "monitor": agent.monitor.run_summary(),
    }
    if json_output:
        print(json.dumps(figures))
    else:
        probe_rss = f" (its probe process {stats.probe_peak_rss_mb:.0f} MB more)" if stats.probe_peak_rss_mb else ""
        console.print(
            f"[bold]{figures['device_id']}[/]: {stats.frames} frames in {stats.wall_s:.1f} s "
            f"({stats.fps:.1f} fps), {stats.probed_frames} probed, {stats.windows} windows, "
            f"peak RSS {stats.peak_rss_mb:.0f} MB{probe_rss}, {stats.spool_pending} message(s) left in the spool"
        )
        from edgeprobe.cli.robustness_view import print_robustness

        print_robustness(agent.robustness_run.summary())
        from edgeprobe.cli.monitor_view import print_monitor

        print_monitor(agent.monitor.run_summary())


def check_spool(path: Path, where: str) -> None:
    """Refuse a spool path the agent could not open, before the model loads: a folder, or a file that is not SQLite."""
    from edgeprobe.cli.userinput import sqlite_file
    from edgeprobe.harness.errors import ConfigError

    hint = f"set {where} to a .db file of its own (created if missing)"
    sqlite_file(path, "spool", hint)
    for p in path.parents:
        if p.exists():
            if not p.is_dir():
                raise ConfigError(f"spool {path}: {p} is a file, not a folder; {hint}")
            break
