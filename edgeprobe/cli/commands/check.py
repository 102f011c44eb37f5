"""`edgeprobe check suite.yaml`: run an acceptance suite, one verdict, exit code for CI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command("check")(check)


def check(
    suite: Annotated[Path, typer.Argument(help="Suite YAML file.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the whole result as JSON (for diff).")] = False,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    html_out: Annotated[Path | None, typer.Option("--html", help="Write the self-contained HTML report here.")] = None,
    broker: Annotated[str | None, typer.Option(help="Publish the verdict to this broker (HOST:PORT).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="A frame set shorter than asked is an error, not a "
                                                          "warning.")] = False,
) -> None:
    """Run the suite's checks: exit 0 when all pass, 1 when one fails, 3 when the evidence does not decide."""
    from edgeprobe.cli.console import console, interactive

    result, _worst = run_check(suite, junit=junit, html_out=html_out, broker=broker,
                              show_progress=interactive(json_output), strict=strict)
    if json_output:
        print(json.dumps(result, default=str))
    else:
        render_table(result, console)
        for w in result.get("warnings", []):
            console.print(f"[bold yellow]warning:[/] {w}")
        for label, path in (("JUnit", junit), ("HTML report", html_out)):
            if path:
                console.print(f"{label}: {path}")
    raise typer.Exit(result["exit_code"])


def run_check(suite: Path, junit: Path | None = None, html_out: Path | None = None, broker: str | None = None,
              show_progress: bool = False, strict: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Validate, run, write the outputs and publish; shared by `check` and `demo`."""
    from edgeprobe.agent.suite_runner import run_suite
    from edgeprobe.cli.assets import cache_dir
    from edgeprobe.cli.console import progress_bar
    from edgeprobe.cli.userinput import output_file, require_extra, yaml_file
    from edgeprobe.harness.suite import load_suite

    os.environ.setdefault("EDGEPROBE_ASSETS", str(cache_dir()))
    yaml_file(suite, "suite file", "pass the path to a suite YAML file")
    loaded = load_suite(suite)
    if junit is not None:
        output_file(junit, "--junit", "junit.xml")
    if html_out is not None:
        output_file(html_out, "--html", "report.html")
        # a missing extra is bad input found now, not after minutes of measuring
        require_extra("matplotlib", "report", "the HTML report (--html)")
    target = _broker_target(loaded, broker)
    with progress_bar("loading", None, show_progress) as bar:
        def progress(phase: str, done: int, total: int | None) -> None:
            if bar is not None:
                bar.update(bar.task_ids[0], description=phase, completed=done, total=total)

        result, artifacts = run_suite(loaded, progress, strict=strict)
    if junit or html_out:
        result["provenance"]["outputs"] = {k: str(v) for k, v in (("junit", junit), ("html", html_out)) if v}
    if junit:
        from edgeprobe.cli.junit import write_junit

        write_junit(junit, result)
    if html_out:
        from edgeprobe.cli.report import write_html

        write_html(html_out, result, artifacts.worst)
    if target is not None:
        result["published"] = publish_verdict(loaded, result, *target)
    return result, artifacts.worst


def _broker_target(loaded: Any, broker: str | None) -> tuple[str, int, str, str] | None:
    import platform

    from edgeprobe.cli.userinput import host_port

    spec = loaded.suite.broker
    if broker is None and spec is None:
        return None
    host, port = (spec.host, spec.port) if spec else ("127.0.0.1", 1883)
    if broker:
        host, port = host_port(broker)
    fleet = spec.fleet if spec else "default"
    device = (spec.device_id if spec else None) or platform.node() or "device"
    return host, port, fleet, device


def publish_verdict(loaded: Any, result: dict[str, Any], host: str, port: int, fleet: str, device: str) -> bool:
    """Spool the verdict first (durable), then publish; True once the broker acknowledged it."""
    import logging
    import time

    from edgeprobe.agent.messages import Messenger
    from edgeprobe.agent.publisher import Publisher
    from edgeprobe.agent.spool import Spool
    from edgeprobe.cli.assets import cache_dir
    from edgeprobe.harness.suite_report import verdict_body

    spool_path = Path(os.environ.get("EDGEPROBE_VERDICT_SPOOL", str(cache_dir() / "verdict-spool.db")))
    spool_path.parent.mkdir(parents=True, exist_ok=True)
    spool = Spool(spool_path)
    prov = result["provenance"]
    messenger = Messenger(spool, device, fleet, model_sha256=prov["model_sha256"],
                          config_sha256=prov["config_sha256"])
    messenger.send("verdict", verdict_body(result))
    publisher = Publisher(spool, host, port, client_id=f"edgeprobe-check-{device}")
    publisher.start()
    try:
        deadline = time.monotonic() + 5.0
        while not publisher.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        ok = publisher.connected and publisher.flush(10.0)
        if not ok:
            logging.getLogger("edgeprobe.check").warning(
                "broker %s:%d did not acknowledge the verdict; it stays in %s for the next run", host, port,
                spool_path)
        return ok
    finally:
        publisher.stop()
        spool.close()


def render_table(result: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    from edgeprobe.cli.report import format_figure

    colors = {"pass": "green", "fail": "red", "error": "magenta", "inconclusive": "yellow"}
    table = Table(title=f"{result['suite']}", title_justify="left")
    for col, kw in (("check", {}), ("figure", {"justify": "right"}), ("limit", {"justify": "right"}),
                    ("verdict", {}), ("detail", {"overflow": "fold", "ratio": 1})):
        table.add_column(col, **kw)
    for c in result["checks"]:
        fig = format_figure(c["figure"], c["unit"])
        lim = "—" if c["limit"] is None else f"{'≤' if c['op'] == '<=' else '≥'} {format_figure(c['limit'], c['unit'])}"
        color = colors.get(c["status"], "white")
        table.add_row(c["name"], fig, lim, f"[bold {color}]{c['status'].upper()}[/]", c["message"])
    console.print(table)
    color = colors.get(result["status"], "white")
    console.print(f"[bold {color}]{result['headline']}[/]")
