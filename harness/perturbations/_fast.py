"""Fast building blocks shared by the catalogue: random draws, Gaussian blur, line blur, zoom.

These run on live frames on small ARM boards, so each one is chosen for
speed first: OpenCV's vectorised (and multi-threaded) kernels over numpy
passes, uint8 arithmetic where the reference used float64, and random bits
drawn raw from the bit generator (a uint64 stream reinterpreted as bytes is
five to ten times cheaper than ``Generator.standard_normal``).
"""

from __future__ import annotations

import math
import threading
from functools import lru_cache
from statistics import NormalDist

import cv2
import numpy as np


def _raw(rng: np.random.Generator, words: int) -> np.ndarray:
    """``words`` random uint64 from SFC64 (about twice PCG64's speed), seeded by one draw from ``rng``.

    Bit-exact for a seed on every machine: both generators are fully specified.
    """
    child = np.random.SFC64(int(rng.bit_generator.random_raw()))
    return np.asarray(child.random_raw(words))


def rand_u8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform bytes straight from a bit generator: no float conversion, no rejection."""
    n = int(np.prod(shape))
    return _raw(rng, (n + 7) // 8).view(np.uint8)[:n].reshape(shape)


def rand_u16(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    return _raw(rng, (2 * n + 7) // 8).view(np.uint16)[:n].reshape(shape)


@lru_cache(maxsize=1)
def _half_normal_quantiles() -> np.ndarray:
    """256 mid-point quantiles of N(0, 1/2), rescaled so that the sum of two has unit variance."""
    q = np.array([NormalDist().inv_cdf((i + 0.5) / 256) for i in range(256)], np.float64)
    q /= math.sqrt(2.0 * float(np.mean(q**2)))
    return q.astype(np.float32).reshape(256, 1)


_local = threading.local()


def scratch(slot: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A per-thread reusable buffer for intermediates that never leave a perturbation call.

    Frame-sized temporaries allocated and freed on every frame make glibc
    hand the memory back to the kernel and fault it in again (about 1 ms per
    3 MB); reusing them keeps a perturbation's cost what its arithmetic costs.
    """
    bufs: dict[tuple[str, tuple[int, ...], str], np.ndarray] = _local.__dict__.setdefault("bufs", {})
    key = (slot, shape, np.dtype(dtype).str)
    buf = bufs.get(key)
    if buf is None:
        if len(bufs) > 32:
            bufs.clear()
        buf = bufs[key] = np.empty(shape, dtype)
    return buf


def unit_normal(rng: np.random.Generator, shape: tuple[int, ...], reuse: bool = False) -> np.ndarray:
    """Standard normal float32 deviates, about six times faster than ``standard_normal``.

    Each deviate is the sum of two 256-level quantile look-ups (inverse-CDF
    sampling of two independent N(0, 1/2) variables): mean 0, variance 1,
    tails to +-3.8 sigma, and the pixel-level statistics of ImageNet-C's
    noise are unchanged (see the fidelity test). With ``reuse`` the result
    lives in a scratch buffer, valid until the next call on this thread.
    """
    lut = _half_normal_quantiles()
    u = rand_u8(rng, (2, *shape))
    if not reuse:
        return np.asarray(cv2.add(cv2.LUT(u[0], lut), cv2.LUT(u[1], lut))).reshape(shape)
    a = scratch("normal_a", u.shape[1:], np.float32)
    b = scratch("normal_b", u.shape[1:], np.float32)
    cv2.LUT(u[0], lut, dst=a)
    cv2.LUT(u[1], lut, dst=b)
    cv2.add(a, b, dst=a)
    return a.reshape(shape)


def mask_where(values: np.ndarray, threshold: int, below: bool = True) -> np.ndarray:
    """255 where ``values < threshold`` (or ``>=`` with ``below=False``), else 0, as uint8.

    ``cv2.compare`` reads a one-element array as a scalar, so tiny frames take the numpy path. Larger ones
    are compared as one single-channel row: OpenCV 5.1 compares a 3-channel array with a number's
    (n, 0, 0, 0), so channels 1 and 2 saw a threshold of 0 (impulse noise salted one channel and peppered
    the other two everywhere).
    """
    if values.size < 16:
        hit = values < threshold if below else values >= threshold
        return np.where(hit, np.uint8(255), np.uint8(0)).astype(np.uint8)
    op = cv2.CMP_LT if below else cv2.CMP_GE
    row = np.ascontiguousarray(values).reshape(1, -1)
    return np.asarray(cv2.compare(row, float(threshold), op)).reshape(values.shape)  # type: ignore[call-overload]


def add_scaled(image: np.ndarray, noise: np.ndarray, scale: float, offset: float = 0.0) -> np.ndarray:
    """``saturate(round(image + scale * noise + offset))`` as uint8, in one OpenCV pass."""
    return np.asarray(cv2.addWeighted(image, 1.0, noise, float(scale), float(offset), dtype=cv2.CV_8U))


def gaussian(image: np.ndarray, sigma: float | tuple[float, float], truncate: float = 4.0,
             border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """Gaussian blur with skimage's reach (``truncate`` sigmas; default border 'nearest').

    ``sigma`` is one value or (sigma_y, sigma_x).
    """
    sy, sx = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
    if sx <= 0 and sy <= 0:
        return image.copy()
    kx = 2 * max(1, int(truncate * sx + 0.5)) + 1
    ky = 2 * max(1, int(truncate * sy + 0.5)) + 1
    out = cv2.GaussianBlur(image, (kx, ky), sigmaX=max(sx, 1e-6), sigmaY=max(sy, 1e-6), borderType=border)
    return np.asarray(out).reshape(image.shape)


def zoom_center(image: np.ndarray, factor: float) -> np.ndarray:
    """Enlarge the centre by ``factor`` (>= 1) to the full frame: crop the middle 1/factor and resize."""
    h, w = image.shape[:2]
    if factor <= 1.0:
        return image.copy()
    ch, cw = max(1, round(h / factor)), max(1, round(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = image[top:top + ch, left:left + cw]
    return np.asarray(cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)).reshape(image.shape)


def down_up(image: np.ndarray, small_w: int, small_h: int, up: int) -> np.ndarray:
    """Area-downscaled to (small_w, small_h) and back to the frame's size with ``up`` (a cv2 interpolation):
    what a low-resolution stream or a pixelated frame looks like at the model's input."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, small_w), max(1, small_h)), interpolation=cv2.INTER_AREA)
    return np.asarray(cv2.resize(small, (w, h), interpolation=up)).reshape(image.shape)


def line_kernel(length: float, sigma: float, cos_t: float) -> np.ndarray:
    """Weights of ImageNet-C's motion kernel, projected on the dominant axis.

    The reference sums ``width = 2*radius+1`` shifted copies with one-sided
    Gaussian weights, tap ``i`` sitting at ``ceil(i*cos - 0.5)`` along the
    dominant axis; taps landing on the same pixel add up.
    """
    width = max(1, math.floor(length))
    i = np.arange(width, dtype=np.float64)
    k = np.exp(-(i**2) / (2.0 * max(sigma, 1e-6) ** 2))
    k /= k.sum()
    pos = np.ceil(i * abs(cos_t) - 0.5).astype(np.int64)
    out = np.zeros(int(pos.max()) + 1, np.float64)
    np.add.at(out, pos, k)
    return out.astype(np.float32)


def line_blur(image: np.ndarray, length: float, sigma: float, angle_deg: float) -> np.ndarray:
    """Motion blur along ``angle_deg`` (y pointing down).

    As in the reference, each output pixel is a one-sided weighted sum of
    the pixels from it along (cos, sin) of the angle, so a point light
    streaks the opposite way.

    The reference loops over up to 41 shifted copies of the frame. Here the
    frame is sheared (``warpAffine``, nearest: whole-pixel shifts per column)
    so the motion line becomes horizontal, blurred with one 1-D kernel, and
    sheared back: three passes whatever the length. Lines steeper than 45
    degrees are handled on the transposed frame, lines pointing left on the
    mirrored one.
    """
    if length < 2 or image.shape[0] < 2 or image.shape[1] < 2:
        return image.copy()
    theta = math.radians(angle_deg)
    c, s = math.cos(theta), math.sin(theta)
    transpose = abs(s) > abs(c)
    img = cv2.transpose(image) if transpose else image
    if transpose:
        c, s = s, c
    mirror = c < 0
    if mirror:
        img = cv2.flip(img, 1)
        c, s = -c, s
    img = np.asarray(img).reshape((img.shape[0], img.shape[1], *image.shape[2:]))
    kernel = line_kernel(length, sigma, c)
    t = s / c
    h, w = img.shape[:2]
    extra = math.ceil(abs(t) * (w - 1 + kernel.size)) + 1
    rows = h + extra
    # Sheared frame S(y', x) = img(y' + t x + y0, x) over enough rows to hold every line.
    y0 = -extra if t > 0 else 0
    fwd = np.array([[1.0, 0.0, 0.0], [t, 1.0, float(y0)]], np.float64)
    sheared = cv2.warpAffine(img, fwd, (w, rows), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
    # One-sided kernel: tap j reads x + j (anchor at the kernel's first element).
    blurred = cv2.sepFilter2D(sheared, -1, kernel.reshape(1, -1), _ONE, anchor=(0, 0),
                              borderType=cv2.BORDER_REPLICATE)
    back = np.array([[1.0, 0.0, 0.0], [-t, 1.0, float(-y0)]], np.float64)
    out = cv2.warpAffine(blurred, back, (w, h), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_REPLICATE)
    if mirror:
        out = cv2.flip(out, 1)
    if transpose:
        out = cv2.transpose(out)
    return np.asarray(out).reshape(image.shape)


_ONE = np.ones((1, 1), np.float32)


def fractal_noise(rng: np.random.Generator, height: int, width: int, decay: float) -> np.ndarray:
    """Plasma-like fractal in [0, 1], the stand-in for ImageNet-C's diamond-square heightmap.

    The reference builds a power-of-two map (1024x1024 for a 640x480 frame)
    with per-step displacements shrinking by ``decay``. Here the same spectrum
    is summed from octaves of upsampled random grids (amplitude
    ``decay**-2k`` for a grid of ``2**k`` cells, as the reference scales its
    displacements by the square of its wibble) at a 128x128 working size,
    normalised over the whole map and cropped like the reference; octaves
    finer than 128 cells carry under 1% of the amplitude for the published decays.
    """
    size = 1 if max(height, width) <= 1 else 2 ** math.ceil(math.log2(max(height, width)))
    work = min(size, 128)
    acc = np.zeros((work, work), np.float32)
    amp = 1.0
    cells = 1
    while cells <= work:
        # Periodic grids, as the reference's map wraps around (np.roll): the coarsest octave is a constant,
        # not a ramp across the frame.
        grid = (rng.random((cells, cells), dtype=np.float32) * 2 - 1) * np.float32(amp)
        grid = np.pad(grid, ((0, 1), (0, 1)), mode="wrap")
        step = work // cells
        up = cv2.resize(grid, (work + step, work + step), interpolation=cv2.INTER_LINEAR)
        acc += up[:work, :work]
        cells *= 2
        amp /= decay * decay  # the reference scales displacements by wibble**2
    acc -= acc.min()
    peak = float(acc.max())
    if peak > 0:
        acc /= peak
    ch = max(1, round(height * work / size))
    cw = max(1, round(width * work / size))
    crop = acc[:ch, :cw]
    return np.asarray(cv2.resize(crop, (width, height), interpolation=cv2.INTER_LINEAR)).reshape(height, width)


def gray_of(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))


def like(plane: np.ndarray, image: np.ndarray) -> np.ndarray:
    """A single-channel plane repeated to the channel count of ``image``."""
    return plane if image.ndim == 2 else np.asarray(cv2.merge([plane, plane, plane]))
