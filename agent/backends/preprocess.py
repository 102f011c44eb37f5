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
(tests/agent/test_preprocess.py). An 8-bit NHWC tensor of a colour frame
(int8/uint8-quantised models) is drawn in one pass instead: each table is a
rounded line, which one ``cv2.transform`` with a diagonal matrix reproduces
for all three channels at once, once this OpenCV build has been seen to give
every table value at every position (``transform_matrix``). Everything a frame needs (buffers, views,
the order of the planes) is built once per thread and frame shape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
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
        self._transform: np.ndarray | None = None
        self._transform_known = False
        self._transform_lock = threading.Lock()

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

    def transform_matrix(self) -> np.ndarray | None:
        """The matrix that draws this preprocessor's three 8-bit tables in one cv2.transform, proven on this
        build once (None: it cannot, and the tables are looked up plane by plane)."""
        with self._transform_lock:
            if not self._transform_known:
                scale, zero = self.quantization or (1.0, 0)
                lines = [(float(self._ca[i]) / scale, float(self._cb[i]) / scale + zero) for i in range(self.channels)]
                self._transform = transform_matrix(self._luts, lines, self.height, self.width, self.dtype == np.int8)
                self._transform_known = True
            return self._transform

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


def _affine_candidates(table: np.ndarray, gain: float, offset: float) -> list[tuple[float, float]]:
    """(gain, offset) pairs whose rounded line ``rint(x * gain + offset)`` (clipped to 0..255) may be the uint8
    ``table``'s staircase: the formula's own line first, then lines with the gain nudged by millionths, each
    with the offset in the middle of the interval that every pixel value's rounding allows (the table was
    rounded after two float32 steps, so a value near a tie can need the line moved a little)."""
    x = np.arange(256, dtype=np.float64)
    y = table.astype(np.float64)
    out: list[tuple[float, float]] = [(gain, offset)]
    for k in (0, 1, -1, 2, -2, 4, -4, 8, -8, 16, -16):
        g = gain * (1.0 + k * 1e-6)
        low = np.max(np.where(y > 0, y - 0.5 - x * g, -np.inf))
        high = np.min(np.where(y < 255, y + 0.5 - x * g, np.inf))
        if np.isfinite(low) and np.isfinite(high) and low < high:
            out.append((g, (low + high) / 2))
    return out


def transform_matrix(luts: Sequence[np.ndarray], lines: Sequence[tuple[float, float]], h: int, w: int,
                     signed: bool) -> np.ndarray | None:
    """A diagonal 3x4 matrix with which ``cv2.transform`` of an h x w 3-channel uint8 image gives, in one
    pass, every channel ``c`` as ``luts[c]`` of that channel, or None where this OpenCV cannot.

    An 8-bit table of a per-channel affine formula (``lines[c]``: its gain and offset on the 0..255 scale) is a
    rounded line, which cv2.transform with a diagonal matrix draws in one pass over the interleaved frame (it
    rounds ``x * gain + offset`` to the nearest integer and saturates), where three table look-ups took three
    passes plus a split and a merge. ``signed`` tables (int8) are drawn 128 up into uint8, which the caller
    flips back. Nothing is assumed of OpenCV's arithmetic (a non-diagonal matrix, for one, runs in fixed
    point and misses): a matrix is returned only after this build's cv2.transform reproduced the tables for
    every pixel value at every position of a contiguous row of the same length modulo 256 and of padded rows
    of width ``w`` (where a SIMD body and its tail split the pixels as they do on frames of this size).
    """
    if len(luts) != 3:
        return None
    shift = 128.0 if signed else 0.0
    targets = [(lut.reshape(256).view(np.uint8) ^ np.uint8(0x80)) if signed else lut.reshape(256).view(np.uint8)
               for lut in luts]
    cands = [_affine_candidates(t, g, o + shift) for t, (g, o) in zip(targets, lines, strict=True)]
    values = np.arange(256, dtype=np.uint8)
    probe = np.ascontiguousarray(np.repeat(values[:, None], 3, axis=1)[None])  # 1 x 256 x 3, every value
    m = np.zeros((3, 4), np.float32)
    for c in range(3):
        for gain, offset in cands[c]:
            m[c, c], m[c, 3] = gain, offset
            if np.array_equal(cv2.transform(probe, m)[0, :, c], targets[c]):
                break
        else:
            return None
    stacked = np.stack(targets, axis=-1)  # 256 x 3: the wanted output of each value per channel
    channel = np.arange(3)
    n = 256 + (h * w) % 256
    flat = (np.arange(n)[:, None] + 85 * channel) % 256
    rows = (np.arange(2 * w).reshape(2, w)[..., None] + 85 * channel) % 256
    padded = np.empty((2, w + 7, 3), np.uint8)
    for k in range(256):  # each position sees every value in every channel
        line = ((flat + k) % 256).astype(np.uint8)[None]
        padded[:, :w] = (rows + k) % 256
        if not (np.array_equal(cv2.transform(line, m), stacked[line, channel])
                and np.array_equal(cv2.transform(padded[:, :w], m), stacked[padded[:, :w], channel])):
            return None
    return m


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

        # 0. NHWC 8-bit tables of a colour frame: one cv2.transform draws all three (see transform_matrix)
        if pre._mode == "lut" and pre.layout == "NHWC" and c == 3 and not grey and pre.dtype.itemsize == 1:
            m = pre.transform_matrix()
            if m is not None:
                hwc8 = out[0].view(np.uint8)
                drawn: list[Step] = [lambda img: cv2.transform(img, m, dst=hwc8)]
                if pre.cfg.color == "rgb":  # the swap first (a swapping matrix runs in fixed point)
                    rgb = aligned_empty((h, w, 3), np.uint8)
                    drawn = [lambda img: cv2.transform(cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=rgb), m, dst=hwc8)]
                if pre.dtype == np.int8:  # drawn 128 up, as uint8: the top bit flipped is the int8 value
                    drawn.append(lambda img: np.bitwise_xor(hwc8, np.uint8(0x80), out=hwc8))
                self.steps = drawn
                return
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
