"""systemd's end of NOTIFY_SOCKET, emulated: a real AF_UNIX datagram socket the agent under test notifies.

Tests read the agent's progress from it the way systemctl does (READY=1, STATUS= lines with the
frames measured, WATCHDOG=1), so they wait for what happened rather than for wall-clock time.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path


class NotifySocket:
    """What systemd's end of NOTIFY_SOCKET sees: each datagram with the monotonic time it arrived."""

    def __init__(self, path: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.path = path
        self.got: list[tuple[float, dict[str, str]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                continue
            self.got.append((time.monotonic(), dict(ln.split("=", 1) for ln in data.splitlines())))

    def pings(self, start: float, end: float) -> list[tuple[float, dict[str, str]]]:
        return [(t, s) for t, s in list(self.got) if start <= t < end and s.get("WATCHDOG") == "1"]

    def wait_for(self, cond: Callable[[dict[str, str]], bool], limit_s: float = 60) -> float:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            for t, s in list(self.got):
                if cond(s):
                    return t
            time.sleep(0.05)
        raise AssertionError(f"no such notification in {limit_s} s: {self.got[-5:]}")

    def wait_for_state(self, cond: Callable[[dict[str, str]], bool], limit_s: float = 60) -> dict[str, str]:
        """The first notification that meets ``cond`` (waiting for it up to limit_s)."""
        t = self.wait_for(cond, limit_s)
        return next(s for at, s in list(self.got) if at == t and cond(s))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def frames_in(state: dict[str, str]) -> int:
    """Frames measured so far, from the STATUS line systemctl would show (-1 while loading)."""
    m = re.search(r"\((\d+) frames", state.get("STATUS", ""))
    return int(m.group(1)) if m else -1
