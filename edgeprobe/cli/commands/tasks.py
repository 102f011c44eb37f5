"""`edgeprobe tasks`: every task adapter, its layouts and what each accepts, and the backends; plugins included.

What is listed is read from the registries (harness/registry.py), so a plugin
installed with an ``edgeprobe.adapters`` or ``edgeprobe.backends`` entry point
shows here, with the distribution it came from.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer


def register(app: typer.Typer) -> None:
    app.command("tasks")(tasks)


def listing() -> dict[str, Any]:
    from edgeprobe.agent.backends import BACKENDS
    from edgeprobe.harness.tasks import ADAPTERS, accepts_of, layouts_of

    adapters = []
    for entry in ADAPTERS.entries_in_order():
        accepts = accepts_of(entry.name)
        doc = (getattr(entry.value, "__doc__", None) or "").strip().splitlines()
        adapters.append({
            "kind": entry.name, "origin": entry.origin,
            "layouts": [{"layout": lay, "accepts": accepts.get(lay, doc[0] if doc else "")}
                        for lay in layouts_of(entry.name)],
        })
    backends = [{"name": e.name, "origin": e.origin} for e in BACKENDS.entries_in_order()]
    return {"adapters": adapters, "backends": backends}


def tasks(json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List task kinds (`task.kind`), their layouts (`task.layout`) and the outputs each accepts; then backends."""
    data = listing()
    if json_output:
        print(json.dumps(data))
        return
    from edgeprobe.cli.console import console, print_table

    print_table("Task adapters (task.kind / task.layout): the outputs each accepts, checked at load",
                ("kind", "layout", "accepts", "from"),
                ((a["kind"], row["layout"] or "-", row["accepts"], a["origin"]) for a in data["adapters"]
                 for row in a["layouts"]))
    console.print("Backends (model.backend): " + ", ".join(
        b["name"] + ("" if b["origin"] == "builtin" else f" ({b['origin']})") for b in data["backends"]),
        highlight=False)
