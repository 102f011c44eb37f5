"""The `edgeprobe` command line: the app (``app.py``), one module per subcommand (``commands/``) and
what only the CLI needs (console output, reports, JUnit, assets, a local broker).

Nothing in ``edgeprobe.agent``, ``edgeprobe.harness`` or ``edgeprobe.collector`` imports this package.
"""

from edgeprobe.cli.app import app, main

__all__ = ["app", "main"]
