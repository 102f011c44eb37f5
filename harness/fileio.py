"""Writing results: atomic file writes and images as data URIs, shared by the agent and the CLI."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeprobe.harness.errors import ConfigError


def encode_image(image: np.ndarray, ext: str = ".jpg", width: int | None = None) -> str:
    """A data URI for the HTML report (JPEG thumbnails; PNG for exact replay originals)."""
    if width and image.shape[1] > width:
        h = round(image.shape[0] * width / image.shape[1])
        image = cv2.resize(image, (width, h), interpolation=cv2.INTER_AREA)
    # WebP at quality > 100 is lossless: exact pixels for replay at ~60% of PNG's size.
    params = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, 80], ".webp": [cv2.IMWRITE_WEBP_QUALITY, 101],
              ".png": [cv2.IMWRITE_PNG_COMPRESSION, 9]}[ext]
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise ValueError("image encoding failed")
    mime = {".jpg": "image/jpeg", ".webp": "image/webp", ".png": "image/png"}[ext]
    return f"data:{mime};base64,{base64.b64encode(buf.tobytes()).decode('ascii')}"


def atomic_write(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    """Write via a temp file in the same folder and rename: no half-written report left behind."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode) as f:
            write(f)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}; pick a writable path") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
