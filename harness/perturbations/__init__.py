"""The perturbation catalogue: named, seeded, pure transforms of a frame.

Every perturbation is a pure function of ``(image, severity, seed)``: the same
inputs give the same bytes on every machine (with the same numpy and OpenCV),
so any failure the agent reports can be replayed with ``edgeprobe perturb``.
Severity is continuous in [0, 5]: 0 is the identity, the integers are the
ImageNet-C levels, and values in between interpolate the parameter table
linearly, so a breaking point can be found by bisection.

One registry (:data:`REGISTRY`) drives the CLI listing, the docs and the tests.
Modules by family: :mod:`.noise`, :mod:`.blur`, :mod:`.weather`,
:mod:`.digital` (the 19 ImageNet-C corruptions), :mod:`.camera` (camera and
transport faults), :mod:`.temporal` (frozen, dropped, duplicated frames: they
need neighbouring frames) and :mod:`.geometric` (metamorphic transforms with
the functions that map predictions through them).
"""

from __future__ import annotations

from edgeprobe.harness.perturbations import blur, camera, digital, geometric, noise, temporal, weather  # noqa: F401  (register the catalogue)
from edgeprobe.harness.perturbations.base import (
    REGISTRY,
    Perturbation,
    PerturbationError,
    apply,
    derive_seed,
    get,
    names,
    register,
)
from edgeprobe.harness.perturbations.geometric import GEOMETRIC, Geometric, geometric_at
from edgeprobe.harness.perturbations.temporal import TemporalStream, apply_sequence

#: The 15 ImageNet-C corruptions and its 4 extra ones, in the reference's order.
IMAGENET_C = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)

__all__ = [
    "GEOMETRIC",
    "IMAGENET_C",
    "REGISTRY",
    "Geometric",
    "Perturbation",
    "PerturbationError",
    "TemporalStream",
    "apply",
    "apply_sequence",
    "derive_seed",
    "geometric_at",
    "get",
    "names",
    "register",
]
