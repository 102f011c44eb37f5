"""Keep camera credentials out of logs, events, birth messages, the spool and the collector.

RTSP and HTTP cameras usually carry ``user:password@`` in their URL, and
their passwords are often typed as is: with ``/``, ``@`` or ``:`` in them,
or percent-encoded. Anything that leaves the process (log lines, MQTT
messages, error sentences) goes through :func:`redact` first.
"""

from __future__ import annotations

import re

#: scheme://USERINFO@ where USERINFO runs to the LAST "@" of the URL: a password with an unencoded "/"
#: or "@" ends the authority early for a strict parser (``[^/@]*`` leaked "pa/ssW0rd" whole and the tail
#: after a second "@"). Only whitespace ends it (a password may hold quotes too), so a path that holds an
#: "@", or a quoted URL followed by an "@" later on the line, loses more than its user-info: the safe side.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^ \t\r\n]*@")
#: query or matrix parameters whose name says secret (token, access_token, X-Amz-Security-Token, api_key,
#: password, sig, auth, user, ...): the value up to the next separator
_SECRET_QUERY = re.compile(
    r"(?i)([?&;][A-Za-z0-9_.\-]*(?:token|passw(?:or)?d|pwd|pass|secret|key|auth|sig|signature|user|username"
    r"|credential|session)[A-Za-z0-9_.\-]*=)[^&#; \t\r\n'\"<>`]*")


def redact(text: str) -> str:
    """Replace the user-info of every URL in ``text`` and secret-looking query values with ``***``."""
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", text)
    return _SECRET_QUERY.sub(r"\1***", text)


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """``uri`` without its user-info, and the user and password as written (not percent-decoded).

    Uses the same last-``@`` rule as :func:`redact`, so a host taken from the
    first part is the camera's, never a piece of a password.
    """
    m = _USERINFO.match(uri)
    if not m:
        return uri, None, None
    userinfo = uri[len(m.group("scheme")):m.end() - 1]
    user, _, password = userinfo.partition(":")
    return m.group("scheme") + uri[m.end():], user, password if ":" in userinfo else None
