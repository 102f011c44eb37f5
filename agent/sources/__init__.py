"""Frame sources: everything that yields camera frames to the agent.

A source is an iterator of :class:`Frame`. ``open_source`` picks the kind from
the URI (video file, image folder, camera device, GStreamer pipeline, stream URL).
"""

from __future__ import annotations

from edgeprobe.agent.sources.base import Frame, FrameSource
from edgeprobe.agent.sources.files import ImageFolderSource, VideoFileSource
from edgeprobe.agent.sources.live import LiveSource
from edgeprobe.agent.sources.open import open_source
from edgeprobe.agent.sources.redact import redact

__all__ = ["Frame", "FrameSource", "ImageFolderSource", "LiveSource", "VideoFileSource", "open_source", "redact"]
