"""The scale on which health figures are compared, shared by bands (alerts.py) and input drift (drift.py).

Sharpness, contrast and noise are multiplicative (a lens twice as blurry
halves them whatever they started at), so they are compared as log1p; the
others in their own units. ``MIN_PAD`` is the smallest difference on that
scale that counts as a real change: the narrowest half-width a band may have,
and the least median shift for which input drift is called. A camera whose
clipped share never moved from 0 must not alert on the first clipped pixel,
and a one-grey-level change must not be called drift just because frames of
one camera are so alike that PSI and KS see it.
"""

from __future__ import annotations

LOG_METRICS = frozenset({"contrast", "sharpness", "noise"})
#: brightness in grey levels, log metrics in log1p units (0.25 ~ 28%, 0.35 ~ 42%), fractions as fractions
MIN_PAD = {"brightness": 8.0, "contrast": 0.25, "sharpness": 0.35, "noise": 0.35, "clipped": 0.05, "occlusion": 0.1}
