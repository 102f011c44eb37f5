"""Frame sources: everything that yields camera frames to the agent.

A source is an iterator of :class:`Frame`. ``open_source`` picks the kind from
the URI (video file, image folder, camera device, GStreamer pipeline, stream URL).
"""

from __future__ import annotations

from .base import Frame, FrameSource
from .files import ImageFolderSource, VideoFileSource
from .live import LiveSource
from .open import open_source
from .redact import redact

__all__ = ["Frame", "FrameSource", "ImageFolderSource", "LiveSource", "VideoFileSource", "open_source", "redact"]
