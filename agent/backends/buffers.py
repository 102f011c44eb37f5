"""Cache-line aligned arrays for the hot path's reused buffers.

numpy aligns a large array to 16 bytes, and OpenCV's SIMD kernels can be
many times slower writing to such a destination: ``cv2.split`` of a 224x224x3
frame into 16-byte-aligned planes took 104 us against 6 us into 64-byte-aligned
ones on this project's x86_64 machine (benchmarks/preprocess.py measures the
preprocessor with the buffers as built here). Whether a buffer was unlucky
depended on where malloc put it, so the same code ran fast in one process and
slow in the next.
"""

from __future__ import annotations

import numpy as np

ALIGN = 64


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype | type, fill: int | None = None) -> np.ndarray:
    """An uninitialised (or ``fill``-ed) C-contiguous array whose first byte sits on a cache line."""
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dt.itemsize
    raw = np.empty(nbytes + ALIGN, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGN
    arr = raw[start : start + nbytes].view(dt).reshape(shape)
    if fill is not None:
        arr.fill(fill)
    return arr
