"""Frame -> the model's height and width (stretch, centre crop or letterbox), into a reused buffer.

What the deployed path must equal is the plain way: ``cv2.resize`` of the
whole frame (bilinear), then the centre crop or the letterbox canvas. For a
centre crop this resizes less: a bilinear output pixel depends only on its own
position's source taps and weights, and OpenCV computes those from the output
index and the scale factor alone, so resizing just the frame's top-left part
that the kept outputs read (at the same scale factor, passed as ``fx``/``fy``)
gives exactly the same pixels for every output it covers. Cropping 768x576 to
224x224 that is 671 of 768 source columns and 261 of 299 output columns
(-11% time). OpenCV builds differ (SIMD, IPP, a board's HAL), so the shortcut
is taken only after it gave the identical crop on a noise frame of that shape
in this process; otherwise the whole frame is resized.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from edgeprobe.agent.backends.buffers import aligned_empty
from edgeprobe.harness.noise_frame import noise_frame

#: letterbox bars, the usual YOLO grey
PAD = 114

_exact: dict[tuple[object, ...], bool] = {}
_exact_lock = threading.Lock()


@dataclass(frozen=True)
class ResizePlan:
    """How frames of one size reach the model's size; pure geometry, worked out once per frame size."""

    dsize: tuple[int, int] | None  # cv2.resize's (width, height); None: the frame is already the model's size
    out_hw: tuple[int, int]  # what the resize writes (smaller than dsize's when it reads only a part)
    part: tuple[int, int] | None  # (rows, cols) of the frame's top-left part read at dsize's scale, or None
    crop: tuple[slice, slice] | None  # centre crop of the resize's output
    inset: tuple[slice, slice] | None  # letterbox: where the resize's output goes on the canvas
    #: for a part: the scale factors OpenCV derives from the whole frame and dsize, passed as such
    fx: float = 0.0
    fy: float = 0.0


def _extent(src: int, dst: int, need: int) -> int:
    """Source pixels from index 0 that a bilinear ``src -> dst`` resize reads for its first ``need`` outputs.

    OpenCV maps output ``d`` to source ``(d + 0.5) * (src / dst) - 0.5`` (in float32) and reads that pixel and
    the next; the part must also be large enough that OpenCV's own output for it (``round(part * dst / src)``)
    still holds ``need`` outputs. ``src`` when nothing would be saved.
    """
    if need >= dst:
        return src
    inv = dst / src
    last = float(np.float32((need - 1 + 0.5) * (1.0 / inv) - 0.5))
    ext = math.floor(last) + 3  # the two taps, one pixel of margin
    while ext < src and round(ext * inv) < need:
        ext += 1
    return ext if ext < src - 1 else src


def plan(h: int, w: int, th: int, tw: int, mode: str) -> ResizePlan:
    if mode == "center_crop":
        s = max(th / h, tw / w)
        nh, nw = max(th, round(h * s)), max(tw, round(w * s))
        y, x = (nh - th) // 2, (nw - tw) // 2
        crop = (slice(y, y + th), slice(x, x + tw))
        eh, ew = _extent(h, nh, y + th), _extent(w, nw, x + tw)
        if (eh, ew) == (h, w):
            return ResizePlan((nw, nh), (nh, nw), None, crop, None)
        out_hw = (round(eh * (nh / h)) if eh < h else nh, round(ew * (nw / w)) if ew < w else nw)
        return ResizePlan((nw, nh), out_hw, (eh, ew), crop, None, nw / w, nh / h)
    if mode == "letterbox":
        s = min(th / h, tw / w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        y, x = (th - nh) // 2, (tw - nw) // 2
        return ResizePlan((nw, nh), (nh, nw), None, None, (slice(y, y + nh), slice(x, x + nw)))
    if (h, w) == (th, tw):
        return ResizePlan(None, (h, w), None, None, None)
    return ResizePlan((tw, th), (th, tw), None, None, None)


def _resize_part(image: np.ndarray, p: ResizePlan, dst: np.ndarray | None = None) -> np.ndarray:
    assert p.part is not None
    return cv2.resize(image[: p.part[0], : p.part[1]], None, dst=dst, fx=p.fx, fy=p.fy,
                      interpolation=cv2.INTER_LINEAR)


def part_is_exact(shape: tuple[int, ...], dtype: np.dtype, p: ResizePlan) -> bool:
    """Whether this OpenCV gives the whole-frame resize's crop when resizing only ``p.part`` (checked once)."""
    key = (shape, np.dtype(dtype).str, p.dsize, p.part, p.fx, p.fy)
    with _exact_lock:
        known = _exact.get(key)
    if known is not None:
        return known
    noise = noise_frame(shape, np.dtype(dtype))
    assert p.dsize is not None and p.crop is not None
    whole = cv2.resize(noise, p.dsize, interpolation=cv2.INTER_LINEAR)[p.crop]
    part = _resize_part(noise, p)
    ok = part.shape[:2] == p.out_hw and np.array_equal(part[p.crop], whole)
    with _exact_lock:
        _exact[key] = ok
    return ok


class FrameResizer:
    """Resizes frames of one shape and dtype into one reused buffer (one per thread: not thread-safe).

    ``__call__`` returns the model-sized frame: a view of the buffer (the crop), the letterbox canvas, or the
    frame itself when it already has the model's size. It is overwritten by the next call.
    """

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, th: int, tw: int, mode: str) -> None:
        p = plan(shape[0], shape[1], th, tw, mode)
        if p.part is not None and not part_is_exact(shape, dtype, p):
            assert p.dsize is not None
            p = ResizePlan(p.dsize, (p.dsize[1], p.dsize[0]), None, p.crop, None)
        self.plan = p
        extra = tuple(shape[2:])
        self._into: np.ndarray | None = None
        self.view: np.ndarray | None = None  # the model-sized result, fixed for the buffer's life
        if p.dsize is None:
            return
        if p.inset is not None:
            canvas = aligned_empty((th, tw, *extra), dtype, fill=PAD)
            self._into, self.view = canvas[p.inset], canvas
        else:
            self._into = aligned_empty((*p.out_hw, *extra), dtype)
            self.view = self._into if p.crop is None else self._into[p.crop]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        p, into = self.plan, self._into
        if into is None:
            return image
        if p.part is not None:
            done = _resize_part(image, p, into)
        else:
            done = cv2.resize(image, p.dsize, dst=into, interpolation=cv2.INTER_LINEAR)
        if done is not into:  # OpenCV made its own array (a (h, w, 1) frame comes back (h, w))
            into[...] = done.reshape(into.shape)
        assert self.view is not None
        return self.view
