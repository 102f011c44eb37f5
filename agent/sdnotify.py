"""systemd readiness and a watchdog heartbeat over $NOTIFY_SOCKET, without a dependency.

The protocol is one datagram of ``KEY=VALUE`` lines to the unix socket systemd
names in ``NOTIFY_SOCKET`` (sd_notify(3)); outside systemd the variable is unset
and every call is a no-op. With ``WatchdogSec=`` systemd sets ``WATCHDOG_USEC``
and restarts the agent when no ``WATCHDOG=1`` arrives in time, which catches a
measuring loop that hangs (a stuck runtime, a deadlock) where
``Restart=on-failure`` alone would wait forever.

Pings come from :class:`Heartbeat`'s own thread, not from the frame callback:
pinged per frame, a camera outage longer than ``WatchdogSec`` turned into a
kill-and-restart loop (a new session each time) although the agent was doing
its job, reporting the camera offline. The thread still pings only while the
loop shows life (a frame, or an idle tick while it waits for a camera), so a
loop that truly hangs stops the pings and systemd restarts it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

#: heartbeat period when systemd sets no watchdog (the heartbeat file still ages in containers)
DEFAULT_INTERVAL_S = 5.0
#: the longest model load / engine build the heartbeat keeps extending systemd's start timeout for
MAX_LOAD_S = 3600.0


class Notifier:
    """The sd_notify(3) datagram protocol; inert where ``NOTIFY_SOCKET`` is unset."""

    def __init__(self, env: Mapping[str, str] | None = None):
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        # A leading '@' names a socket in the abstract namespace.
        self.address = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        #: systemd's watchdog timeout in seconds, when it watches this process
        self.timeout = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        # Ping at half the timeout, as sd_watchdog_enabled(3) advises.
        self.interval = self.timeout / 2 if self.timeout is not None else None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, state: str) -> bool:
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a full queue must drop the ping, never stall the agent
                sock.connect(self.address)
                sock.sendall(state.encode())
        except OSError:
            return False  # systemd gone or socket not ours: never break the measuring loop over it
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")


class Heartbeat:
    """Pings systemd's watchdog and touches a heartbeat file from a thread, while the agent's loop is alive.

    The loop calls :meth:`frame` per measured frame and :meth:`idle` on each tick it spends waiting
    for a camera; both only store a number, so the frame path pays nothing measurable. The thread
    sends ``WATCHDOG=1`` (with a ``STATUS=`` line systemctl shows) every half watchdog period as long
    as the loop beat within the watchdog timeout. Inside :meth:`loading` (model load, TensorRT engine
    build) the loop cannot beat, so the thread pings and sends ``EXTEND_TIMEOUT_USEC`` instead, up to
    ``max_load_s``: a build longer than systemd's start timeout starts, a build that hangs forever
    does not keep the unit "activating" forever.
    """

    def __init__(self, notifier: Notifier, *, file: Path | None = None, interval_s: float | None = None,
                 max_load_s: float = MAX_LOAD_S):
        self.notifier = notifier
        self.file = file
        self.interval = notifier.interval or interval_s or DEFAULT_INTERVAL_S
        #: the loop counts as hung when it has not beaten for this long (systemd's own timeout)
        self.stall_s = notifier.timeout or 4 * self.interval
        self.max_load_s = max_load_s
        self.frames = 0
        self.waiting = False
        self.pings = 0
        self._last_beat = time.monotonic()
        self._loading: str | None = None
        self._loading_since = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- called by the loop (cheap) ------------------------------------------

    def frame(self, frames: int) -> None:
        self.frames, self.waiting, self._last_beat = frames, False, time.monotonic()

    def idle(self) -> None:
        self.waiting, self._last_beat = True, time.monotonic()

    @contextlib.contextmanager
    def loading(self, what: str) -> Iterator[None]:
        """Long start-up work that cannot beat: the thread vouches for it (bounded by ``max_load_s``)."""
        self._loading, self._loading_since = what, time.monotonic()
        self._send()  # extend at once: the work may already be near systemd's default 90 s
        try:
            yield
        finally:
            self._loading, self._last_beat = None, time.monotonic()

    # --- the thread ------------------------------------------------------------

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._run, name="edgeprobe-heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)

    def __enter__(self) -> Heartbeat:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def alive(self) -> bool:
        now = time.monotonic()
        if self._loading is not None:
            return now - self._loading_since < self.max_load_s
        return now - self._last_beat < self.stall_s

    def status(self) -> str:
        if self._loading is not None:
            return f"{self._loading} ({time.monotonic() - self._loading_since:.0f} s)"
        if self.waiting:
            return f"waiting for the camera ({self.frames} frames measured)"
        return f"measuring ({self.frames} frames)"

    def _send(self) -> None:
        if not self.alive():
            return  # a hung loop: let the watchdog fire and the file age, so it gets restarted
        lines = ["WATCHDOG=1", f"STATUS={self.status()}"]
        if self._loading is not None:
            # a little over two periods from now: one lost datagram does not end the start-up
            lines.append(f"EXTEND_TIMEOUT_USEC={int(self.interval * 2.5e6)}")
        if self.notifier.send("\n".join(lines)):
            self.pings += 1
        if self.file is not None:
            touch(self.file)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._send()


def touch(path: Path) -> None:
    """Set the heartbeat file's mtime to now, creating it; a read-only or missing folder never stops the agent."""
    try:
        with open(path, "a"):
            os.utime(path)
    except OSError:
        pass


def heartbeat_age(path: Path) -> float:
    """Seconds since the agent last touched ``path`` (``OSError`` when it never did)."""
    return max(0.0, time.time() - path.stat().st_mtime)
