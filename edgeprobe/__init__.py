"""edgeprobe: validate vision models on the boards they run on.

``edgeprobe.harness`` is the pure validation logic, ``edgeprobe.agent`` the on-device process,
``edgeprobe.collector`` the central side and ``edgeprobe.cli`` the command line. This root belongs
to none of them: it carries the version (read from the installed distribution's metadata, so
pyproject.toml is the one place to change it) and ``attach``, the in-process SDK's entry point.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("edgeprobe")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from edgeprobe.agent.sdk import Probe


def attach(config: Any, overrides: dict[str, Any] | None = None, flush_timeout: float = 10.0) -> Probe:
    """Attach edgeprobe to this application's own loop: ``probe.observe(frame, outputs, timings)`` per frame,
    ``probe.close()`` at the end (edgeprobe.agent.sdk). Imports the agent only when called."""
    from edgeprobe.agent.sdk import attach as _attach

    return _attach(config, overrides, flush_timeout)
