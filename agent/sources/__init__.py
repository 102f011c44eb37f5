"""Frame sources: everything that yields camera frames to the agent.

A source is an iterator of :class:`Frame`. ``open_source`` picks the kind from
the URI (video file, image folder; live cameras and streams plug in here).
"""

from __future__ import annotations

from .base import Frame, FrameSource
from .files import ImageFolderSource, VideoFileSource, open_source

__all__ = ["Frame", "FrameSource", "ImageFolderSource", "VideoFileSource", "open_source"]
