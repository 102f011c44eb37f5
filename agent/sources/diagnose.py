"""Why a live source did not open, in one sentence (OpenCV only says 'False')."""

from __future__ import annotations

import base64
import socket
from urllib.parse import unquote, urlsplit

from edgeprobe.agent.sources.redact import redact, split_credentials

_DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322, "http": 80, "https": 443, "rtmp": 1935}


def diagnose_url(uri: str, timeout_s: float) -> str:
    """Probe the host behind ``uri`` (DNS, TCP, for HTTP the status) and say what is wrong."""
    safe = redact(uri)
    bare, user, password = split_credentials(uri)  # the host comes from the URL without its credentials
    parts = urlsplit(bare)
    host = parts.hostname or ""
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    except ValueError:
        return f"source.uri {safe} has an invalid port; fix the URL"
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return f"host {host!r} in source.uri {safe} does not resolve; check the name or use the camera's IP address"
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            if parts.scheme.lower() == "http":
                return _http_status(sock, parts.path or "/", parts.query, host, user, password, safe, timeout_s)
    except ConnectionRefusedError:
        return f"{host}:{port} refused the connection for source.uri {safe}; is the camera or stream server running?"
    except OSError as exc:
        return f"cannot reach {host}:{port} for source.uri {safe} ({exc.strerror or exc}); check the network"
    return f"{safe} accepted a connection but delivered no frames; check the stream path and that the camera streams"


def _http_status(sock: socket.socket, path: str, query: str, host: str, user: str | None, password: str | None,
                 safe: str, timeout_s: float) -> str:
    target = path + (f"?{query}" if query else "")
    auth = ""
    if user is not None:
        token = base64.b64encode(f"{unquote(user)}:{unquote(password or '')}".encode()).decode()
        auth = f"Authorization: Basic {token}\r\n"
    sock.settimeout(timeout_s)
    sock.sendall(f"GET {target} HTTP/1.0\r\nHost: {host}\r\n{auth}\r\n".encode())
    status = sock.recv(256).split(b"\r\n", 1)[0].decode("latin-1", "replace")
    code = status.split(" ")[1] if len(status.split(" ")) > 1 else ""
    if code in ("401", "403"):
        return f"the camera at {safe} rejected the credentials (HTTP {code}); fix the user and password in source.uri"
    if code == "404":
        return f"the camera at {safe} has no stream at that path (HTTP 404); check the URL's path"
    return f"{safe} answered '{status}' but OpenCV could not decode a stream from it; check the URL is an MJPEG stream"
