"""Which source a URI names: file, folder, camera device, GStreamer pipeline or stream URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeprobe.agent.sources.base import FrameSource
from edgeprobe.agent.sources.files import ImageFolderSource, VideoFileSource
from edgeprobe.agent.sources.live import EventSink, LiveSource
from edgeprobe.agent.sources.redact import redact
from edgeprobe.harness.errors import SourceError

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")


def live_kind(uri: str) -> str | None:
    if uri.isdigit() or uri.startswith("/dev/"):
        return "device"
    if "!" in uri:
        return "gstreamer"
    if uri.lower().startswith(STREAM_SCHEMES):
        return "url"
    if "://" in uri:
        raise SourceError(f"source.uri {redact(uri)} has a scheme edgeprobe cannot read; use rtsp://, http:// "
                          "(MJPEG), a camera index, a /dev/video path, a GStreamer pipeline, a file or a folder")
    return None


def open_source(uri: str, loop: bool = False, pace: bool = False, *, on_event: EventSink | None = None,
                reuse_buffer: bool = False, **live: Any) -> FrameSource:
    """Open the source a URI names; ``live`` holds timeouts, backoff and fail_fast for cameras.

    ``reuse_buffer``: decode every frame into one array where the source can (a video file), so a frame
    is valid only until the next is asked for (see :class:`VideoFileSource`). Cameras and streams hand out
    a fresh array per frame either way: their grabber thread decodes while the consumer still works on
    the frame before, so one buffer would be overwritten under it.
    """
    kind = live_kind(uri)
    if kind is not None:
        return LiveSource(uri, kind, on_event=on_event, **live)
    if Path(uri).is_dir():
        return ImageFolderSource(uri, loop=loop)
    return VideoFileSource(uri, loop=loop, pace=pace, reuse_buffer=reuse_buffer)
