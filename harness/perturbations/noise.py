"""ImageNet-C noise: Gaussian, shot (Poisson), impulse (salt and pepper) and speckle.

Parameter tables: Hendrycks & Dietterich, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR 2019 (the
published ``make_imagenet_c`` parameters, as packaged in imagecorruptions 1.1.2).

Speed: every function draws raw random bits once and finishes in a few
OpenCV passes over uint8; no float64 frame is ever made. For a fixed seed
the random draw is the same at every severity and only its scale changes,
so the distance from the clean frame grows monotonically with severity.
"""

from __future__ import annotations

from functools import lru_cache
from math import lgamma

import cv2
import numpy as np

from edgeprobe.harness.perturbations._fast import add_scaled, mask_where, rand_u8, rand_u16, unit_normal
from edgeprobe.harness.perturbations.base import Perturbation, register


def _gaussian_noise(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    (sigma,) = params
    return add_scaled(image, unit_normal(rng, image.shape, reuse=True), sigma * 255.0)


def _speckle_noise(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """x + x * N(0, c): noise proportional to the signal."""
    (c,) = params
    z = unit_normal(rng, image.shape, reuse=True)
    cv2.multiply(z, image, dst=z, scale=float(c), dtype=cv2.CV_32F)
    return add_scaled(image, z, 1.0)


@lru_cache(maxsize=16)
def _poisson_table(c: float) -> np.ndarray:
    """Inverse-CDF table: (pixel value << 8 | random byte) -> round(255 * min(Poisson(x*c)/c, 1)).

    Shot noise depends on the pixel only through its value, and a uint8
    frame has 256 of them, so Poisson sampling is one look-up in a 64K
    table per pixel (probabilities resolved to 1/256, mid-point quantiles).
    """
    u = (np.arange(256, dtype=np.float64) + 0.5) / 256
    lam = np.arange(256, dtype=np.float64) / 255.0 * c
    kmax = int(c + 12 * np.sqrt(c) + 12)
    k = np.arange(kmax + 1, dtype=np.float64)
    lg = np.array([lgamma(x + 1) for x in k])
    with np.errstate(divide="ignore"):
        logpmf = k[None, :] * np.log(np.maximum(lam[:, None], 1e-300)) - lam[:, None] - lg[None, :]
    pmf = np.exp(logpmf)
    pmf[0] = 0
    pmf[0, 0] = 1.0
    cdf = np.cumsum(pmf, axis=1)
    counts = np.stack([np.searchsorted(cdf[v], u, side="right") for v in range(256)])
    values = np.clip(np.minimum(counts, kmax) / c, 0, 1) * 255.0
    return np.floor(values + 0.5).astype(np.uint8).ravel()


def _shot_noise(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Poisson photon noise: Poisson(x * c) / c, with fewer photons (smaller c) at higher severity.

    The published table runs c = 60 .. 3; severity 0 would need c = infinity,
    so rows are interpolated in 1/c (photon noise variance) and inverted.
    """
    (inv_c,) = params
    if inv_c < 1 / 500:
        # Hundreds of photons: Poisson is normal to within the 8-bit output (variance x / c).
        sd = np.sqrt(np.arange(256, dtype=np.float32) * np.float32(255.0 * inv_c)).reshape(256, 1)
        spread = cv2.multiply(unit_normal(rng, image.shape), cv2.LUT(image, sd), dtype=cv2.CV_32F)
        return add_scaled(image, np.asarray(spread), 1.0)
    table = _poisson_table(round(1.0 / inv_c, 6))
    idx = image.astype(np.uint16) << np.uint16(8)
    idx |= rand_u8(rng, image.shape)
    return table.take(idx)


def _impulse_noise(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper on each value independently (skimage ``random_noise(mode='s&p')``).

    Salt takes the lowest ``amount/2`` of a 16-bit uniform and pepper the
    highest, so both sets only grow with severity for a fixed seed.
    """
    (amount,) = params
    u = rand_u16(rng, image.shape)
    half = round(amount / 2 * 65536)
    if half <= 0:
        return image.copy()
    salt = mask_where(u, half)
    pepper = mask_where(u, 65536 - half, below=False)
    return np.asarray(cv2.subtract(cv2.add(image, salt.reshape(image.shape)), pepper.reshape(image.shape)))


register(
    Perturbation(
        name="gaussian_noise",
        family="noise",
        fn=_gaussian_noise,
        # Hendrycks & Dietterich 2019 (ImageNet-C) gaussian_noise: std c = [.08, .12, .18, .26, .38] on [0, 1].
        table=((0.08,), (0.12,), (0.18,), (0.26,), (0.38,)),
        identity=(0.0,),
        param_names=("sigma",),
        description="Additive Gaussian sensor noise.",
        source="ImageNet-C",
        monotone=True,
        notes="normal deviates from two 256-level quantile look-ups (tails to 3.8 sigma); rounds where the "
              "reference truncates (the reference is 0.5 grey level darker on average)",
    )
)

register(
    Perturbation(
        name="shot_noise",
        family="noise",
        fn=_shot_noise,
        # Hendrycks & Dietterich 2019 (ImageNet-C) shot_noise: c = [60, 25, 12, 5, 3] photons at full scale;
        # stored as 1/c so that severity 0 (no noise) is the row 0.
        table=((1 / 60,), (1 / 25,), (1 / 12,), (1 / 5,), (1 / 3,)),
        identity=(0.0,),
        param_names=("1/photons",),
        description="Poisson photon noise of a dim scene (few photons per pixel).",
        source="ImageNet-C",
        notes="Poisson by a per-level inverse-CDF table with 8-bit uniforms (normal above 500 photons); "
              "rows interpolated in 1/c",
    )
)

register(
    Perturbation(
        name="impulse_noise",
        family="noise",
        fn=_impulse_noise,
        # Hendrycks & Dietterich 2019 (ImageNet-C) impulse_noise: amount = [.03, .06, .09, .17, .27].
        table=((0.03,), (0.06,), (0.09,), (0.17,), (0.27,)),
        identity=(0.0,),
        param_names=("amount",),
        description="Salt-and-pepper noise on individual channel values (bit errors).",
        source="ImageNet-C",
        monotone=True,
    )
)

register(
    Perturbation(
        name="speckle_noise",
        family="noise",
        fn=_speckle_noise,
        # Hendrycks & Dietterich 2019 (ImageNet-C extra) speckle_noise: c = [.15, .2, .35, .45, .6].
        table=((0.15,), (0.20,), (0.35,), (0.45,), (0.60,)),
        identity=(0.0,),
        param_names=("sigma",),
        description="Multiplicative noise, x + x * N(0, sigma).",
        source="ImageNet-C (extra)",
        monotone=True,
        notes="same fast normal deviates as gaussian_noise",
    )
)
