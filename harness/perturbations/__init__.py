"""The perturbation catalogue: named, seeded, pure transforms of a frame.

Every perturbation is a pure function of ``(image, severity, seed)``: the same
inputs give the same bytes on every machine, so any failure the agent reports
can be replayed with ``edgeprobe perturb``. Severity is continuous in [0, 5]:
0 is the identity, the integers are the ImageNet-C levels, and values in
between interpolate the parameter table linearly, so a breaking point can be
found by bisection.

One registry (:data:`REGISTRY`) drives the CLI listing, the docs and the tests.
"""

from __future__ import annotations

from . import basic  # noqa: F401  (registers the built-in perturbations)
from .base import (
    REGISTRY,
    Perturbation,
    PerturbationError,
    apply,
    derive_seed,
    get,
    names,
    register,
)

__all__ = [
    "REGISTRY",
    "Perturbation",
    "PerturbationError",
    "apply",
    "derive_seed",
    "get",
    "names",
    "register",
]
