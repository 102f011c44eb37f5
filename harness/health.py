"""Camera health from cheap statistics of each frame.

Computed on a small grey thumbnail (at most 160 px wide) so it costs well
under a millisecond per frame even on a Raspberry Pi: the point is to notice
a camera that went dark, blurry, noisy, covered or frozen, not to grade image
quality. Noise is the one figure the thumbnail cannot give (box averaging
removes it), so it is estimated on a small full-resolution patch.

The agent's monitor computes these on one frame in
``monitor.health.every_n_frames`` (default 10; a sampled frame with its
predecessor costs about 1 ms on 768x576, next to 3-4 ms of inference), so
window figures are means over the sampled frames, each statistic keeps its
per-frame definition and scale (bands and baselines are built from the same
function), and motion is still measured against the frame just before.

Rolling bands and alerts live in ``harness/alerts.py``, replayed-loop
detection in ``harness/replay.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from edgeprobe.harness.noise_frame import noise_frame

THUMB_WIDTH = 160
#: full-resolution centre patch for the noise estimate (rows, cols)
NOISE_PATCH = (96, 128)
#: occlusion grid (cols, rows) on the thumbnail, and the grey-level std under which a cell counts as uniform
OCCLUSION_GRID = (8, 6)
UNIFORM_STD = 3.0
#: Immerkaer's noise-estimation kernel: the difference of two Laplacians, which cancels image structure to
#: second order so what remains is mostly noise (J. Immerkaer, "Fast Noise Variance Estimation",
#: Computer Vision and Image Understanding 64(2), 1996).
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def thumbnail(image: np.ndarray) -> np.ndarray:
    """Grey uint8 thumbnail, at most THUMB_WIDTH wide: every statistic of a sampled frame works on this one."""
    h, w = image.shape[:2]
    if w > THUMB_WIDTH:
        # An integer factor on a frame cropped to a multiple of it takes OpenCV's fast INTER_AREA path
        # (box averaging): 2x faster on 768x576 than an arbitrary ratio, which cost 1.6 ms of an 8 ms frame.
        k = -(-w // THUMB_WIDTH)
        if h >= k:
            grey = _grey(image[: h - h % k, : w - w % k])  # only the pixels the boxes cover are converted
            return box_shrink(grey, k)
        return cv2.resize(_grey(image), (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))),
                          interpolation=cv2.INTER_AREA)
    return _grey(image)


#: (rows, cols, factor) -> whether box_shrink's sums give this OpenCV build's INTER_AREA result (checked once)
_SHRINK_EXACT: dict[tuple[int, int, int], bool] = {}


def box_shrink(grey: np.ndarray, k: int) -> np.ndarray:
    """``cv2.resize(grey, (w // k, h // k), interpolation=cv2.INTER_AREA)`` of a uint8 image whose sides are
    multiples of ``k``, pixel for pixel, in ~60% of its time on the thumbnail of a 768x576 frame.

    For a factor other than 2 OpenCV's area path sums each k x k box through a table of offsets, one load at a
    time, and rounds ``sum * (1.f / k**2)`` in float32 to the nearest integer. Here the boxes are summed by
    k strided row additions and k strided column additions in integers and rounded the same way. Whether that
    is this build's result is checked once per frame size on a noise frame (a build whose area resize rounds
    otherwise, such as a hardware HAL or the factor-2 kernel, keeps OpenCV's resize).
    """
    h, w = grey.shape[:2]
    key = (h, w, k)
    exact = _SHRINK_EXACT.get(key)
    if exact is None:
        noise = noise_frame((h, w), np.dtype(np.uint8))
        expected = cv2.resize(noise, (w // k, h // k), interpolation=cv2.INTER_AREA)
        exact = _SHRINK_EXACT[key] = grey.ndim == 2 and k > 2 and np.array_equal(_box_sums_shrink(noise, k), expected)
    if not exact or grey.dtype != np.uint8 or grey.ndim != 2:
        return cv2.resize(grey, (w // k, h // k), interpolation=cv2.INTER_AREA)
    return _box_sums_shrink(grey, k)


def _box_sums_shrink(grey: np.ndarray, k: int) -> np.ndarray:
    sums_dtype = np.uint16 if k * k * 255 <= np.iinfo(np.uint16).max else np.uint32
    rows: np.ndarray = grey[0::k].astype(sums_dtype)  # each output row's k input rows, summed
    for i in range(1, k):
        np.add(rows, grey[i::k], out=rows)
    sums: np.ndarray = rows[:, 0::k].copy()  # then each output pixel's k columns
    for j in range(1, k):
        np.add(sums, rows[:, j::k], out=sums)
    return np.rint(sums.astype(np.float32) * (np.float32(1.0) / np.float32(k * k))).astype(np.uint8)


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.shape[2] == 3 else image[..., 0]


def noise_patch(image: np.ndarray) -> np.ndarray:
    """Grey full-resolution centre patch (at most NOISE_PATCH) on which sensor noise is still visible."""
    h, w = image.shape[:2]
    ph, pw = min(h, NOISE_PATCH[0]), min(w, NOISE_PATCH[1])
    y, x = (h - ph) // 2, (w - pw) // 2
    patch = image[y:y + ph, x:x + pw]
    if patch.ndim == 3:
        patch = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY) if patch.shape[2] == 3 else patch[..., 0]
    return np.ascontiguousarray(patch)


def noise_sigma(patch: np.ndarray) -> float:
    """Immerkaer's estimate of the noise standard deviation (grey levels) on a grey patch."""
    if patch.shape[0] < 3 or patch.shape[1] < 3:
        return 0.0
    # int16 holds the kernel's range on uint8 (|r| <= 16 * 255) exactly, and the L1 norm is the sum of |r|
    # in one call: a third cheaper than float32 + np.abs + mean, same figure
    r = cv2.filter2D(patch, cv2.CV_16S if patch.dtype == np.uint8 else cv2.CV_32F, _IMMERKAER)[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * cv2.norm(r, cv2.NORM_L1) / r.size / 6.0)


def uniform_share(thumb: np.ndarray) -> float:
    """Share of the thumbnail's grid cells that are nearly uniform: a lens cap, tape, a wall in front."""
    gw, gh = OCCLUSION_GRID
    ch, cw = thumb.shape[0] // gh, thumb.shape[1] // gw
    if ch < 2 or cw < 2:
        return 0.0
    # Cell means of x and x^2 by area resizing a whole number of cells (OpenCV's fast box path): 4x cheaper
    # than a numpy reshape-and-std on the thumbnail.
    x = thumb[: ch * gh, : cw * gw].astype(np.float32)
    m = cv2.resize(x, (gw, gh), interpolation=cv2.INTER_AREA)
    m2 = cv2.resize(x * x, (gw, gh), interpolation=cv2.INTER_AREA)
    return float(np.count_nonzero(m2 - m * m < UNIFORM_STD**2)) / (gw * gh)


@dataclass(frozen=True)
class FrameStats:
    brightness: float  # mean grey level, 0..255
    contrast: float  # std of grey levels
    sharpness: float  # variance of the Laplacian: drops when the lens is out of focus
    clipped: float  # share of pixels at 0 or 255
    noise: float = 0.0  # estimated sensor-noise std (grey levels), full resolution
    occlusion: float = 0.0  # share of the frame covered by nearly uniform cells
    #: mean absolute grey difference to the previous frame's thumbnail (None for the first frame)
    motion: float | None = None


#: the per-frame figures health bands, drift and slices work on, in this order
METRICS = ("brightness", "contrast", "sharpness", "noise", "clipped", "occlusion")


def frame_stats(thumb: np.ndarray, patch: np.ndarray | None = None, motion: float | None = None) -> FrameStats:
    mean, std = cv2.meanStdDev(thumb)
    # the Laplacian of uint8 fits int16 exactly (|lap| <= 4 * 255); its variance as meanStdDev's std squared
    # (population variance, like ndarray.var): ~40% cheaper than float32 + numpy's var, same figure
    lap = cv2.Laplacian(thumb, cv2.CV_16S if thumb.dtype == np.uint8 else cv2.CV_32F)
    sharpness = float(cv2.meanStdDev(lap)[1][0, 0]) ** 2
    clipped = float(np.count_nonzero((thumb == 0) | (thumb == 255))) / thumb.size
    noise = noise_sigma(patch) if patch is not None else 0.0
    return FrameStats(float(mean[0, 0]), float(std[0, 0]), sharpness, clipped, noise, uniform_share(thumb),
                      motion)


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey difference of two equal-size thumbnails (0 = identical)."""
    return float(cv2.mean(cv2.absdiff(a, b))[0])


@dataclass
class HealthWindow:
    """Rolling camera-health figures for one reporting window.

    Statistics may be computed on a sample of the frames (the agent's monitor
    samples one frame in ``monitor.health.every_n_frames``): :meth:`tick`
    counts a frame that was not sampled (for fps), :meth:`add` a sampled one.
    Means are over the sampled frames; ``frozen_frames`` in the summary is the
    sampled frames' frozen share scaled to every frame of the window.
    """

    frames: int = 0  # every frame of the window
    sampled: int = 0  # frames whose statistics were computed
    frozen_frames: int = 0  # sampled frames identical to the frame before them
    _sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(METRICS, 0.0))
    _previous: np.ndarray | None = None
    first_ns: int | None = None
    last_ns: int | None = None
    #: the last frame's thumbnail (for the replay detector and the temporal gate)
    thumb: np.ndarray | None = None

    def tick(self, t_capture_ns: int) -> None:
        """Count a frame whose statistics are not computed (it still counts for fps)."""
        self.frames += 1
        if self.first_ns is None:
            self.first_ns = t_capture_ns
        self.last_ns = t_capture_ns

    def add(self, image: np.ndarray, t_capture_ns: int, previous_thumb: np.ndarray | None = None) -> FrameStats:
        """Statistics of one frame, all from its one thumbnail (plus the noise patch, which must be full size).

        Motion is against ``previous_thumb`` (:func:`thumbnail` of the frame just before) when given: a
        sampler makes it when that frame goes by, so no frame is kept past its turn (sources may decode the
        next frame into the same buffer). Without it the last frame passed to :meth:`add` is the predecessor,
        which is the frame just before when every frame is added. Nothing here keeps ``image``.
        """
        thumb = thumbnail(image)
        before = previous_thumb if previous_thumb is not None else self._previous
        motion = None
        # A frozen camera repeats the same frame while fps counters stay healthy.
        if before is not None and before.shape == thumb.shape:
            motion = frame_difference(thumb, before)
            if motion == 0.0:
                self.frozen_frames += 1
        self._previous = self.thumb = thumb
        stats = frame_stats(thumb, noise_patch(image), motion)
        sums = self._sums
        sums["brightness"] += stats.brightness
        sums["contrast"] += stats.contrast
        sums["sharpness"] += stats.sharpness
        sums["noise"] += stats.noise
        sums["clipped"] += stats.clipped
        sums["occlusion"] += stats.occlusion
        self.sampled += 1
        self.tick(t_capture_ns)
        return stats

    def summary(self) -> dict[str, float | int]:
        n = max(1, self.sampled)
        span_s = ((self.last_ns or 0) - (self.first_ns or 0)) / 1e9
        fps = (self.frames - 1) / span_s if self.frames > 1 and span_s > 0 else 0.0
        out: dict[str, float | int] = {k: v / n for k, v in self._sums.items()}
        frozen = self.frozen_frames if self.sampled == self.frames else round(self.frozen_frames * self.frames / n)
        out.update(frames=self.frames, frozen_frames=frozen, fps=fps)
        return out

    def clear(self) -> None:
        """Start a new window but keep the last frame, so freezes across windows count."""
        self.frames = self.sampled = self.frozen_frames = 0
        self._sums = dict.fromkeys(self._sums, 0.0)
        self.first_ns = self.last_ns = None


def health_flags(summary: dict[str, float | int]) -> list[str]:
    """Coarse flags a fleet operator can filter on (absolute thresholds).

    Issue-level baseline bands replace these once a camera has a baseline; the
    absolute ones still catch the obvious cases on day one.
    """
    flags: list[str] = []
    frames = int(summary.get("frames", 0))
    if frames and summary.get("frozen_frames", 0) >= max(2, frames // 2):
        flags.append("frozen")
    if summary.get("brightness", 128) < 25:
        flags.append("dark")
    if summary.get("brightness", 128) > 230:
        flags.append("overexposed")
    if summary.get("sharpness", 1e9) < 15:
        flags.append("blurry")
    if summary.get("contrast", 100) < 8:
        flags.append("low_contrast")
    if summary.get("occlusion", 0.0) >= 0.5:
        flags.append("occluded")
    return flags
