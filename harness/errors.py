"""The one exception type users see.

Every bad input the user can fix (a wrong path, a misspelt key, a model that
does not fit) is raised as an :class:`EdgeprobeError` with one sentence that
names the thing and what to do. The CLI turns it into that sentence and an
exit code, with no traceback unless ``--debug``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

#: Exit code for usage and configuration errors (the user must change something).
EXIT_USAGE = 2


class EdgeprobeError(Exception):
    """A problem the user can fix; ``str(err)`` is the sentence shown to them."""

    exit_code: int = EXIT_USAGE


class ConfigError(EdgeprobeError):
    """A configuration file or option is wrong."""


class ModelError(EdgeprobeError):
    """A model file is missing, unreadable or does not fit the task."""


class SourceError(EdgeprobeError):
    """A frame source cannot be opened or read."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
