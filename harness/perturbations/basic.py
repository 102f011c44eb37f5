"""The first perturbations: additive noise, blur and pixel dropout.

Parameter tables for ImageNet-C corruptions come from Hendrycks & Dietterich,
"Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019 (the published ``make_imagenet_c`` parameters).
"""

from __future__ import annotations

import cv2
import numpy as np

from .base import Perturbation, as_float, register, to_uint8


def _gaussian_noise(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    (sigma,) = params
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(sigma)
    return to_uint8(as_float(image) + noise)


def _gaussian_blur(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    (sigma,) = params
    # skimage.filters.gaussian (used by ImageNet-C) truncates at 4 sigma and
    # replicates the border; OpenCV's kernel with the same reach matches it.
    radius = max(1, int(4.0 * sigma + 0.5))
    out = cv2.GaussianBlur(image, (2 * radius + 1, 2 * radius + 1), sigmaX=sigma, sigmaY=sigma,
                           borderType=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)


def _pixel_dropout(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Individual pixels lost in transport read as black (all channels at once)."""
    (fraction,) = params
    mask = rng.random(image.shape[:2], dtype=np.float32) < np.float32(fraction)
    out = image.copy()
    out[mask] = 0
    return out


register(
    Perturbation(
        name="gaussian_noise",
        family="noise",
        fn=_gaussian_noise,
        # ImageNet-C gaussian_noise: c = [.08, .12, .18, .26, .38] (std on [0, 1] pixels).
        table=((0.08,), (0.12,), (0.18,), (0.26,), (0.38,)),
        identity=(0.0,),
        param_names=("sigma",),
        description="Additive Gaussian sensor noise.",
        source="ImageNet-C",
    )
)

register(
    Perturbation(
        name="gaussian_blur",
        family="blur",
        fn=_gaussian_blur,
        # ImageNet-C extra gaussian_blur: c = [1, 2, 3, 4, 6] (sigma in pixels).
        table=((1.0,), (2.0,), (3.0,), (4.0,), (6.0,)),
        identity=(0.0,),
        param_names=("sigma",),
        description="Out-of-focus lens approximated by a Gaussian kernel.",
        source="ImageNet-C (extra)",
    )
)

register(
    Perturbation(
        name="pixel_dropout",
        family="camera",
        fn=_pixel_dropout,
        # Not an ImageNet-C corruption: fraction of pixels lost, chosen so that
        # severity 5 (20%) is a badly broken link and severity 1 (1%) is barely visible.
        table=((0.01,), (0.02,), (0.05,), (0.10,), (0.20,)),
        identity=(0.0,),
        param_names=("fraction",),
        description="Pixels lost in transport ('package loss'), read as black.",
        source="edgeprobe",
    )
)
