"""edgeprobe: validate vision models on the boards they run on.

The installed package maps the top-level folders of the repository under one
namespace: ``edgeprobe.harness`` (pure validation logic), ``edgeprobe.agent``
(the on-device process) and ``edgeprobe.collector`` (the central side).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .agent.sdk import Probe


def attach(config: Any, overrides: dict[str, Any] | None = None, flush_timeout: float = 10.0) -> Probe:
    """Attach edgeprobe to this application's own loop: ``probe.observe(frame, outputs, timings)`` per frame,
    ``probe.close()`` at the end (edgeprobe.agent.sdk). Imports the agent only when called."""
    from .agent.sdk import attach as _attach

    return _attach(config, overrides, flush_timeout)
