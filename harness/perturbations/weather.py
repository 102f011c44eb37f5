"""ImageNet-C weather: snow, frost, fog, and the extra spatter.

Parameter tables: Hendrycks & Dietterich, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR 2019 (the
published ``make_imagenet_c`` parameters, as packaged in imagecorruptions 1.1.2).

Frames are BGR (OpenCV's order), so the reference's RGB colours (pale
turquoise water, brown mud, the grey weights of snow) are applied in BGR.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from edgeprobe.harness.perturbations._fast import fractal_noise, gaussian, gray_of, like, line_blur, unit_normal
from edgeprobe.harness.perturbations.base import Perturbation, register


def _snow(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Falling snow: thresholded, zoomed noise streaked by motion blur, over a whitened frame.

    The reference draws full-frame noise and zooms its centre by ``zoom``;
    drawing the noise at 1/zoom size and resizing it is the same picture
    with a twentieth of the random numbers. The flakes are streaked with the
    shared shear-based line blur; the frame is whitened in uint8.
    """
    loc, scale, zoom, threshold, radius, sigma, keep = params
    h, w = image.shape[:2]
    zoom = max(zoom, 1.0)
    sh, sw = max(1, math.ceil(h / zoom)), max(1, math.ceil(w / zoom))
    flakes = rng.standard_normal((sh, sw), dtype=np.float32) * np.float32(scale) + np.float32(loc)
    layer = np.asarray(cv2.resize(flakes, (w, h), interpolation=cv2.INTER_LINEAR)).reshape(h, w)
    layer[layer < threshold] = 0
    np.clip(layer, 0, 1, out=layer)
    angle = float(rng.uniform(-135, -45))
    layer = line_blur(layer, 2 * radius + 1, sigma, angle)
    snow8 = np.asarray(cv2.convertScaleAbs(layer, alpha=255.0))
    snow8 = np.asarray(cv2.add(snow8, np.ascontiguousarray(snow8[::-1, ::-1])))
    # Whitening: keep * x + (1 - keep) * max(x, 1.5 * grey + 0.5), not clipped before the blend (as the reference).
    bright = gray_of(image).astype(np.float32)
    bright *= np.float32(1.5)
    bright += np.float32(127.5)
    whiter = np.asarray(cv2.max(image.astype(np.float32), like(bright, image)))
    base = np.asarray(cv2.addWeighted(image.astype(np.float32), keep, whiter, 1.0 - keep, 0.0, dtype=cv2.CV_8U))
    base = base.reshape(image.shape)
    return np.asarray(cv2.add(base, like(snow8, image))).reshape(image.shape)


#: Summary statistics (BGR mean, std) of the five frost photographs ImageNet-C draws from; the
#: procedural textures below are normalised to them so that frost darkens and tints frames alike.
_FROST_STYLES = (
    ((166.0, 149.0, 78.0), (15.0, 17.0, 27.0)),
    ((214.0, 205.0, 201.0), (22.0, 22.0, 21.0)),
    ((214.0, 205.0, 201.0), (22.0, 22.0, 21.0)),
    ((165.0, 153.0, 138.0), (30.0, 28.0, 28.0)),
    ((135.0, 123.0, 112.0), (42.0, 43.0, 44.0)),
)
_FROST_SIZE = 600


@lru_cache(maxsize=len(_FROST_STYLES))
def frost_texture(style: int) -> np.ndarray:
    """A seeded procedural frost texture (600x600 BGR): ice dendrites over a cloudy fractal.

    Dendrites grow as jittered polylines that branch at +-60 degrees (the
    hexagonal habit of ice); the texture is normalised to the style's
    colour statistics. Generated once per style, the same on every machine.
    """
    rng = np.random.default_rng(0xF2057 + style)
    size = _FROST_SIZE
    lines = np.zeros((size, size), np.float32)
    stack: list[tuple[float, float, float, float, int]] = []
    for _ in range(260):
        stack.append((float(rng.uniform(0, size)), float(rng.uniform(0, size)),
                      float(rng.uniform(0, 2 * math.pi)), float(rng.uniform(30, 110)), 0))
    while stack:
        x, y, a, length, depth = stack.pop()
        travelled = 0.0
        bright = float(rng.uniform(0.4, 1.0)) / (1 + depth)
        while travelled < length:
            step = float(rng.uniform(3, 7))
            a += float(rng.normal(0, 0.12))
            nx, ny = x + step * math.cos(a), y + step * math.sin(a)
            cv2.line(lines, (round(x * 4), round(y * 4)), (round(nx * 4), round(ny * 4)), bright, 1, cv2.LINE_AA,
                     shift=2)
            if depth < 2 and rng.random() < 0.22:
                side = a + (math.pi / 3) * (1 if rng.random() < 0.5 else -1)
                stack.append((nx, ny, side, (length - travelled) * 0.45, depth + 1))
            x, y, travelled = nx, ny, travelled + step
    cloud = fractal_noise(rng, size, size, 1.6)
    grain = rng.random((size, size), dtype=np.float32)
    structure = 0.9 * np.asarray(cv2.GaussianBlur(lines, (0, 0), 0.7)) + 0.8 * cloud + 0.15 * grain
    structure = (structure - structure.mean()) / max(float(structure.std()), 1e-6)
    mean, std = _FROST_STYLES[style]
    planes = [np.clip(structure * s + m, 0, 255) for m, s in zip(mean, std, strict=True)]
    return np.ascontiguousarray(np.stack(planes, axis=2).round().astype(np.uint8))


@lru_cache(maxsize=16)
def _frost_scaled(style: int, h: int, w: int) -> np.ndarray:
    """The texture scaled like the reference: to cover the frame, times 1.1 (cached per frame size)."""
    tex = frost_texture(style)
    th, tw = tex.shape[:2]
    factor = max(1.0, h / th, w / tw) * 1.1
    size = (math.ceil(tw * factor), math.ceil(th * factor))
    return np.asarray(cv2.resize(tex, size, interpolation=cv2.INTER_CUBIC))


def _frost(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Frost on the lens: the frame dimmed and blended with a random crop of a frost texture."""
    keep, frost_weight = params
    h, w = image.shape[:2]
    style = int(rng.integers(len(_FROST_STYLES)))
    tex = _frost_scaled(style, h, w)
    top = int(rng.integers(0, tex.shape[0] - h))
    left = int(rng.integers(0, tex.shape[1] - w))
    crop = tex[top:top + h, left:left + w]
    if image.ndim == 2:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.addWeighted(image, keep, crop, frost_weight, 0.0)).reshape(image.shape)


def _fog(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Fog: a fractal haze added, then the range squeezed back (ImageNet-C's plasma fog)."""
    strength, decay = params
    h, w = image.shape[:2]
    haze = fractal_noise(rng, h, w, max(decay, 1.01))
    peak = float(image.max()) / 255.0
    if peak <= 0:
        peak = 1.0 / 255.0
    gain = peak / (peak + strength)
    haze8 = np.asarray(cv2.convertScaleAbs(haze, alpha=255.0))
    if image.ndim == 3:
        # Repeat each haze value over the B, G, R bytes of its pixel: a nearest resize of the plane to
        # three times the width lays it out exactly like the interleaved frame, cheaper than a merge.
        haze8 = cv2.resize(haze8, (w * 3, h), interpolation=cv2.INTER_NEAREST)
    flat = image.reshape(h, -1)
    return np.asarray(cv2.addWeighted(flat, gain, haze8, gain * strength, 0.0)).reshape(image.shape)


_KER = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)
#: Pale turquoise water and brown mud, ImageNet-C's RGB colours written in BGR.
_WATER_BGR = np.array([238.0, 238.0, 175.0], np.float32)
_MUD_BGR = np.array([20.0, 42.0, 63.0], np.float32)
_GRAY_W = np.array([0.1140, 0.5870, 0.2989], np.float32)  # BGR weights of the reference's rgb2gray


def _spatter(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Water drops (severity up to 3) or mud splashes (4 and 5) on the lens, as in ImageNet-C."""
    loc, scale, sigma, threshold, intensity, mode = params
    h, w = image.shape[:2]
    liquid = unit_normal(rng, (h, w))
    liquid *= np.float32(scale)
    liquid += np.float32(loc)
    liquid = gaussian(liquid, sigma)
    if mode < 0.5:
        liquid[liquid < threshold] = 0
        lq8 = np.clip(liquid * 255, 0, 255).astype(np.uint8)
        dist = 255 - np.asarray(cv2.Canny(lq8, 50, 150))
        dist = cv2.distanceTransform(dist, cv2.DIST_L2, 5)
        _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
        dist = np.asarray(cv2.blur(dist, (3, 3))).astype(np.uint8)
        dist = cv2.equalizeHist(dist)
        dist = cv2.filter2D(dist, cv2.CV_8U, _KER)
        dist = np.asarray(cv2.blur(dist, (3, 3))).astype(np.float32)
        m = liquid * dist
        peak = float(m.max())
        if peak <= 0:
            return image.copy()
        m *= np.float32(intensity / peak)
        if image.ndim == 2:
            return np.asarray(cv2.add(image, m * np.float32(_WATER_BGR @ _GRAY_W), dtype=cv2.CV_8U))
        add = cv2.merge([m * _WATER_BGR[0], m * _WATER_BGR[1], m * _WATER_BGR[2]])
        return np.asarray(cv2.add(image, add, dtype=cv2.CV_8U))
    m = (liquid > threshold).astype(np.float32)
    m = gaussian(m, intensity)
    m[m < 0.8] = 0
    if image.ndim == 2:
        mud = np.full((h, w), float(_MUD_BGR @ _GRAY_W), np.float32)
        return np.clip(image * (1 - m) + mud * m + 0.5, 0, 255).astype(np.uint8)
    mud8 = np.empty_like(image)
    mud8[:] = _MUD_BGR.round().astype(np.uint8)
    return np.asarray(cv2.blendLinear(image, mud8, 1 - m, m))


register(
    Perturbation(
        name="snow",
        family="weather",
        fn=_snow,
        # Hendrycks & Dietterich 2019 (ImageNet-C) snow: (loc, scale, zoom, threshold, radius, sigma, keep) =
        # [(0.1, 0.3, 3, 0.5, 10, 4, 0.8), (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        #  (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)].
        table=((0.1, 0.3, 3.0, 0.5, 10.0, 4.0, 0.8), (0.2, 0.3, 2.0, 0.5, 12.0, 4.0, 0.7),
               (0.55, 0.3, 4.0, 0.9, 12.0, 8.0, 0.7), (0.55, 0.3, 4.5, 0.85, 12.0, 8.0, 0.65),
               (0.55, 0.3, 2.5, 0.85, 12.0, 12.0, 0.55)),
        identity=(0.0, 0.0, 3.0, 1.0, 10.0, 4.0, 1.0),
        param_names=("loc", "scale", "zoom", "threshold", "radius", "sigma", "keep"),
        description="Falling snow streaks over a whitened frame.",
        source="ImageNet-C",
        notes="flake noise drawn at 1/zoom size; streaks by the shear line blur; float32, not float64",
    )
)

register(
    Perturbation(
        name="frost",
        family="weather",
        fn=_frost,
        # Hendrycks & Dietterich 2019 (ImageNet-C) frost: (frame weight, frost weight) =
        # [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)].
        table=((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)),
        identity=(1.0, 0.0),
        param_names=("keep", "frost"),
        description="Frost crystals on the lens or window.",
        source="ImageNet-C",
        notes="five seeded procedural frost textures (ice dendrites over fractal cloud) normalised to the "
              "colour statistics of the reference's photographs, which are not shipped",
    )
)

register(
    Perturbation(
        name="fog",
        family="weather",
        fn=_fog,
        # Hendrycks & Dietterich 2019 (ImageNet-C) fog: (strength, wibble decay) =
        # [(1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)].
        table=((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)),
        identity=(0.0, 2.0),
        param_names=("strength", "decay"),
        description="Fog: fractal haze with the contrast squeezed.",
        source="ImageNet-C",
        notes="the diamond-square plasma is an octave sum of upsampled random grids (same spectrum), "
              "made at 256x256 and resized",
    )
)

register(
    Perturbation(
        name="spatter",
        family="weather",
        fn=_spatter,
        # Hendrycks & Dietterich 2019 (ImageNet-C extra) spatter: (loc, scale, sigma, threshold, intensity, mud) =
        # [(0.65, 0.3, 4, 0.69, 0.6, 0), (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0),
        #  (0.65, 0.3, 1, 0.65, 1.5, 1), (0.67, 0.4, 1, 0.65, 1.5, 1)]; the last column switches water to mud
        # (at fractional severity: mud from 3.5 up), so the distance is not monotone by definition.
        table=((0.65, 0.3, 4.0, 0.69, 0.6, 0.0), (0.65, 0.3, 3.0, 0.68, 0.6, 0.0), (0.65, 0.3, 2.0, 0.68, 0.5, 0.0),
               (0.65, 0.3, 1.0, 0.65, 1.5, 1.0), (0.67, 0.4, 1.0, 0.65, 1.5, 1.0)),
        identity=(0.65, 0.3, 4.0, 0.69, 0.0, 0.0),
        param_names=("loc", "scale", "sigma", "threshold", "intensity", "mud"),
        stepped=(3,),  # half water, half mud rows overshot both neighbours at 3.5: each half takes its nearer row
        description="Water drops or mud splashes on the lens.",
        source="ImageNet-C (extra)",
        notes="float32 instead of float64; the liquid noise uses the fast normal deviates",
    )
)
