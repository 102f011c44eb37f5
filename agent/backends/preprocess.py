"""Frame -> input tensor, configured rather than hard-coded per model."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..config import PreprocessConfig


@dataclass
class Preprocessor:
    """Resize, reorder channels, normalise and lay out one frame as a batch of 1.

    The normalisation is folded into one multiply-add per pixel
    (``x * a + b`` with ``a = scale/std``, ``b = -mean/std``) because this runs
    on every frame of the deployed path.
    """

    cfg: PreprocessConfig
    height: int
    width: int
    channels: int
    layout: str
    dtype: np.dtype
    quantization: tuple[float, int] | None = None

    def __post_init__(self) -> None:
        std = np.asarray(self.cfg.std, dtype=np.float32)
        mean = np.asarray(self.cfg.mean, dtype=np.float32)
        self._a = (np.float32(self.cfg.scale) / std).astype(np.float32)
        self._b = (-mean / std).astype(np.float32)

    def resize(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        th, tw = self.height, self.width
        mode = self.cfg.resize
        if mode == "center_crop":
            s = max(th / h, tw / w)
            nh, nw = max(th, round(h * s)), max(tw, round(w * s))
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
            y, x = (nh - th) // 2, (nw - tw) // 2
            return image[y : y + th, x : x + tw]
        if mode == "letterbox":
            s = min(th / h, tw / w)
            nh, nw = max(1, round(h * s)), max(1, round(w * s))
            resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
            canvas = np.full((th, tw, *image.shape[2:]), 114, dtype=image.dtype)
            y, x = (th - nh) // 2, (tw - nw) // 2
            canvas[y : y + nh, x : x + nw] = resized
            return canvas
        if (h, w) == (th, tw):
            return image
        return cv2.resize(image, (tw, th), interpolation=cv2.INTER_LINEAR)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        img = self.resize(image)
        if self.channels == 1:
            if img.ndim == 3:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            img = img[..., None]
        else:
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            if self.cfg.color == "rgb":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        if self.dtype == np.uint8 and self.quantization is None:
            x = img  # the model takes raw pixels
        else:
            a, b = (self._a[: self.channels], self._b[: self.channels])
            x = img.astype(np.float32) * a + b
            if self.quantization is not None:
                scale, zero = self.quantization
                info = np.iinfo(self.dtype)
                x = np.clip(np.round(x / scale + zero), info.min, info.max)
        x = x.astype(self.dtype, copy=False)
        if self.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x[None])
