"""`edgeprobe summary`: what the collector's database says, per device."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console


def register(app: typer.Typer) -> None:
    app.command("summary")(summary)


def summary(
    db: Annotated[str, typer.Option("--db", help="The collector's SQLite file or postgresql:// URL.")],
    device: Annotated[str | None, typer.Option(help="Only this device.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    since: Annotated[str | None, typer.Option(
        "--since", help="Start of the range: RFC 3339 time or a duration back from now (1h, 7d); "
                        "whole UTC hours. Default: everything the rollups keep.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="End of the range (default now), same forms.")] = None,
) -> None:
    """Latency per stage, unstable fraction per perturbation, camera health."""
    from edgeprobe.cli.console import console
    from edgeprobe.collector.timerange import TimeRange

    data = read_summary(db, device, TimeRange.parse(since, until))
    if json_output:
        print(json.dumps(data, default=str))
    else:
        render_summary(data, console)


def read_summary(db_path: str | Path, device: str | None = None, tr: Any = None) -> dict[str, Any]:
    from edgeprobe.cli.userinput import existing_file, sqlite_file
    from edgeprobe.collector import queries
    from edgeprobe.collector.backend import describe, is_postgres, open_existing
    from edgeprobe.collector.timerange import ALL_TIME

    hint = "pass the --db the collector wrote"
    if not is_postgres(db_path):
        existing_file(Path(db_path), "database", hint)
        sqlite_file(Path(db_path), "database", hint)
    conn = open_existing(db_path, hint)
    db = conn.db
    try:
        return {
            "database": describe(db_path),
            "devices": queries.devices(db),
            "kinds": queries.kind_counts(db),
            "range": (tr or ALL_TIME).describe(),
            "latency": queries.latency_summary(db, device, tr or ALL_TIME),
            "robustness": queries.robustness_summary(db, device, tr or ALL_TIME),
            "health": queries.health_summary(db, device, tr or ALL_TIME),
            "quarantined": int(db.execute("SELECT COUNT(*) FROM quarantine").fetchone()[0]),
        }
    finally:
        conn.close()


def render_summary(data: dict[str, Any], console: Console) -> None:
    """Print the summary; every string that came from a device is escaped, every optional figure may be missing.

    Device ids, stages, perturbations and flags are whatever the devices sent: printed raw, one
    named ``[/]`` was rich markup and crashed the command (MarkupError).
    """
    from rich.markup import escape
    from rich.table import Table  # here, not at module level: every command's import (`run` too) loads this module

    def e(v: Any) -> str:
        return "-" if v is None else escape(str(v))

    def num(v: Any, spec: str) -> str:
        return "-" if not isinstance(v, (int, float)) else format(v, spec)

    kinds = ", ".join(f"{e(k)} {n}" for k, n in sorted(data["kinds"].items()))
    console.print(f"[bold]Database[/] {e(data['database'])}: {kinds}; {data['quarantined']} quarantined")
    for d in data["devices"]:
        state = "online" if d.get("online") else "offline"
        console.print(f"  device [bold]{e(d.get('device_id'))}[/] ({e(d.get('fleet'))}, {state}), last seen "
                      f"{e(d.get('last_seen'))}, {e(d.get('messages'))} messages, {e(d.get('seq_missing'))} "
                      "missing by seq")

    t = Table(title="Latency per stage (ms, merged over windows)", title_justify="left")
    for col in ("device", "stage", "n", "p50", "p95", "p99", "max"):
        t.add_column(col, justify="right" if col not in ("device", "stage") else "left")
    for r in data["latency"]:
        t.add_row(e(r.get("device_id")), e(r.get("stage")), e(r.get("count")),
                  *(num(r.get(k), ".2f") for k in ("p50", "p95", "p99", "max")))
    console.print(t)

    t = Table(title="Unstable fraction per perturbation and severity", title_justify="left")
    for col in ("device", "perturbation", "severity", "n", "unstable", "95% CI", "zone"):
        t.add_column(col, justify="left" if col in ("device", "perturbation", "zone") else "right")
    colours = {"ok": "green", "at_risk": "yellow", "broken": "red"}
    for r in data["robustness"]:
        zone = r.get("zone")
        ci = (f"{num(r.get('ci_low'), '.0%')}-{num(r.get('ci_high'), '.0%')}"
              if r.get("ci_low") is not None else "-")
        t.add_row(e(r.get("device_id")), e(r.get("perturbation")), num(r.get("severity"), "g"), e(r.get("n")),
                  num(r.get("fraction"), ".0%"), ci,
                  f"[{colours[zone]}]{zone}[/]" if zone in colours else e(zone))
    console.print(t)

    t = Table(title="Camera health", title_justify="left")
    for col in ("device", "frames", "fps", "brightness", "contrast", "sharpness", "frozen", "spool dropped", "flags"):
        t.add_column(col, justify="left" if col in ("device", "flags") else "right")
    for r in data["health"]:
        t.add_row(e(r.get("device_id")), e(r.get("frames")), num(r.get("fps"), ".1f"), num(r.get("brightness"), ".0f"),
                  num(r.get("contrast"), ".0f"), num(r.get("sharpness"), ".0f"), e(r.get("frozen_frames")),
                  e(r.get("spool_dropped")), ", ".join(e(f) for f in r.get("flags") or []) or "-")
    console.print(t)
