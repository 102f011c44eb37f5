"""Frozen and replayed streams, caught while frames keep arriving at full rate.

An NVR or encoder that has lost its camera often keeps sending: the last
frame over and over (frozen), or a recorded stretch played in a loop
(replayed). Frame-rate counters see a healthy stream in both cases, so this
looks at the pictures.

Frozen: the thumbnail is identical to the previous one. Replayed: for a run
of consecutive frames, each frame equals the frame exactly L frames earlier
(L >= 2), while the picture itself keeps changing from frame to frame, which
a live scene does not do. Candidates come from a dictionary of 64-bit
difference hashes (dHash: signs of horizontal gradients on a 9x8 image), so
the search is O(1) per frame; a candidate lag is then followed by comparing
each frame with the one L back on a 16x12 fingerprint, which tolerates the
small differences a re-encoded replay has. The ring buffer bounds the
longest loop that can be recognised (``buffer_frames``).

Limits: a scene that repeats itself exactly and keeps changing (a rotating
sign that is byte-identical every turn) would count as a replay; a loop
longer than the buffer, or re-encoded so coarsely that the fingerprints
differ by more than ``match_tolerance`` grey levels, is missed.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FINGERPRINT = (16, 12)


def dhash(image: np.ndarray) -> int:
    """64-bit difference hash of a grey image (here: of the fingerprint)."""
    small = cv2.resize(image, (9, 8), interpolation=cv2.INTER_AREA)
    bits = np.packbits(small[:, 1:] > small[:, :-1])
    return int.from_bytes(bits.tobytes(), "big")


def fingerprint(thumb: np.ndarray) -> np.ndarray:
    """16x12 grey image of a thumbnail; a whole-number factor on a crop keeps OpenCV on its fast box path."""
    fw, fh = FINGERPRINT
    k = min(thumb.shape[1] // fw, thumb.shape[0] // fh)
    if k >= 1:
        thumb = thumb[: fh * k, : fw * k]
    return cv2.resize(thumb, FINGERPRINT, interpolation=cv2.INTER_AREA)


@dataclass
class ReplayState:
    """What the detector knows after the latest frame."""

    frozen: bool  # identical to the previous frame
    replaying: bool  # inside a confirmed replayed loop
    lag: int | None  # loop length in frames when replaying (or tracking a candidate)
    run: int  # changing frames that matched the frame `lag` back, in the current run


class ReplayDetector:
    """Per-frame frozen/replay state over a bounded ring of fingerprints."""

    def __init__(self, buffer_frames: int = 600, min_run: int = 20, match_tolerance: float = 0.25):
        if buffer_frames < 3:
            raise ValueError("buffer_frames must be at least 3")
        self.size = buffer_frames
        self.min_run = min_run
        self.tol = match_tolerance
        self.ring = np.zeros((buffer_frames, FINGERPRINT[0] * FINGERPRINT[1]), np.uint8)
        self.hashes: dict[int, int] = {}  # dHash -> newest frame number with it
        self.ring_hash: list[int | None] = [None] * buffer_frames
        self.n = 0  # frames seen
        self.lag: int | None = None
        self.run = 0
        self.replaying = False

    def _diff(self, t: int, u: int) -> float:
        a, b = self.ring[t % self.size], self.ring[u % self.size]
        return float(cv2.norm(a, b, cv2.NORM_L1)) / a.size

    def add(self, thumb: np.ndarray, frozen: bool) -> ReplayState:
        t = self.n
        fp = fingerprint(thumb)
        h = dhash(fp)
        slot = t % self.size
        old = self.ring_hash[slot]
        if old is not None and self.hashes.get(old) == t - self.size:
            del self.hashes[old]  # the frame this slot held leaves the buffer
        self.ring[slot] = fp.ravel()
        self.ring_hash[slot] = h
        self.n += 1
        previous = self.hashes.get(h)
        self.hashes[h] = t
        if t == 0:
            return ReplayState(frozen, False, None, 0)
        changed = not frozen and self._diff(t, t - 1) > self.tol
        if self.lag is not None:
            if self._diff(t, t - self.lag) <= self.tol:
                self.run += int(changed)
                self.replaying = self.replaying or self.run >= self.min_run
            else:
                self.lag, self.run, self.replaying = None, 0, False
        if (self.lag is None and changed and previous is not None and 2 <= t - previous < self.size
                and self._diff(t, previous) <= self.tol):
            self.lag, self.run = t - previous, 1
        return ReplayState(frozen, self.replaying, self.lag, self.run)
