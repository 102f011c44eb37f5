"""The `edgeprobe` command line.

Each subcommand lives in its own module under ``edgeprobe.cli.commands`` and
registers itself through ``register(app)``; this module only holds the app,
the global options and the one place where errors become exit codes.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from edgeprobe import __version__
from edgeprobe.cli import commands
from edgeprobe.harness.errors import EdgeprobeError
from edgeprobe.harness.verdict import EXIT_CODES, EXIT_INTERNAL

app = typer.Typer(
    name="edgeprobe",
    help="Validate vision models on the boards they run on: latency, robustness, drift.",
    no_args_is_help=True,
    epilog=EXIT_CODES,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)
# Typer carries its own copy of click; its exception classes are reached through a public name so
# that the catch below matches whichever click typer was built with.
_click_errors: Any = sys.modules[typer.BadParameter.__module__]
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
# Every command's --help ends with the exit codes all commands share (harness/verdict.py).
for _cmd in app.registered_commands:
    _cmd.epilog = _cmd.epilog or EXIT_CODES
for _group in app.registered_groups:
    _group.epilog = _group.epilog or EXIT_CODES
    if _group.typer_instance is not None:
        for _cmd in _group.typer_instance.registered_commands:
            _cmd.epilog = _cmd.epilog or EXIT_CODES


def main() -> None:
    """Console entry point: one sentence and exit 2 for what the user can fix."""
    debug = "--debug" in sys.argv[1:]
    try:
        # standalone_mode=False: click's usage errors reach us, to be shown like every other error
        rv = app(standalone_mode=False)
    except _click_errors.NoArgsIsHelpError as exc:  # `edgeprobe fleet` alone: typer printed the help
        sys.exit(exc.exit_code)
    except _click_errors.ClickException as exc:  # unknown option, bad option value, missing argument
        _one_line(usage_sentence(exc))
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except BrokenPipeError:
        # `edgeprobe perturbations --json | head`: the reader left; say nothing more, and keep
        # Python's exit-time flush of stdout from failing again (its documented recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except EdgeprobeError as exc:
        if debug:
            raise
        _one_line(str(exc))
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
        sys.exit(EXIT_INTERNAL)
    sys.exit(rv if isinstance(rv, int) else 0)


def usage_sentence(exc: Any) -> str:
    """Click's complaint about the command line as one sentence that says where the options are listed."""
    message = exc.format_message().strip().rstrip(".")
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "edgeprobe"
    return f"{message}; `{where} --help` lists the options"


def _one_line(message: str) -> None:
    # escape: messages name things like edgeprobe[tflite] that rich would read as markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
