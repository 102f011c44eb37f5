"""`edgeprobe fleet status` and `edgeprobe fleet cameras --unhealthy`: the fleet as the collector stored it."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

fleet_app = typer.Typer(help="Ask the collector's database about the fleet.", no_args_is_help=True)

DbOption = Annotated[str, typer.Option("--db", help="The collector's SQLite file or postgresql:// URL "
                                                      "(edgeprobe collect --db).")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout instead of a table.")]
_RANGE_HELP = ("RFC 3339 time (2026-01-02T00:00:00Z) or a duration back from now (90s, 15m, 1h, 7d); "
               "answered in whole UTC hours")
SinceOption = Annotated[str, typer.Option("--since", help=f"Start of the range: {_RANGE_HELP}.")]
UntilOption = Annotated[str | None, typer.Option("--until", help=f"End of the range (default now): {_RANGE_HELP}.")]


def register(app: typer.Typer) -> None:
    app.add_typer(fleet_app, name="fleet")


def _open(db: str) -> Any:
    from edgeprobe.collector.backend import open_existing

    return open_existing(db, "point --db at the file or PostgreSQL URL `edgeprobe collect --db` writes").db


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}{unit}"
    return f"{v}{unit}"


def _table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title)
    for col in ("device", "online", "last seen", "e2e p99", "worst perturbation", "camera", "dropped", "seq gaps"):
        table.add_column(col)
    for r in rows:  # every string here came from a device: escaped, or a flag named "[/]" is rich markup
        w = r.get("worst_perturbation")
        worst = "-"
        if w and isinstance(w.get("severity"), (int, float)) and isinstance(w.get("fraction"), (int, float)):
            worst = f"{escape(str(w.get('perturbation')))}@{w['severity']:g} {w['fraction']:.0%}"
        table.add_row(escape(str(r.get("device_id"))), "yes" if r.get("online") else "NO",
                      escape(_fmt(r.get("last_seen"))), _fmt(r.get("e2e_p99_ms"), " ms"), worst,
                      ", ".join(escape(str(f)) for f in r.get("camera_flags") or []) or "ok",
                      _fmt(r.get("spool_dropped")), _fmt(r.get("seq_missing")))
    import sys

    # piped output (grep, logs) gets full cell contents instead of an 80-column squeeze
    Console(width=None if sys.stdout.isatty() else 200).print(table)


@fleet_app.command("status")
def status(db: DbOption, json_output: JsonOption = False, since: SinceOption = "1h",
           until: UntilOption = None) -> None:
    """Every device: online, last seen, latency p99 and worst perturbation over the range, camera flags now."""
    from edgeprobe.collector.queries import fleet_status
    from edgeprobe.collector.timerange import TimeRange

    tr = TimeRange.parse(since, until)
    rows = fleet_status(_open(db), tr=tr)
    if json_output:
        print(json.dumps({"range": tr.describe(), "devices": rows}, default=str))
    else:
        _table(rows, f"fleet: {len(rows)} device(s), {sum(r['online'] for r in rows)} online, {_span(tr)}")


def _span(tr: Any) -> str:
    d = tr.describe()
    return f"figures from {d['from'] or 'the start'} to {d['to'] or 'now'}"


@fleet_app.command("cameras")
def cameras(
    db: DbOption,
    unhealthy: Annotated[bool, typer.Option("--unhealthy", help="Only cameras with a health flag or offline.")] = False,
    json_output: JsonOption = False,
    since: SinceOption = "1h",
    until: UntilOption = None,
) -> None:
    """Camera health per device (latest window); --unhealthy lists only those that need a look."""
    from edgeprobe.collector.queries import fleet_status, unhealthy_cameras
    from edgeprobe.collector.timerange import TimeRange

    tr = TimeRange.parse(since, until)
    database = _open(db)
    rows = unhealthy_cameras(database, tr) if unhealthy else fleet_status(database, tr=tr)
    if json_output:
        print(json.dumps({"range": tr.describe(), "cameras": rows}, default=str))
    else:
        _table(rows, f"{len(rows)} unhealthy camera(s)" if unhealthy else f"{len(rows)} camera(s)")
