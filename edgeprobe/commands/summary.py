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
    db: Annotated[Path, typer.Option("--db", help="The collector's SQLite file.")],
    device: Annotated[str | None, typer.Option(help="Only this device.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    since: Annotated[str | None, typer.Option(
        "--since", help="Start of the range: RFC 3339 time or a duration back from now (1h, 7d); "
                        "whole UTC hours. Default: everything the rollups keep.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="End of the range (default now), same forms.")] = None,
) -> None:
    """Latency per stage, unstable fraction per perturbation, camera health."""
    from ..collector.timerange import TimeRange
    from ..console import console

    data = read_summary(db, device, TimeRange.parse(since, until))
    if json_output:
        print(json.dumps(data, default=str))
    else:
        render_summary(data, console)


def read_summary(db_path: Path, device: str | None = None, tr: Any = None) -> dict[str, Any]:
    import sqlite3

    import sqlite_utils

    from ..collector import queries
    from ..collector.timerange import ALL_TIME
    from ..harness.errors import ConfigError
    from ..userinput import existing_file, sqlite_file

    hint = "pass the --db the collector wrote"
    existing_file(db_path, "database", hint)
    sqlite_file(db_path, "database", hint)
    db = sqlite_utils.Database(db_path)
    try:
        tables = db.table_names()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"database {db_path} cannot be read ({exc}); {hint}") from None
    if "messages" not in tables:
        raise ConfigError(f"{db_path} is not an edgeprobe collector database (no messages table); {hint}")
    return {
        "database": str(db_path),
        "devices": queries.devices(db),
        "kinds": queries.kind_counts(db),
        "range": (tr or ALL_TIME).describe(),
        "latency": queries.latency_summary(db, device, tr or ALL_TIME),
        "robustness": queries.robustness_summary(db, device, tr or ALL_TIME),
        "health": queries.health_summary(db, device, tr or ALL_TIME),
        "quarantined": db["quarantine"].count,
    }


def render_summary(data: dict[str, Any], console: Console) -> None:
    from rich.table import Table  # here, not at module level: every command's import (`run` too) loads this module

    kinds = ", ".join(f"{k} {n}" for k, n in sorted(data["kinds"].items()))
    console.print(f"[bold]Database[/] {data['database']}: {kinds}; {data['quarantined']} quarantined")
    for d in data["devices"]:
        state = "online" if d["online"] else "offline"
        console.print(f"  device [bold]{d['device_id']}[/] ({d['fleet']}, {state}), last seen {d['last_seen']}, "
                      f"{d['messages']} messages, {d['seq_missing']} missing by seq")

    t = Table(title="Latency per stage (ms, merged over windows)", title_justify="left")
    for col in ("device", "stage", "n", "p50", "p95", "p99", "max"):
        t.add_column(col, justify="right" if col not in ("device", "stage") else "left")
    for r in data["latency"]:
        t.add_row(r["device_id"], r["stage"], str(r["count"]), *(f"{r[k]:.2f}" for k in ("p50", "p95", "p99", "max")))
    console.print(t)

    t = Table(title="Unstable fraction per perturbation and severity", title_justify="left")
    for col in ("device", "perturbation", "severity", "n", "unstable", "95% CI", "zone"):
        t.add_column(col, justify="left" if col in ("device", "perturbation", "zone") else "right")
    colours = {"ok": "green", "at_risk": "yellow", "broken": "red"}
    for r in data["robustness"]:
        t.add_row(r["device_id"], r["perturbation"], f"{r['severity']:g}", str(r["n"]), f"{r['fraction']:.0%}",
                  f"{r['ci_low']:.0%}-{r['ci_high']:.0%}", f"[{colours[r['zone']]}]{r['zone']}[/]")
    console.print(t)

    t = Table(title="Camera health", title_justify="left")
    for col in ("device", "frames", "fps", "brightness", "contrast", "sharpness", "frozen", "spool dropped", "flags"):
        t.add_column(col, justify="left" if col in ("device", "flags") else "right")
    for r in data["health"]:
        t.add_row(r["device_id"], str(r["frames"]), f"{r['fps']:.1f}", f"{r['brightness']:.0f}",
                  f"{r['contrast']:.0f}", f"{r['sharpness']:.0f}", str(r["frozen_frames"]),
                  str(r["spool_dropped"]), ", ".join(r["flags"]) or "-")
    console.print(t)
