"""Start the test stream servers as subprocesses a test can kill."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

from tests.sdnotify_socket import NotifySocket

HERE = Path(__file__).parent
DEBIAN_PYTHON = "/usr/bin/python3"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "READY" not in line:
        proc.kill()
        raise RuntimeError(f"stream server did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")


def start_mjpeg(video: Path, port: int, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, str(HERE / "mjpeg_server.py"), str(video), str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_ready(proc)
    return proc


def rtsp_unavailable() -> str:
    """Why the RTSP server cannot run here ('' when it can)."""
    if not Path(DEBIAN_PYTHON).exists():
        return "no /usr/bin/python3 for Debian's python3-gi"
    probe = subprocess.run([DEBIAN_PYTHON, "-c", "import gi; gi.require_version('GstRtspServer', '1.0'); "
                            "from gi.repository import GstRtspServer"], capture_output=True, text=True)
    if probe.returncode:
        return "gst-rtsp-server is not installed (make stream-deps installs gir1.2-gst-rtsp-server-1.0 and python3-gi)"
    if shutil.which("gst-inspect-1.0") and subprocess.run(["gst-inspect-1.0", "rtpjpegpay"],
                                                          capture_output=True).returncode:
        return "GStreamer's rtpjpegpay (gstreamer1.0-plugins-good) is missing"
    return ""


def start_rtsp(video: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([DEBIAN_PYTHON, str(HERE / "rtsp_server.py"), str(video), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_ready(proc)
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    proc.kill()
    proc.wait(timeout=10)


def stop_agent(agent: subprocess.Popen[str], server: subprocess.Popen[str] | None, notify: NotifySocket) -> str:
    """Tear down a streaming agent test whatever happened in it: the stream server if it is still up, the agent
    by SIGTERM (its clean exit is what the test checks; killed if it does not exit within a minute) and the
    notify socket. Returns the agent's stderr."""
    try:
        if server is not None:
            stop(server)
        agent.terminate()
        try:
            _, err = agent.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            agent.kill()
            _, err = agent.communicate(timeout=10)
    finally:
        notify.close()
    return str(err or "")
