"""Frame -> input tensor, configured rather than hard-coded per model.

This runs on every frame of the deployed path, so it allocates nothing
frame-sized once warm: the resized frame is split into its channel planes and
each plane goes through a 256-entry look-up table straight into a
preallocated tensor in the model's layout. The tables are computed once by
running the straightforward formula (``x * a + b`` in float32, then
quantisation where the model takes integers) on every possible pixel value,
so the result is bit-identical to applying that formula to the frame.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cv2
import numpy as np

from edgeprobe.agent.config import PreprocessConfig

#: output dtypes cv2.LUT can write; others take the general path
_LUT_DTYPES = {np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.float32), np.dtype(np.float64)}


@dataclass
class Preprocessor:
    """Resize, reorder channels, normalise and lay out one frame as a batch of 1.

    The normalisation is folded into one multiply-add per pixel
    (``x * a + b`` with ``a = scale/std``, ``b = -mean/std``), evaluated once per
    pixel value into look-up tables. ``__call__`` returns this thread's reused
    tensor: it is valid until the same thread calls again, so feed it to the
    model and do not keep it (``.copy()`` it to keep it).
    """

    cfg: PreprocessConfig
    height: int
    width: int
    channels: int
    layout: str
    dtype: np.dtype
    quantization: tuple[float, int] | None = None
    _local: threading.local = field(default_factory=threading.local, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        std = np.asarray(self.cfg.std, dtype=np.float32)
        mean = np.asarray(self.cfg.mean, dtype=np.float32)
        self._a = (np.float32(self.cfg.scale) / std).astype(np.float32)
        self._b = (-mean / std).astype(np.float32)
        self._luts: list[np.ndarray] | None = None
        if np.dtype(self.dtype) in _LUT_DTYPES:
            values = np.arange(256, dtype=np.uint8)
            self._luts = [np.ascontiguousarray(self._normalise(values, c)).reshape(1, 256)
                          for c in range(self.channels)]
        shape = (1, self.channels, self.height, self.width) if self.layout == "NCHW" else (
            1, self.height, self.width, self.channels)
        self._shape = shape

    def _normalise(self, pixels: np.ndarray, channel: int) -> np.ndarray:
        """The formula itself, on pixels of one channel (the tables and the general path share it)."""
        if self.dtype == np.uint8 and self.quantization is None:
            return pixels.astype(np.uint8)  # the model takes raw pixels
        a = self._a[channel] if self._a.size > 1 else self._a[0]
        b = self._b[channel] if self._b.size > 1 else self._b[0]
        x = pixels.astype(np.float32) * a + b
        if self.quantization is not None:
            scale, zero = self.quantization
            info = np.iinfo(self.dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max)
        return x.astype(self.dtype, copy=False)

    def _buffers(self) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """This thread's output tensor, split pixel planes and (NHWC) normalised planes, made on first use."""
        local = self._local
        out = getattr(local, "out", None)
        if out is None:
            out = local.out = np.empty(self._shape, dtype=self.dtype)
            local.pixels = [np.empty((self.height, self.width), dtype=np.uint8) for _ in range(3)]
            local.planes = [np.empty((self.height, self.width), dtype=self.dtype) for _ in range(self.channels)]
        return out, local.pixels, local.planes

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

    def _planes(self, img: np.ndarray, pixels: list[np.ndarray]) -> list[np.ndarray]:
        """The resized frame's channel planes in the model's channel order (split into ``pixels``)."""
        if self.channels == 1:
            return [cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img]
        if img.ndim == 2 or img.shape[2] == 1:
            grey = img.reshape(img.shape[:2])
            return [grey, grey, grey]  # grey -> BGR repeats the plane
        if img.shape[:2] == pixels[0].shape and img.shape[2] == 3:
            planes = list(cv2.split(img, pixels))
        else:
            planes = list(cv2.split(img))
        return planes[::-1] if self.cfg.color == "rgb" else planes

    def __call__(self, image: np.ndarray) -> np.ndarray:
        img = self.resize(image)
        out, pixels, scratch = self._buffers()
        if self._luts is None or img.dtype != np.uint8:
            out[...] = self._general(img)
            return out
        planes = self._planes(img, pixels)
        if self.layout == "NCHW":
            for c, plane in enumerate(planes):
                cv2.LUT(plane, self._luts[c], dst=out[0, c])
        elif self.channels == 1:
            cv2.LUT(planes[0], self._luts[0], dst=scratch[0])
            out[0, :, :, 0] = scratch[0]
        else:
            for c, plane in enumerate(planes):
                cv2.LUT(plane, self._luts[c], dst=scratch[c])
            cv2.merge(scratch, dst=out[0])
        return out

    def _general(self, img: np.ndarray) -> np.ndarray:
        """Any input dtype (16-bit or float frames) or output dtype cv2.LUT cannot write: the formula per channel."""
        if self.channels == 1:
            if img.ndim == 3:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            img = img[..., None]
        else:
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            if self.cfg.color == "rgb":
                img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        x = np.stack([self._normalise(img[..., c], c) for c in range(self.channels)], axis=-1)
        return x.transpose(2, 0, 1)[None] if self.layout == "NCHW" else x[None]
