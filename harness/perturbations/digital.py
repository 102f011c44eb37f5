"""ImageNet-C digital corruptions: brightness, contrast, elastic, pixelate, JPEG, and the extra saturate.

Parameter tables: Hendrycks & Dietterich, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR 2019 (the
published ``make_imagenet_c`` parameters, as packaged in imagecorruptions 1.1.2).
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from edgeprobe.harness.perturbations._fast import down_up, gaussian
from edgeprobe.harness.perturbations.base import Perturbation, register


def _hsv_shift(image: np.ndarray, channel: int, gain: float, offset: float) -> np.ndarray:
    """HSV round trip with one channel changed: ``ch = clip(ch * gain + offset, 0, 1)``.

    OpenCV's float HSV is exact (no 8-bit hue), like skimage's ``rgb2hsv``;
    a grey pixel has hue 0 (red) in both, so saturating grey tints it red as
    in the reference.
    """
    f = image.astype(np.float32)
    f *= np.float32(1.0 / 255.0)
    hsv = np.asarray(cv2.cvtColor(f, cv2.COLOR_BGR2HSV), np.float32)
    plane = hsv[:, :, channel]
    plane *= np.float32(gain)
    plane += np.float32(offset)
    np.clip(plane, 0, 1, out=plane)
    back = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
    return np.asarray(cv2.convertScaleAbs(back, alpha=255.0))


def _brightness(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """HSV value raised by ``c`` (greyscale: the grey level raised)."""
    (c,) = params
    if image.ndim == 2:
        lut = np.clip(np.arange(256, dtype=np.float32) + np.float32(c * 255) + 0.5, 0, 255).astype(np.uint8)
        return np.asarray(cv2.LUT(image, lut))
    return _hsv_shift(image, 2, 1.0, c)


def _saturate(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """HSV saturation scaled and offset; greyscale frames go through RGB as in the reference."""
    gain, offset = params
    if image.ndim == 2:
        return np.ascontiguousarray(_hsv_shift(cv2.merge([image, image, image]), 1, gain, offset)[:, :, 2])
    return _hsv_shift(image, 1, gain, offset)


def _contrast(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Pull every channel towards its mean: one 256-entry look-up table per channel."""
    (c,) = params
    channels = 1 if image.ndim == 2 else image.shape[2]
    means = cv2.mean(image)[:channels]
    ramp = np.arange(256, dtype=np.float32)
    luts = [np.clip((ramp - m) * np.float32(c) + np.float32(m) + 0.5, 0, 255).astype(np.uint8) for m in means]
    if channels == 1:
        return np.asarray(cv2.LUT(image, luts[0]))
    return np.asarray(cv2.LUT(image, cv2.merge(luts).reshape(256, 1, channels)))


def _pixelate(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Box-downscale by ``c`` and upscale nearest (PIL's BOX then NEAREST in the reference)."""
    (c,) = params
    h, w = image.shape[:2]
    return down_up(image, int(w * c), int(h * c), cv2.INTER_NEAREST_EXACT)


def _jpeg(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """JPEG round trip at ``quality`` (libjpeg's IJG scale, 4:2:0 chroma, as PIL in the reference)."""
    (quality,) = params
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, max(1, min(100, round(quality))),
                                           cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
    if not ok:  # pragma: no cover - OpenCV encodes every uint8 frame
        raise RuntimeError("JPEG encoding failed")
    flag = cv2.IMREAD_GRAYSCALE if image.ndim == 2 else cv2.IMREAD_COLOR
    return np.asarray(cv2.imdecode(buf, flag)).reshape(image.shape)


def _elastic(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Elastic warp: a smooth random displacement field (ImageNet-C's, minus the affine part dropped in 1.1.2).

    The reference blurs full-frame uniform noise with sigma = 1% of the frame
    (about 5 px) in float64. A field that smooth is made here from noise on a
    grid s times coarser, with the variance scaled by s^2 so the blurred field
    has the same strength, blurred with sigma/s and resized; the frame is then
    warped with ``cv2.remap`` (bilinear, reflected border, like scipy's
    ``map_coordinates(order=1, mode='reflect')``).
    """
    (alpha,) = params
    h, w = image.shape[:2]
    sy, sx = 0.01 * h, 0.01 * w
    max_d = 0.005 * h
    s = max(1, int(min(sy, sx) / 1.5))
    gh, gw = max(1, math.ceil(h / s)), max(1, math.ceil(w / s))
    sd = max_d / math.sqrt(3.0) / s
    fields = []
    for _ in range(2):
        noise = rng.standard_normal((gh, gw), dtype=np.float32) * np.float32(sd * alpha)
        blurred = gaussian(noise, (sy / s, sx / s), truncate=3.0, border=cv2.BORDER_REFLECT)
        if s > 1:
            blurred = np.asarray(cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR))
        fields.append(blurred.reshape(h, w))
    gx, gy = _grid(h, w)
    # Fixed-point maps (1/32 px, OpenCV's own remap precision): converting once beats remapping from floats.
    m1, m2 = cv2.convertMaps(cv2.add(gx, fields[0]), cv2.add(gy, fields[1]), cv2.CV_16SC2)
    out = cv2.remap(image, m1, m2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.asarray(out).reshape(image.shape)


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return gx, gy


register(
    Perturbation(
        name="brightness",
        family="digital",
        fn=_brightness,
        # Hendrycks & Dietterich 2019 (ImageNet-C) brightness: HSV value + c, c = [.1, .2, .3, .4, .5].
        table=((0.1,), (0.2,), (0.3,), (0.4,), (0.5,)),
        identity=(0.0,),
        param_names=("value_offset",),
        description="Brighter scene: HSV value raised.",
        source="ImageNet-C",
        monotone=True,
        notes="OpenCV float32 HSV instead of skimage float64 (same formula)",
    )
)

register(
    Perturbation(
        name="contrast",
        family="digital",
        fn=_contrast,
        # Hendrycks & Dietterich 2019 (ImageNet-C) contrast: (x - mean) * c + mean, c = [.4, .3, .2, .1, .05].
        table=((0.4,), (0.3,), (0.2,), (0.1,), (0.05,)),
        identity=(1.0,),
        param_names=("factor",),
        description="Low contrast: every channel pulled towards its mean.",
        source="ImageNet-C",
        monotone=True,
        notes="one per-channel look-up table",
    )
)

register(
    Perturbation(
        name="elastic_transform",
        family="digital",
        fn=_elastic,
        # Hendrycks & Dietterich 2019 (ImageNet-C, imagecorruptions 1.1.2 variant) elastic_transform:
        # alpha = 250 * [.05, .065, .085, .1, .12]; displacement sigma 1% of the frame, max 0.5% of its height.
        table=((12.5,), (16.25,), (21.25,), (25.0,), (30.0,)),
        identity=(0.0,),
        param_names=("alpha",),
        description="Elastic warp by a smooth random displacement field.",
        source="ImageNet-C",
        notes="displacement noise drawn on a coarser grid (same blurred-field variance); cv2.remap warp",
    )
)

register(
    Perturbation(
        name="pixelate",
        family="digital",
        fn=_pixelate,
        # Hendrycks & Dietterich 2019 (ImageNet-C) pixelate: scale c = [.6, .5, .4, .3, .25].
        table=((0.6,), (0.5,), (0.4,), (0.3,), (0.25,)),
        identity=(1.0,),
        param_names=("scale",),
        description="Low resolution: box-downscaled and upscaled to blocks.",
        source="ImageNet-C",
        notes="OpenCV INTER_AREA / INTER_NEAREST_EXACT instead of PIL BOX / NEAREST",
    )
)

register(
    Perturbation(
        name="jpeg_compression",
        family="digital",
        fn=_jpeg,
        # Hendrycks & Dietterich 2019 (ImageNet-C) jpeg_compression: quality = [25, 18, 15, 10, 7];
        # between 0 and 1 the quality falls from 100.
        table=((25.0,), (18.0,), (15.0,), (10.0,), (7.0,)),
        identity=(100.0,),
        param_names=("quality",),
        description="JPEG artefacts (blocking, ringing, chroma bleeding).",
        source="ImageNet-C",
        notes="OpenCV's libjpeg-turbo instead of PIL's (same quantisation tables and 4:2:0)",
    )
)

register(
    Perturbation(
        name="saturate",
        family="digital",
        fn=_saturate,
        # Hendrycks & Dietterich 2019 (ImageNet-C extra) saturate: S * a + b with (a, b) =
        # [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)]: desaturated at 1-2, oversaturated at 3-5.
        table=((0.3, 0.0), (0.1, 0.0), (2.0, 0.0), (5.0, 0.1), (20.0, 0.2)),
        identity=(1.0, 0.0),
        param_names=("gain", "offset"),
        stepped=(2,),  # gain 0.1 -> 2.0 would pass gain 1 (the clean frame) at 2.47: 2-2.5 washed out, 2.5-3 vivid
        description="Colour saturation changed (washed out, then oversaturated).",
        source="ImageNet-C (extra)",
        notes="OpenCV float32 HSV instead of skimage float64 (same formula)",
    )
)
