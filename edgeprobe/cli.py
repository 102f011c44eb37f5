"""The `edgeprobe` command line.

Each subcommand lives in its own module under ``edgeprobe.commands`` and
registers itself through ``register(app)``; this module only holds the app,
the global options and the one place where errors become exit codes.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from . import __version__, commands
from .harness.errors import EdgeprobeError

app = typer.Typer(
    name="edgeprobe",
    help="Validate vision models on the boards they run on: latency, robustness, drift.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeprobe {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _state["debug"] = debug
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


for _mod in sorted(m.name for m in pkgutil.iter_modules(commands.__path__)):
    importlib.import_module(f"{commands.__name__}.{_mod}").register(app)


def main() -> None:
    """Console entry point: one sentence and exit 2 for what the user can fix."""
    debug = "--debug" in sys.argv[1:]
    try:
        app()
    except EdgeprobeError as exc:
        if debug:
            raise
        # escape: messages name things like edgeprobe[tflite] that rich would read as markup
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug in edgeprobe, not the user's input
        if debug:
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))} "
            "(rerun with --debug for the traceback)",
            highlight=False, soft_wrap=True,
        )
        sys.exit(1)
