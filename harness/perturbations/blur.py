"""ImageNet-C blurs: defocus, glass, motion, zoom, and the extra Gaussian blur.

Parameter tables: Hendrycks & Dietterich, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR 2019 (the
published ``make_imagenet_c`` parameters, as packaged in imagecorruptions 1.1.2).

The reference implementations loop in Python (glass blur swaps pixels one
at a time: 14 s for a 640x480 frame) or sum dozens of shifted float64
copies. Each blur here is a handful of OpenCV passes; where the result is
made at reduced resolution or by a different but equivalent construction,
the ``notes`` field of its registry row says so, and the fidelity test
(tests/harness/test_perturbations_fidelity.py) holds it to the reference's
pixel statistics.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from edgeprobe.harness.perturbations._fast import gaussian, line_blur, rand_u8, zoom_center
from edgeprobe.harness.perturbations.base import Perturbation, register

#: the second map of a remap whose first holds both coordinates (int16 pairs)
_NO_MAP = np.empty((0, 0), np.uint16)

def _resample_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a wide kernel made at 1/f resolution.

    Above sigma 2.5 a Gaussian leaves nothing above a quarter of the sampling
    rate, so blurring the area-downscaled frame and upscaling bilinearly
    gives the same picture; the kernel is narrowed so that the resampling's
    own blur (box f^2/12 plus tent f^2/6 in variance) adds up to sigma^2.
    """
    h, w = image.shape[:2]
    f = int(min(4, sigma // 1.25))
    if f < 2 or h < 4 * f or w < 4 * f:
        return gaussian(image, sigma)
    small = cv2.resize(image, ((w + f - 1) // f, (h + f - 1) // f), interpolation=cv2.INTER_AREA)
    s2 = max(sigma**2 - f * f / 4.0, 0.25)
    small = gaussian(small, math.sqrt(s2) / f)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)).reshape(image.shape)


def _gaussian_blur(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    (sigma,) = params
    return _resample_blur(image, sigma)


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """ImageNet-C's anti-aliased disk kernel, cropped to its support.

    The reference always builds 17x17 up to radius 8 (zeros around a small
    disk); the same weights on a tight square give the same convolution,
    and OpenCV convolves small kernels directly instead of through a DFT.
    """
    half = math.ceil(radius) + (1 if radius <= 8 else 2)
    coords = np.arange(-half, half + 1, dtype=np.float32)
    xx, yy = np.meshgrid(coords, coords)
    disk = ((xx**2 + yy**2) <= radius**2).astype(np.float32)
    disk /= max(float(disk.sum()), 1.0)
    ksize = (3, 3) if radius <= 8 else (5, 5)
    return np.asarray(cv2.GaussianBlur(disk, ksize, sigmaX=max(alias_blur, 1e-3)))


def _defocus_blur(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Disk (pill-box) blur of an out-of-focus lens.

    Radii from 4.5 are convolved at reduced resolution (factor f = radius/3,
    rounded): a 17x17 disk over a full frame costs 7 ms, a 9x9 one over a
    quarter of it under 0.5 ms, and a disk of radius r removes what the
    downscale drops. The low-resolution disk is shrunk so the resampling
    blur does not add to it.
    """
    radius, alias = params
    if radius <= 0:
        return image.copy()
    h, w = image.shape[:2]
    f = round(radius / 3.0)  # an integer factor keeps OpenCV's area downscale on its fast path
    if f < 2 or h < 8 * f or w < 8 * f:
        return np.asarray(cv2.filter2D(image, -1, _disk(radius, alias), borderType=cv2.BORDER_REFLECT_101))
    sw, sh = max(1, round(w / f)), max(1, round(h / f))
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    r_small = math.sqrt(max(radius**2 - f * f, 1.0)) / f
    small = cv2.filter2D(small, -1, _disk(r_small, alias / f), borderType=cv2.BORDER_REFLECT_101)
    return np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)).reshape(image.shape)


@lru_cache(maxsize=1)
def _laplace_quantiles() -> np.ndarray:
    """256 mid-point quantiles of a unit-variance Laplace distribution (heavy tails, like the swap chains)."""
    q = (np.arange(256, dtype=np.float64) + 0.5) / 256 - 0.5
    return (-np.sign(q) * np.log1p(-2 * np.abs(q)) / math.sqrt(2.0)).astype(np.float32)


def _glass_blur(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Frosted-glass blur: Gaussian, local pixel shuffle, Gaussian.

    The reference swaps every pixel with a random neighbour, one at a time,
    ``iterations`` raster sweeps (14 s per 640x480 frame in Python). A pixel
    swapped towards the unswept part is picked up again, so content travels
    in chains: simulating the sweeps gives heavy-tailed displacements with a
    standard deviation of 1.8, 1.8, 3.2, 3.6, 4.7 px for severities 1..5.
    Here the shuffle is one gather (``cv2.remap``) from Laplace-distributed
    integer offsets with that spread (the ``spread`` column, fitted so PSNR
    and SSIM match the reference). Same local statistics; not the same
    permutation, and a gather may repeat a pixel where a swap cannot.
    """
    sigma, _max_delta, _iterations, spread = params
    h, w = image.shape[:2]
    once = gaussian(image, sigma)
    if spread <= 0 or h < 2 or w < 2:
        return gaussian(once, sigma)
    lut = np.clip(np.round(_laplace_quantiles() * spread), -4 * spread, 4 * spread).astype(np.float32)
    lut16 = lut.astype(np.int16).reshape(256, 1)
    u = rand_u8(rng, (2, h, w))
    # Integer maps straight away (x, y interleaved int16): no float maps to convert.
    offsets = cv2.merge([cv2.LUT(u[0], lut16), cv2.LUT(u[1], lut16)])
    maps = cv2.add(_grid16(h, w), offsets)
    # map2 is an empty array, not None: OpenCV 5.0's stubs refuse None there and 5.1's accept it (same pixels)
    shuffled = cv2.remap(once, maps, _NO_MAP, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
    return gaussian(np.asarray(shuffled).reshape(image.shape), sigma)


@lru_cache(maxsize=8)
def _grid16(h: int, w: int) -> np.ndarray:
    """Pixel coordinates as an OpenCV CV_16SC2 map (x, y per pixel)."""
    gx, gy = np.meshgrid(np.arange(w, dtype=np.int16), np.arange(h, dtype=np.int16))
    return np.ascontiguousarray(np.stack([gx, gy], axis=2))


def _motion_blur(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Camera shake: a one-sided Gaussian-weighted line at a random angle in [-45, 45] degrees."""
    radius, sigma = params
    angle = float(rng.uniform(-45, 45))
    return line_blur(image, 2 * radius + 1, sigma, angle)


#: Zoom blur averages 2**ZOOM_LEVELS zoomed copies (the reference: 11 to 16; 8 look the same after the blend).
ZOOM_LEVELS = 3


def _zoom_blur(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Radial blur of a camera zooming during the exposure.

    The reference averages 11-16 centre zooms evenly spaced from 1 to
    ``max_zoom``, each a float64 scipy spline zoom (half a second a frame).
    Here the zoom factors are geometric, z = max_zoom**(j/7) for j = 0..7,
    so the average of all 8 is built by doubling: three passes of
    ``A <- (A + zoom(A, r**(2**k))) / 2`` with OpenCV's bilinear resize.
    """
    (max_zoom,) = params
    if max_zoom <= 1.0:
        return image.copy()
    n = 2**ZOOM_LEVELS
    ratio = max_zoom ** (1.0 / (n - 1))
    acc = image
    step = ratio
    for _ in range(ZOOM_LEVELS):
        acc = np.asarray(cv2.addWeighted(acc, 0.5, zoom_center(acc, step), 0.5, 0.0)).reshape(image.shape)
        step *= step
    return acc


register(
    Perturbation(
        name="gaussian_blur",
        family="blur",
        fn=_gaussian_blur,
        # Hendrycks & Dietterich 2019 (ImageNet-C extra) gaussian_blur: sigma = [1, 2, 3, 4, 6] pixels.
        table=((1.0,), (2.0,), (3.0,), (4.0,), (6.0,)),
        identity=(0.0,),
        param_names=("sigma",),
        onset=0.4,  # sigma 0.4: the weakest blur that changes a textured uint8 frame
        description="Out-of-focus lens approximated by a Gaussian kernel.",
        source="ImageNet-C (extra)",
        notes="sigma >= 2.5 is blurred at 1/2..1/4 resolution and upscaled (same picture, 3x faster)",
    )
)

register(
    Perturbation(
        name="defocus_blur",
        family="blur",
        fn=_defocus_blur,
        # Hendrycks & Dietterich 2019 (ImageNet-C) defocus_blur: (radius, alias_blur) =
        # [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)].
        table=((3.0, 0.1), (4.0, 0.5), (6.0, 0.5), (8.0, 0.5), (10.0, 0.5)),
        identity=(0.0, 0.1),
        param_names=("radius", "alias_blur"),
        onset=0.4,  # radius 1.2: a disk under one pixel leaves the frame as it was
        description="Out-of-focus lens: disk (pill-box) kernel.",
        source="ImageNet-C",
        notes="radius >= 4.5 convolved at 1/round(radius/3) resolution with a compensated disk",
    )
)

register(
    Perturbation(
        name="glass_blur",
        family="blur",
        fn=_glass_blur,
        # Hendrycks & Dietterich 2019 (ImageNet-C) glass_blur: (sigma, max_delta, iterations) =
        # [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)]. The fourth column is edgeprobe's:
        # the displacement spread (px) that reproduces those sweeps (see _glass_blur), interpolated smoothly
        # where the integer delta and sweep count could not be.
        table=((0.7, 1.0, 2.0, 1.7), (0.9, 2.0, 1.0, 1.7), (1.0, 2.0, 3.0, 3.9), (1.1, 3.0, 2.0, 3.7),
               (1.5, 4.0, 2.0, 4.7)),
        identity=(0.0, 0.0, 0.0, 0.0),
        param_names=("sigma", "max_delta", "iterations", "spread"),
        onset=0.2,
        description="Frosted glass: blur, local pixel shuffle, blur.",
        source="ImageNet-C",
        notes="the sequential pixel swaps are one random-offset gather (cv2.remap) with the same spread; "
              "2000x faster, same PSNR/SSIM, not the same permutation",
    )
)

register(
    Perturbation(
        name="motion_blur",
        family="blur",
        fn=_motion_blur,
        # Hendrycks & Dietterich 2019 (ImageNet-C) motion_blur: (radius, sigma) =
        # [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)]; the angle is uniform in [-45, 45] degrees.
        table=((10.0, 3.0), (15.0, 5.0), (15.0, 8.0), (15.0, 12.0), (20.0, 15.0)),
        identity=(0.0, 1.0),
        param_names=("radius", "sigma"),
        description="Camera shake during the exposure, along a random direction.",
        source="ImageNet-C",
        notes="shear, one 1-D filter, shear back instead of summing up to 41 shifted copies",
    )
)

register(
    Perturbation(
        name="zoom_blur",
        family="blur",
        fn=_zoom_blur,
        # Hendrycks & Dietterich 2019 (ImageNet-C) zoom_blur: zooms np.arange(1, z, step) for
        # (z, step) = [(1.11, .01), (1.16, .01), (1.21, .02), (1.26, .02), (1.31, .03)]; stored as the largest zoom.
        table=((1.11,), (1.15,), (1.20,), (1.24,), (1.30,)),
        identity=(1.0,),
        param_names=("max_zoom",),
        description="Radial blur of a zoom during the exposure.",
        source="ImageNet-C",
        notes="8 geometric zoom steps averaged by doubling (3 resizes) instead of 11-16 linear scipy zooms",
    )
)
