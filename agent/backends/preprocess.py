"""Frame -> input tensor, configured rather than hard-coded per model.

This runs on every frame of the deployed path, so once warm it allocates
nothing and does little past the resize (agent/backends/resize.py, which
reads only the part of the frame a centre crop keeps): the model-sized frame
is split into its channel planes, straight into a reused buffer in the
model's channel order (the colour swap costs nothing), and normalised into a
preallocated tensor in the model's layout. A float32 tensor is normalised by
one conversion, one multiply and one add over the whole tensor with
per-channel scalars; integer (quantised) and float64 tensors go through
256-entry look-up tables, since their formula (rounding, clipping) is many
passes and a table is one. The tables are the formula evaluated once per pixel
value, and numpy's float32 multiply and add round exactly as the formula's, so
either way the result is bit-identical to applying the formula to the frame
(tests/agent/test_preprocess.py). Everything a frame needs (buffers, views,
the order of the planes) is built once per thread and frame shape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from edgeprobe.agent.backends.buffers import aligned_empty
from edgeprobe.agent.backends.resize import FrameResizer
from edgeprobe.agent.config import PreprocessConfig

#: output dtypes cv2.LUT can write; others take the general path
_LUT_DTYPES = {np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.float32), np.dtype(np.float64)}
#: a NHWC multiply-add broadcasts its per-channel row over blocks of rows at most this long (bytes): short
#: rows make numpy's broadcast loop slow (19 against 12 us for 224x224x3), long ones fall out of L1
_ROW_BLOCK_BYTES = 24 * 1024


@dataclass
class Preprocessor:
    """Resize, reorder channels, normalise and lay out one frame as a batch of 1.

    The normalisation is folded into one multiply-add per pixel
    (``x * a + b`` with ``a = scale/std``, ``b = -mean/std``), computed in
    float32 as the formula says. ``__call__`` returns this thread's reused
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
        dtype = np.dtype(self.dtype)
        c = self.channels
        self._ca = np.array([self._a[i] if self._a.size > 1 else self._a[0] for i in range(c)], dtype=np.float32)
        self._cb = np.array([self._b[i] if self._b.size > 1 else self._b[0] for i in range(c)], dtype=np.float32)
        raw = dtype == np.uint8 and self.quantization is None
        self._mode = ("raw" if raw else "arith" if dtype == np.float32 and self.quantization is None
                      else "lut" if dtype in _LUT_DTYPES else "general")
        self._luts: list[np.ndarray] = []
        if self._mode == "lut":
            values = np.arange(256, dtype=np.uint8)
            self._luts = [np.ascontiguousarray(self._normalise(values, i)).reshape(1, 256) for i in range(c)]
        self._shape = (1, c, self.height, self.width) if self.layout == "NCHW" else (1, self.height, self.width, c)

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

    def resize(self, image: np.ndarray) -> np.ndarray:
        """The frame at the model's height and width, in this thread's reused buffer (until its next call)."""
        return self._frames(image).resizer(image)

    def _frames(self, image: np.ndarray) -> _Frames:
        frames: dict[tuple[tuple[int, ...], str], _Frames] | None = getattr(self._local, "frames", None)
        if frames is None:
            frames = self._local.frames = {}
        key = (image.shape, image.dtype.str)
        f = frames.get(key)
        if f is None:
            f = frames[key] = _Frames(self, image.shape, image.dtype)
        return f

    def __call__(self, image: np.ndarray) -> np.ndarray:
        f = self._frames(image)
        img = f.resizer(image)
        if f.steps is None:
            f.out[...] = self._general(img)
        else:
            for step in f.steps:
                step(img)
        return f.out

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


Step = Callable[[np.ndarray], object]


class _Frames:
    """One thread's buffers, views and steps for frames of one shape and dtype, built on the first such frame.

    ``steps`` run in order on the model-sized frame and leave the tensor in ``out``; None means the general
    path (frames that are not 8-bit grey or BGR, tensors cv2.LUT cannot write).
    """

    def __init__(self, pre: Preprocessor, shape: tuple[int, ...], dtype: np.dtype) -> None:
        h, w, c = pre.height, pre.width, pre.channels
        self.resizer = FrameResizer(shape, dtype, h, w, pre.cfg.resize)
        self.out = aligned_empty(pre._shape, pre.dtype)
        grey = len(shape) == 2 or shape[2] == 1
        if dtype != np.uint8 or pre._mode == "general" or not (grey or shape[2] == 3):
            self.steps: list[Step] | None = None
            return
        out = self.out
        # the frame's planes in the model's channel order (raw NCHW pixels are the tensor itself)
        pixels = out[0] if pre._mode == "raw" and pre.layout == "NCHW" else aligned_empty((c, h, w), np.uint8)
        steps: list[Step] = []

        def as2d(img: np.ndarray) -> np.ndarray:
            return img.reshape(h, w)

        # 1. pixel planes (NCHW, or a LUT in either layout) or an HWC frame (NHWC raw and float32)
        planar = pre.layout == "NCHW" or pre._mode == "lut"
        if planar:
            if c == 1 and not grey:
                steps.append(lambda img: cv2.cvtColor(img, cv2.COLOR_BGR2GRAY, dst=pixels[0]))
            elif grey:
                steps.append(lambda img: np.copyto(pixels, as2d(img)))  # grey -> BGR repeats the plane
            else:
                order = [pixels[2], pixels[1], pixels[0]] if pre.cfg.color == "rgb" else list(pixels)
                steps.append(lambda img: cv2.split(img, order))
        # 2. the tensor
        if pre._mode == "lut":
            luts = pre._luts
            planes = [out[0, i] for i in range(c)] if pre.layout == "NCHW" else list(aligned_empty((c, h, w),
                                                                                                   pre.dtype))
            pairs = list(zip(pixels, luts, planes, strict=True))
            steps.append(lambda img: [cv2.LUT(p, t, dst=d) for p, t, d in pairs])
            if pre.layout == "NHWC":
                hwc = out[0]
                steps.append((lambda img: cv2.merge(planes, dst=hwc)) if c > 1
                             else (lambda img: np.copyto(hwc[:, :, 0], planes[0])))
            self.steps = steps
            return
        if pre.layout == "NCHW":
            chw = out[0]
            if pre._mode == "raw":
                self.steps = steps
                return
            steps.append(lambda img: np.copyto(chw, pixels, casting="unsafe"))
            t = chw
            a, b = pre._ca.reshape(c, 1, 1), pre._cb.reshape(c, 1, 1)
        else:
            hwc = out[0]
            if c == 1:
                steps.append(lambda img: np.copyto(hwc[:, :, 0], as2d(img) if grey else cv2.cvtColor(
                    img, cv2.COLOR_BGR2GRAY, dst=pixels[0]), casting="unsafe"))
            elif grey:
                steps.append(lambda img: np.copyto(hwc, as2d(img)[:, :, None], casting="unsafe"))
            elif pre.cfg.color == "rgb":
                rgb = pixels.reshape(h, w, 3)
                steps.append(lambda img: np.copyto(hwc, cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=rgb),
                                                   casting="unsafe"))
            else:
                steps.append(lambda img: np.copyto(hwc, img, casting="unsafe"))
            rows = max(k for k in range(1, h + 1) if h % k == 0 and (k == 1 or k * w * c * 4 <= _ROW_BLOCK_BYTES))
            t = out.reshape(h // rows, rows * w * c)
            a, b = np.tile(pre._ca, rows * w), np.tile(pre._cb, rows * w)
        if pre._mode == "arith":
            steps.append(lambda img: np.multiply(t, a, out=t))
            steps.append(lambda img: np.add(t, b, out=t))
        self.steps = steps
