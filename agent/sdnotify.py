"""systemd readiness and watchdog pings over $NOTIFY_SOCKET, without a dependency.

The protocol is one datagram of ``KEY=VALUE`` lines to the unix socket systemd
names in ``NOTIFY_SOCKET`` (sd_notify(3)); outside systemd the variable is unset
and every call is a no-op. With ``WatchdogSec=`` systemd sets ``WATCHDOG_USEC``
and restarts the agent when no ``WATCHDOG=1`` arrives in time, which catches a
measuring loop that hangs (a wedged camera driver, a deadlocked runtime) where
``Restart=on-failure`` alone would wait forever.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        # A leading '@' names a socket in the abstract namespace.
        self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        # Ping at half the timeout, as sd_watchdog_enabled(3) advises.
        self.interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._last = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, state: str) -> bool:
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a full queue must drop the ping, never stall the frame loop
                sock.connect(self.address)
                sock.sendall(state.encode())
        except OSError:
            return False  # systemd gone or socket not ours: never break the measuring loop over it
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def tick(self) -> bool:
        """Called every frame; sends WATCHDOG=1 at most once per half watchdog period."""
        if self.interval is None:
            return False
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        return self.send("WATCHDOG=1")
