"""`edgeprobe diff old.json new.json`: which checks got worse between two runs, and by how much."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

_RANK = {"pass": 0, "inconclusive": 1, "fail": 2, "error": 3}


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)


def load_result(path: Path) -> dict[str, Any]:
    from edgeprobe.harness.errors import ConfigError

    if path.is_dir():
        raise ConfigError(f"result file {path} is a folder; "
                          "give a file written by `edgeprobe check SUITE --json > FILE`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"result file {path} does not exist; write one with `edgeprobe check SUITE --json > FILE`") \
            from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not a JSON result of `edgeprobe check --json` ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
        raise ConfigError(f"{path} is not a result of `edgeprobe check --json` (no checks list)")
    for i, c in enumerate(data["checks"]):
        if not (isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("status"), str)):
            raise ConfigError(f"{path}: checks[{i}] has no name and status, so this is not a result of "
                              "`edgeprobe check --json`; give the file that command wrote")
        for key in ("figure", "limit"):
            if not (c.get(key) is None or isinstance(c[key], (int, float))):
                raise ConfigError(f"{path}: checks[{i}].{key} is {c[key]!r}, not a number; "
                                  "give the file `edgeprobe check --json` wrote")
    return data


def interval(check: dict[str, Any]) -> tuple[float, float] | None:
    """The figure's interval as the check stated it (a share's Wilson CI, a percentile's CI, a bracket)."""
    d = check.get("details") or {}
    for lo, hi in (("ci_low", "ci_high"), ("ci_low_ms", "ci_high_ms")):
        if isinstance(d.get(lo), (int, float)) and isinstance(d.get(hi), (int, float)):
            return float(d[lo]), float(d[hi])
    if check.get("kind") == "breaking_point" and isinstance(d.get("low"), (int, float)):
        return float(d["low"]), float(d["surely"]) if isinstance(d.get("surely"), (int, float)) else 5.0
    return None


def compare(old: dict[str, Any], new: dict[str, Any], tolerance: float) -> list[dict[str, Any]]:
    """One row per check present in either run; ``regression`` when worse beyond ``tolerance``.

    Worse means the verdict dropped (pass -> fail), or the figure moved the
    wrong way by more than ``tolerance`` relative to the old figure (or to the
    limit when the old figure is 0) *and*, where both runs state an interval,
    the two intervals do not overlap: 1 of 24 frames -> 2 of 24 is "+100%" but
    well inside the noise of 24 frames, so it is no regression.
    """
    before = {c["name"]: c for c in old["checks"]}
    after = {c["name"]: c for c in new["checks"]}
    rows = []
    for name in list(before) + [n for n in after if n not in before]:
        a, b = before.get(name), after.get(name)
        row: dict[str, Any] = {"name": name, "old_status": a and a["status"], "new_status": b and b["status"],
                               "old": a and a.get("figure"), "new": b and b.get("figure"),
                               "unit": (b or a or {}).get("unit", ""), "change": None, "regression": False}
        if a is None or b is None:
            row["note"] = "only in old run" if b is None else "new check"
            rows.append(row)
            continue
        worse_status = _RANK.get(b["status"], 3) > _RANK.get(a["status"], 3)
        fa, fb = a.get("figure"), b.get("figure")
        worse_figure = False
        if isinstance(fa, (int, float)) and isinstance(fb, (int, float)):
            sign = 1.0 if b.get("op", "<=") == "<=" else -1.0
            scale = abs(fa) or abs(b.get("limit") or 0) or 1.0
            rel = sign * (fb - fa) / scale
            row["change"] = rel
            worse_figure = rel > tolerance
            ia, ib = interval(a), interval(b)
            if worse_figure and ia is not None and ib is not None:
                apart = ib[0] > ia[1] if sign > 0 else ib[1] < ia[0]
                row["intervals"] = [list(ia), list(ib)]
                if not apart:
                    row["note"] = "within the two runs' intervals"
                worse_figure = apart
        row["regression"] = worse_status or worse_figure
        rows.append(row)
    return rows


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.4g}"


def diff(
    old: Annotated[Path, typer.Argument(help="Earlier `edgeprobe check --json` output.")],
    new: Annotated[Path, typer.Argument(help="Later `edgeprobe check --json` output.")],
    tolerance: Annotated[float, typer.Option(help="Relative worsening of a figure that counts as a regression.",
                                             min=0)] = 0.10,
    json_output: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Which checks got worse between two `check --json` results: exit 1 on a regression beyond both the tolerance
    and the two runs' intervals."""
    from rich.table import Table

    from edgeprobe.cli.console import console

    rows = compare(load_result(old), load_result(new), tolerance)
    regressions = [r for r in rows if r["regression"]]
    if json_output:
        print(json.dumps({"tolerance": tolerance, "regressions": len(regressions), "checks": rows}))
    else:
        table = Table(title=f"{old.name} -> {new.name} (tolerance {tolerance:.0%})", title_justify="left")
        for col in ("check", "old", "new", "change", "verdict"):
            table.add_column(col, justify="right" if col in ("old", "new", "change") else "left")
        for r in rows:
            change = "—" if r["change"] is None else "no change" if abs(r["change"]) < 5e-4 else \
                f"{r['change']:+.1%} {'worse' if r['change'] > 0 else 'better'}"
            verdict = f"{r['old_status']} -> {r['new_status']}" if r["old_status"] and r["new_status"] else \
                r.get("note", "")
            style = "bold red" if r["regression"] else ""
            table.add_row(r["name"], _fmt(r["old"]), _fmt(r["new"]), change, verdict, style=style)
        console.print(table)
        console.print(f"[bold red]{len(regressions)} regression(s)[/]" if regressions else "no regressions")
    raise typer.Exit(1 if regressions else 0)
