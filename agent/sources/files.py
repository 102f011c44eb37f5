"""Recorded sources: video files and folders of images."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeprobe.agent.sources.base import Frame
from edgeprobe.harness.errors import SourceError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


class VideoFileSource:
    """Frames of a video file, optionally looping and paced at its native fps.

    With ``reuse_buffer`` every frame is decoded into the same array (``VideoCapture.read(image)``: no
    frame-sized allocation per frame, and the loop keeps touching the same cache-warm memory). A frame's
    image is then valid only until the next frame is asked for: for a consumer that handles each frame
    before asking for the next (the agent's loop, which copies what it keeps: a probe-due frame, the health
    predecessor's thumbnail). Collecting frames into a list needs the default, a fresh array per frame.
    """

    def __init__(self, path: str, loop: bool = False, pace: bool = False, reuse_buffer: bool = False):
        self.path = Path(path)
        self.loop = loop
        self.pace = pace
        self.reuse_buffer = reuse_buffer
        self._buffer: np.ndarray | None = None
        self.source_id = self.path.name
        if not self.path.is_file():
            raise SourceError(f"video file {self.path} does not exist; check source.uri")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise SourceError(
                f"cannot open {self.path} as a video (not a video file, or a codec OpenCV lacks); "
                "convert it with ffmpeg or point source.uri at another file"
            )
        self.fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.width = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT))

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        period_ns = int(1e9 / self.fps) if self.pace and self.fps > 0 else 0
        next_due = time.perf_counter_ns()
        while True:
            t0 = time.perf_counter_ns()
            ok, image = self._read()
            t1 = time.perf_counter_ns()
            if not ok:
                if self.loop and index > 0:
                    self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    ok, image = self._read()
                    t1 = time.perf_counter_ns()
                if not ok:
                    if index == 0:
                        raise SourceError(f"{self.path} opened but yielded no frames; the file may be damaged")
                    return
            if period_ns:
                next_due += period_ns
                delay = next_due - time.perf_counter_ns()
                if delay > 0:
                    time.sleep(delay / 1e9)
                else:
                    next_due = time.perf_counter_ns()  # late: do not try to catch up
                t1 = time.perf_counter_ns()
            decode_ns = 0 if period_ns else t1 - t0  # paced frames include the wait, not just decoding
            yield Frame(image=image, t_capture_ns=t1, index=index, source_id=self.source_id, decode_ns=decode_ns)
            index += 1

    def _read(self) -> tuple[bool, np.ndarray]:
        if not self.reuse_buffer:
            return self._cap.read()
        # OpenCV writes into the array when its size and type fit the frame and makes a new one otherwise
        # (the first frame, a change of resolution): that one becomes the buffer from then on
        ok, image = self._cap.read(self._buffer) if self._buffer is not None else self._cap.read()
        if ok:
            self._buffer = image
        return ok, image

    def close(self) -> None:
        self._cap.release()

    def describe(self) -> dict[str, Any]:
        return {"kind": "video_file", "uri": str(self.path), "width": self.width, "height": self.height,
                "fps": self.fps, "frames": self.frame_count, "loop": self.loop, "pace": self.pace}


class ImageFolderSource:
    """Images of a folder in name order; loops if asked."""

    def __init__(self, path: str, loop: bool = False):
        self.path = Path(path)
        self.loop = loop
        self.source_id = self.path.name
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise SourceError(
                f"folder {self.path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); check source.uri"
            )

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while True:
            for file in self.files:
                t0 = time.perf_counter_ns()
                image = cv2.imread(str(file), cv2.IMREAD_COLOR)
                t1 = time.perf_counter_ns()
                if image is None:
                    raise SourceError(f"cannot read image {file}; remove it from the folder or replace it")
                yield Frame(image=image, t_capture_ns=t1, index=index, source_id=self.source_id, decode_ns=t1 - t0)
                index += 1
            if not self.loop:
                return

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        first: np.ndarray | None = cv2.imread(str(self.files[0]))
        h, w = first.shape[:2] if first is not None else (0, 0)
        return {"kind": "image_folder", "uri": str(self.path), "images": len(self.files), "width": w, "height": h}

