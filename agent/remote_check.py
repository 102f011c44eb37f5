"""The ``run_check`` command: run the agent's acceptance suite on the device, now, and publish the verdict.

A fleet operator asks a camera to re-prove itself (after a model push, a
firmware update, a suspicion) without logging in. The suite runs inside the
agent's loop, between frames, so live monitoring pauses while it measures:
an honest latency verdict needs the CPU the live loop would otherwise take,
and the pause shows as a gap in the windows rather than as distorted figures.
"""

from __future__ import annotations

from typing import Any

from edgeprobe.agent.commands import CommandError
from edgeprobe.agent.messages import Messenger
from edgeprobe.harness.errors import EdgeprobeError


def run_check(suite_path: str | None, messenger: Messenger) -> dict[str, Any]:
    """Run the suite, send its ``verdict`` message, and return the command reply's result fields."""
    if not suite_path:
        raise CommandError("no suite configured on this agent; add `suite: path/to/suite.yaml` to its config "
                           "or run `edgeprobe check suite.yaml` on the device")
    from edgeprobe.agent.suite_runner import run_suite
    from edgeprobe.harness.suite import load_suite
    from edgeprobe.harness.suite_report import verdict_body

    try:
        result, _ = run_suite(load_suite(suite_path))
    except EdgeprobeError as exc:  # the suite file changed on disk since start, its model went missing, ...
        raise CommandError(f"suite {suite_path} could not run: {exc}") from None
    messenger.send("verdict", verdict_body(result))
    return {"suite": result["suite"], "status": result["status"], "headline": result["headline"],
            "exit_code": result["exit_code"], "checks": len(result["checks"])}
