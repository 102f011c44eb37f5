"""Camera and transport faults seen on deployed cameras.

None of these is in ImageNet-C, so the severity tables are edgeprobe's own:
severity 1 is a fault a viewer might not notice, 5 a badly broken camera or
link. Each is a pure function of (frame, severity, seed) like the rest.
"""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np

from edgeprobe.harness.perturbations._fast import down_up, gaussian, mask_where, rand_u8, rand_u16
from edgeprobe.harness.perturbations.base import Perturbation, register


def _pixel_dropout(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Individual pixels lost in transport read as black (all channels at once)."""
    (fraction,) = params
    u = rand_u16(rng, image.shape[:2])
    keep = mask_where(u, round(fraction * 65536), below=False)
    if image.ndim == 3:
        keep = cv2.merge([keep, keep, keep])
    return np.asarray(cv2.bitwise_and(image, keep)).reshape(image.shape)


MB = 16  # H.264 macroblock size


def _block_loss(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Lost H.264 slices: from a random macroblock to the end of its row, the picture is gone.

    A decoder conceals a lost slice either with grey (no reference) or by
    repeating what it has (here the macroblock row above, smeared down: the
    stale-content look). Which one is drawn per slice.
    """
    (fraction,) = params
    h, w = image.shape[:2]
    rows, cols = math.ceil(h / MB), math.ceil(w / MB)
    u = rng.random(rows)
    start = rng.integers(0, cols, rows)
    grey = rng.random(rows) < 0.5
    out = image.copy()
    lost = np.flatnonzero(u < fraction)
    if fraction > 0 and lost.size == 0:
        lost = np.array([int(np.argmin(u))])  # at least one slice: a severity above 0 is never the clean frame
    for r in lost:
        y0, y1 = r * MB, min(h, (r + 1) * MB)
        x0 = int(start[r]) * MB
        if grey[r] or y0 == 0:
            out[y0:y1, x0:] = 128
        else:
            out[y0:y1, x0:] = image[y0 - 1:y0, x0:]  # the clean row above: lost sets only grow with severity
    return out


def _rolling_shutter(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Rolling-shutter skew: rows read out later are shifted by a camera pan (direction from the seed)."""
    (skew,) = params
    h, w = image.shape[:2]
    sign = 1.0 if rng.random() < 0.5 else -1.0
    shear = sign * skew * w / max(h - 1, 1)
    m = np.array([[1.0, shear, -shear * (h - 1) / 2], [0.0, 1.0, 0.0]], np.float32)
    return np.asarray(cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)).reshape(image.shape)


def _occlusion(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """A dark, out-of-focus object (a finger, a cable, a leaf) covering part of the lens from one edge.

    The disk's area grows with severity for a fixed seed (same edge, same
    position along it), so the distance from the clean frame is monotone.
    """
    (area,) = params
    h, w = image.shape[:2]
    edge = int(rng.integers(4))
    along = float(rng.uniform(0.2, 0.8))
    radius = math.sqrt(area * h * w / math.pi) * 1.25
    cx, cy = [(along * w, 0.0), (along * w, h - 1.0), (0.0, along * h), (w - 1.0, along * h)][edge]
    yy, xx = np.ogrid[:h, :w]
    d = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2).astype(np.float32)
    soft = max(2.0, 0.15 * radius)
    alpha = np.clip((radius - d) / soft + 0.5, 0, 1).astype(np.float32)
    dark = np.full(image.shape, 18, np.uint8)
    return np.asarray(cv2.blendLinear(image, dark, 1 - alpha, alpha)).reshape(image.shape)


def _smudge(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Dirt or grease on the lens: soft hazy blotches where the frame is blurred and veiled.

    Blotches and the blur are smooth, so both are made on a proxy at most
    256 px long and resized: a 4000x3000 frame costs what a small one does.
    """
    count, strength = params
    h, w = image.shape[:2]
    n = max(1, round(count))
    scale = max(h, w)
    k = max(1.0, scale / 256)
    sh, sw = max(1, round(h / k)), max(1, round(w / k))
    mask = np.zeros((sh, sw), np.float32)
    for _ in range(n):
        cx, cy = float(rng.uniform(0, w)) / k, float(rng.uniform(0, h)) / k
        ax, ay = float(rng.uniform(0.04, 0.14)) * scale / k, float(rng.uniform(0.03, 0.1)) * scale / k
        cv2.ellipse(mask, ((cx, cy), (2 * ax, 2 * ay), float(rng.uniform(0, 180))), 1.0, -1, cv2.LINE_AA)
    mask = gaussian(mask, max(1.0, 0.03 * scale / k)) * np.float32(min(strength, 1.0))
    mask = np.asarray(cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)).reshape(h, w)
    small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA)
    small = gaussian(np.asarray(small).reshape((sh, sw, *image.shape[2:])), max(1.0, 0.012 * scale / k))
    blurred = np.asarray(cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)).reshape(image.shape)
    veil = np.asarray(cv2.addWeighted(blurred, 0.7, np.full_like(image, 170), 0.3, 0.0))
    return np.asarray(cv2.blendLinear(image, veil, 1 - mask, mask)).reshape(image.shape)


@lru_cache(maxsize=64)
def _exposure_lut(ev: float) -> np.ndarray:
    """Exposure change by ``ev`` stops applied in linear light (sRGB-ish gamma 2.2), clipped like a sensor."""
    x = np.arange(256, dtype=np.float64) / 255.0
    lin = x**2.2 * (2.0**ev)
    return np.clip(np.clip(lin, 0, 1) ** (1 / 2.2) * 255 + 0.5, 0, 255).astype(np.uint8)


def _exposure(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    (ev,) = params
    return np.asarray(cv2.LUT(image, _exposure_lut(round(ev, 4)))).reshape(image.shape)


def _underexposure(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    (ev,) = params
    return _exposure(image, (-ev,), rng)


def _white_balance(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Wrong white balance: blue and red gains pushed apart (warm or cool, from the seed)."""
    (shift,) = params
    if image.ndim == 2:
        return image.copy()
    warm = rng.random() < 0.5
    gains = (1 - shift, 1.0, 1 + shift) if warm else (1 + shift, 1.0, 1 - shift)
    ramp = np.arange(256, dtype=np.float32)
    luts = [np.clip(ramp * np.float32(g) + 0.5, 0, 255).astype(np.uint8) for g in gains]
    return np.asarray(cv2.LUT(image, cv2.merge(luts).reshape(256, 1, 3)))


def _channel_swap(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """BGR read as RGB, the classic deployment bug; between 0 and 1 the two are blended."""
    (amount,) = params
    if image.ndim == 2:
        return image.copy()
    swapped = np.ascontiguousarray(image[:, :, ::-1])
    a = min(max(amount, 0.0), 1.0)
    if a >= 1.0:
        return swapped
    return np.asarray(cv2.addWeighted(image, 1 - a, swapped, a, 0.0))


def _down_up(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Downscaled then upscaled bilinearly: a low-resolution stream stretched to the model's input."""
    (scale,) = params
    h, w = image.shape[:2]
    return down_up(image, round(w * scale), round(h * scale), cv2.INTER_LINEAR)


def _interlace(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Interlaced video shown without deinterlacing: odd lines come from a field shifted by motion."""
    (shift,) = params
    h, w = image.shape[:2]
    sign = 1.0 if rng.random() < 0.5 else -1.0
    m = np.array([[1.0, 0.0, sign * shift], [0.0, 1.0, 0.0]], np.float32)
    moved = np.asarray(cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    out = image.copy()
    out[1::2] = moved.reshape(image.shape)[1::2]
    return out


@lru_cache(maxsize=16)
def _vignette_gain(h: int, w: int, strength: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    r2 = ((xx - (w - 1) / 2) / max(w / 2, 1)) ** 2 + ((yy - (h - 1) / 2) / max(h / 2, 1)) ** 2
    return np.clip(1 - strength * r2 / 2, 0, 1).astype(np.float32)


def _vignette(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Lens vignetting: corners darker than the centre (cos^4-like falloff)."""
    (strength,) = params
    h, w = image.shape[:2]
    gain = _vignette_gain(h, w, round(strength, 4))
    if image.ndim == 3:
        gain = cv2.merge([gain, gain, gain])
    return np.asarray(cv2.multiply(image, gain, dtype=cv2.CV_8U)).reshape(image.shape)


def _hot_pixels(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Stuck (hot) sensor pixels: a fixed sparse set of pixels reads white."""
    (fraction,) = params
    u = rand_u8(rng, (2, *image.shape[:2]))
    v = u[0].astype(np.uint16) * 256 + u[1]
    hot = mask_where(v, round(fraction * 65536))
    if fraction > 0 and not hot.any():
        # at least one hot pixel (the lowest draw, so the set still only grows with severity)
        hot.flat[int(np.argmin(v))] = 255
    if image.ndim == 3:
        hot = cv2.merge([hot, hot, hot])
    return np.asarray(cv2.bitwise_or(image, hot)).reshape(image.shape)


_FAULTS: list[tuple[str, object, tuple[tuple[float, ...], ...], tuple[float, ...], tuple[str, ...], str, bool]] = [
    # name, fn, rows for severity 1..5, identity row, parameter names, description, monotone
    ("pixel_dropout", _pixel_dropout, ((0.01,), (0.02,), (0.05,), (0.10,), (0.20,)), (0.0,), ("fraction",),
     "Pixels lost in transport ('package loss'), read as black.", True),
    ("block_loss", _block_loss, ((0.03,), (0.06,), (0.12,), (0.2,), (0.35,)), (0.0,), ("slice_fraction",),
     "Lost H.264 slices: 16x16 macroblock runs grey or stale (repeated from above).", True),
    ("rolling_shutter", _rolling_shutter, ((0.02,), (0.04,), (0.07,), (0.11,), (0.16,)), (0.0,), ("skew",),
     "Rolling-shutter skew of a panning camera (skew as a fraction of the width over the frame).", False),
    ("lens_occlusion", _occlusion, ((0.02,), (0.05,), (0.1,), (0.18,), (0.3,)), (0.0,), ("area",),
     "A dark out-of-focus object over part of the lens, from one edge.", True),
    ("smudge", _smudge, ((2.0, 0.35), (3.0, 0.5), (4.0, 0.65), (5.0, 0.8), (7.0, 0.95)), (1.0, 0.0),
     ("blotches", "opacity"), "Dirt or grease on the lens: hazy, blurred blotches.", False),
    ("overexposure", _exposure, ((0.5,), (1.0,), (1.5,), (2.0,), (2.75,)), (0.0,), ("ev",),
     "Overexposed: +EV in linear light, highlights clipped.", True),
    ("underexposure", _underexposure, ((0.75,), (1.5,), (2.25,), (3.0,), (4.0,)), (0.0,), ("ev",),
     "Underexposed: -EV in linear light, shadows crushed.", True),
    ("white_balance", _white_balance, ((0.05,), (0.1,), (0.18,), (0.27,), (0.4,)), (0.0,), ("gain_shift",),
     "Wrong white balance: red and blue gains apart (warm or cool from the seed).", True),
    ("channel_swap", _channel_swap, ((1.0,), (1.0,), (1.0,), (1.0,), (1.0,)), (0.0,), ("amount",),
     "BGR fed as RGB (full swap from severity 1; blended below).", True),
    ("downscale_upscale", _down_up, ((0.5,), (0.35,), (0.25,), (0.18,), (0.12,)), (1.0,), ("scale",),
     "Low-resolution stream upscaled bilinearly to the model's input.", False),
    ("interlace", _interlace, ((1.0,), (2.0,), (4.0,), (6.0,), (10.0,)), (0.0,), ("field_shift_px",),
     "Interlaced video without deinterlacing: combing on motion.", False),
    ("vignetting", _vignette, ((0.2,), (0.35,), (0.5,), (0.65,), (0.8,)), (0.0,), ("strength",),
     "Lens vignetting: darker corners.", True),
    ("hot_pixels", _hot_pixels, ((0.0005,), (0.001,), (0.002,), (0.004,), (0.008,)), (0.0,), ("fraction",),
     "Stuck sensor pixels reading white.", True),
]

for _name, _fn, _table, _identity, _pnames, _desc, _mono in _FAULTS:
    register(
        Perturbation(
            name=_name,
            family="camera",
            fn=_fn,  # type: ignore[arg-type]
            table=_table,
            identity=_identity,
            param_names=_pnames,
            description=_desc,
            source="edgeprobe",
            monotone=_mono,
        )
    )
