"""Keep camera credentials out of logs, events and birth messages.

RTSP and HTTP cameras usually carry ``user:password@`` in their URL; anything
that leaves the process (log lines, MQTT messages, error sentences) goes
through :func:`redact` first.
"""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/@]*)@")
_SECRET_QUERY = re.compile(r"(?i)([?&](?:password|passwd|pwd|pass|token|key|auth|user|username)=)[^&#\s]*")


def redact(text: str) -> str:
    """Replace the user-info of every URL in ``text`` and secret-looking query values with ``***``."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    return _SECRET_QUERY.sub(r"\1***", text)
