"""The end-of-run robustness table `edgeprobe run` prints: what a user at the board reads first."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from edgeprobe.cli.console import console

_ZONE_STYLE = {"ok": "green", "at_risk": "yellow", "broken": "red"}


def print_robustness(summary: dict[str, Any]) -> None:
    """Pooled unstable fractions with Wilson intervals, zones, breaking points and relation violation rates."""
    if not summary["cells"] and not summary["relations"]:
        return
    table = Table(title="robustness (pooled over the run)")
    for col in ("perturbation", "severity", "n", "unstable", "95% CI", "zone"):
        table.add_column(col)
    for c in summary["cells"]:
        style = _ZONE_STYLE.get(c["zone"], "")
        table.add_row(c["perturbation"], f"{c['severity']:g}", str(c["n"]), f"{c['fraction']:.0%}",
                      f"{c['ci_low']:.0%}-{c['ci_high']:.0%}", f"[{style}]{c['zone']}[/]")
    console.print(table)
    for name, bp in summary["breaking_points"].items():
        console.print(f"breaking point {name}: {bp['summary']} ({bp['rounds']} looks on {bp['frames']} frames)")
    for r in summary["relations"]:
        console.print(f"relation {r['relation']}: {r['violations']}/{r['n']} violated ({r['rate']:.0%}, "
                      f"CI {r['ci_low']:.0%}-{r['ci_high']:.0%})")
