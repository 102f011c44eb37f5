"""`edgeprobe heartbeat`: a container HEALTHCHECK, from the age of the file the running agent touches.

`edgeprobe run --heartbeat-file PATH` (or ``EDGEPROBE_HEARTBEAT_FILE``) touches PATH from its
heartbeat thread while its loop is alive, camera outages included (agent/sdnotify.py). This
command only reads the file's age, so a health probe costs a Python start and one stat(2),
never a second model load or a connection to the agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeprobe.harness.errors import ConfigError, EdgeprobeError


class Unhealthy(EdgeprobeError):
    """The agent is not alive: exit 1, what Docker's HEALTHCHECK counts as unhealthy (2 is reserved there)."""

    exit_code = 1


def register(app: typer.Typer) -> None:
    app.command("heartbeat")(heartbeat)


def heartbeat(
    file: Annotated[Path | None, typer.Option(
        "--file", envvar="EDGEPROBE_HEARTBEAT_FILE", help="The agent's heartbeat file.")] = None,
    max_age: Annotated[float, typer.Option(help="Seconds after which a silent agent counts as hung.", min=0.1)]
    = 30.0,
) -> None:
    """Exit 0 if the agent touched its heartbeat file within --max-age seconds, 1 if not."""
    from edgeprobe.agent.sdnotify import heartbeat_age

    if file is None:
        raise ConfigError("no heartbeat file given; pass --file or set EDGEPROBE_HEARTBEAT_FILE to the path "
                          "the agent runs with (edgeprobe run --heartbeat-file)")
    try:
        age = heartbeat_age(file)
    except OSError:
        raise Unhealthy(f"no heartbeat at {file}: the agent has not started, or runs without "
                         "--heartbeat-file / EDGEPROBE_HEARTBEAT_FILE") from None
    if age > max_age:
        raise Unhealthy(f"the agent's heartbeat {file} is {age:.0f} s old (limit {max_age:g} s): "
                         "its loop is hung or it has stopped")
    print(f"alive: heartbeat {age:.1f} s old")
