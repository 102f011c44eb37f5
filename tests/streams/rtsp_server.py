"""An RTSP server on 127.0.0.1 through GStreamer's gst-rtsp-server (Debian's python3-gi).

Runs under /usr/bin/python3 (the venv cannot import Debian's gi):
``/usr/bin/python3 rtsp_server.py VIDEO PORT``; serves ``rtsp://127.0.0.1:PORT/cam``
as MJPEG over RTP of the real video, looping; prints ``READY`` once listening.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    video, port = sys.argv[1], sys.argv[2]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f'( multifilesrc location="{video}" loop=true ! avidemux ! decodebin ! videoconvert ! videorate '
        "! video/x-raw,framerate=25/1 ! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26 )")
    factory.set_shared(True)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print("cannot bind", file=sys.stderr)
        sys.exit(1)
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
