"""`edgeprobe assets`: the example models and media, fetched into a cache."""

from __future__ import annotations

from typing import Annotated

import typer

assets_app = typer.Typer(help="Fetch and list example models and media (cached, sha256-checked).",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(assets_app, name="assets")


@assets_app.command("fetch")
def fetch(names: Annotated[list[str] | None, typer.Argument(help="Assets to fetch (default: all).")] = None) -> None:
    """Download what is missing and verify every file's sha256."""
    from edgeprobe.cli import assets

    unknown = [n for n in names or [] if n not in assets.ASSETS]
    if unknown:
        from edgeprobe.harness.errors import EdgeprobeError, did_you_mean

        raise EdgeprobeError(f"unknown asset {unknown[0]!r}{did_you_mean(unknown[0], assets.ASSETS)}; "
                             "`edgeprobe assets list` shows them")
    for path in assets.fetch(names or None):
        print(path)


@assets_app.command("list")
def list_assets() -> None:
    """Show every known asset, where it comes from and whether it is cached."""
    from edgeprobe.cli import assets
    from edgeprobe.cli.console import console

    for a in assets.ASSETS.values():
        have = (assets.cache_dir() / a.name).is_file()
        state = "[green]cached[/] " if have else "[dim]missing[/]"
        console.print(f"{state} {a.name:36} {a.origin[0]}:{a.origin[1]}  {a.what}")
