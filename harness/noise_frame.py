"""A noise frame for the checks that a fast path gives OpenCV's own pixels (resize of a part, box shrinks).

Such a check runs once per frame size, in the agent's process too, so it must not load numpy.random there.
"""

from __future__ import annotations

import cv2
import numpy as np

#: dtypes cv2.randu fills, with the range it draws from
_RANDU_RANGE = {np.dtype(np.uint8): (0, 256), np.dtype(np.int8): (-128, 128), np.dtype(np.uint16): (0, 65536),
                np.dtype(np.int16): (-32768, 32768), np.dtype(np.float32): (0.0, 1.0),
                np.dtype(np.float64): (0.0, 1.0)}


def noise_frame(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A frame of uniform noise, with no structure to hide a difference, filled in place by OpenCV.

    Not numpy's random generator: loading numpy.random adds 6.5 MB to the agent's resident memory (most of it
    the pages of its compiled modules), and nothing else in it needs one while probing is off or in its own
    process. Filled as one single-channel plane, since OpenCV 5.1 reads a number next to a 3-channel array as
    (n, 0, 0, 0).
    """
    frame = np.empty(shape, dtype)
    low_high = _RANDU_RANGE.get(dtype)
    if low_high is None:  # a dtype OpenCV does not fill (int32, int64, ...): an index hash
        return (np.arange(frame.size, dtype=np.uint32) * np.uint32(2654435761) >> np.uint32(8)).astype(
            dtype).reshape(shape)
    low, high = (np.array([[v]], np.float64) for v in low_high)
    cv2.randu(frame.reshape(shape[0] if frame.ndim > 1 else 1, -1), low, high)
    return frame
