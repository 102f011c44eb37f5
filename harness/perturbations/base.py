"""Registry and contract shared by every perturbation."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeprobe.harness.errors import EdgeprobeError
from edgeprobe.harness.registry import Registry

MAX_SEVERITY = 5.0

#: ``fn(image, params, rng) -> image``; ``params`` is the interpolated row of
#: the severity table. ``image`` is uint8 HxW or HxWxC and must not be mutated.
#: (The generator's type is named as a string: ``np.random`` would load numpy's random module, 6.5 MB of
#: resident memory, mostly its compiled modules' pages, in an agent process where no perturbation runs.)
PerturbFn = Callable[[np.ndarray, tuple[float, ...], "np.random.Generator"], np.ndarray]


class PerturbationError(EdgeprobeError):
    """Unknown perturbation, severity out of range or an unusable image."""


@dataclass(frozen=True)
class Perturbation:
    """One named transform and its severity table.

    ``table`` holds one parameter row per ImageNet-C severity 1..5 and
    ``identity`` the row that leaves the image unchanged (severity 0); rows
    for fractional severities are interpolated linearly between neighbours.
    """

    name: str
    family: str
    fn: PerturbFn
    table: tuple[tuple[float, ...], ...]
    identity: tuple[float, ...]
    description: str = ""
    temporal: bool = False
    source: str = ""
    param_names: tuple[str, ...] = field(default_factory=tuple)
    #: Where this implementation deliberately differs from the reference (speed, determinism).
    notes: str = ""
    #: For a fixed seed, the distance from the clean frame never decreases as severity grows
    #: (true by construction, so a property test checks it); False where the definition does not
    #: promise it (a mode switch in the table, JPEG's quantiser, a random angle...).
    monotone: bool = False
    #: Severities in (0, onset) take the onset's row: below it the interpolated row is too weak to change any
    #: uint8 pixel (a blur of sigma 0.1), and a probe at a severity above 0 must never look at the clean frame.
    onset: float = 0.0
    #: Severity intervals (k, k + 1) whose two rows lie on opposite sides of the identity (saturate's gain goes
    #: 0.1 -> 2.0): interpolating would pass through the clean frame, so each half takes its nearer row.
    stepped: tuple[int, ...] = ()
    #: Temporal perturbations act on a sequence (see :mod:`.temporal`): ``step(stream, frame)``
    #: returns the frames the consumer sees for this input frame (none when dropped, two when duplicated).
    step: Callable[[Any, np.ndarray], list[np.ndarray]] | None = None

    def params_at(self, severity: float) -> tuple[float, ...]:
        """Parameter row for a continuous severity in [0, 5]."""
        check_severity(severity)
        if 0 < severity < self.onset:
            severity = self.onset
        rows = (self.identity, *self.table)
        lo = int(np.floor(severity))
        if lo >= len(rows) - 1:
            return tuple(rows[-1])
        frac = severity - lo
        if lo in self.stepped and frac > 0:
            return tuple(rows[lo] if frac < 0.5 else rows[lo + 1])
        a, b = rows[lo], rows[lo + 1]
        return tuple(float(x + (y - x) * frac) for x, y in zip(a, b, strict=True))

    def apply(self, image: np.ndarray, severity: float, seed: int) -> np.ndarray:
        """Perturb ``image`` at ``severity`` with randomness drawn from ``seed``.

        ``image`` is a uint8 frame as OpenCV and every edgeprobe source deliver it: HxW greyscale or HxWx3
        **BGR** (the colour perturbations, e.g. saturate, white balance, spatter's turquoise water and brown
        mud, read channel 0 as blue); pass RGB frames through ``cv2.cvtColor`` first.
        """
        check_image(image)
        check_severity(severity)
        if self.temporal:
            raise PerturbationError(
                f"perturbation {self.name!r} is temporal and needs neighbouring frames; "
                "use perturbations.apply_sequence(name, frames, severity, seed) or TemporalStream"
            )
        if severity == 0:
            return image.copy()
        rng = np.random.default_rng(seed)
        # Functions see HxW or HxWx3 only: an HxWx1 frame is processed as HxW and given its axis back.
        work = image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image
        out = np.ascontiguousarray(self.fn(work, self.params_at(severity), rng))
        if out.dtype != np.uint8 or out.size != image.size or out.shape[:2] != image.shape[:2]:
            raise AssertionError(f"perturbation {self.name} broke its contract: {out.dtype} {out.shape}")
        return out.reshape(image.shape)


def _plugin_perturbation(reg: Registry[Perturbation], name: str, loaded: object, origin: str) -> None:
    """A plugin's entry point loads a :class:`Perturbation` (or a function returning one)."""
    p = loaded() if callable(loaded) and not isinstance(loaded, Perturbation) else loaded
    if not isinstance(p, Perturbation):
        raise PerturbationError(
            f"plugin perturbation {name!r} ({origin}) loaded a {type(p).__name__}, not a Perturbation; "
            "point its entry point at a Perturbation instance"
        )
    if p.name != name:
        raise PerturbationError(
            f"plugin perturbation entry point {name!r} ({origin}) loads one named {p.name!r}; give both the same name"
        )
    _check_rows(p)
    reg.register(name, p, origin)


#: The catalogue: built-ins register at import, plugins (entry points in ``edgeprobe.perturbations``) on first use.
REGISTRY: Registry[Perturbation] = Registry(
    "perturbation", group="edgeprobe.perturbations", listing="edgeprobe perturbations",
    error=PerturbationError, on_plugin=_plugin_perturbation,
)


def _check_rows(p: Perturbation) -> None:
    if len(p.table) != 5:
        raise ValueError(f"perturbation {p.name!r} needs 5 severity rows, has {len(p.table)}")


def register(p: Perturbation) -> Perturbation:
    """Add ``p`` to the catalogue; the listing, the docs and the test table are driven from it."""
    _check_rows(p)
    return REGISTRY.register(p.name, p)


def names() -> list[str]:
    return REGISTRY.names()


def get(name: str) -> Perturbation:
    return REGISTRY.get(name)


def apply(name: str, image: np.ndarray, severity: float, seed: int) -> np.ndarray:
    """Perturb a uint8 greyscale or **BGR** frame (see :meth:`Perturbation.apply`)."""
    return get(name).apply(image, severity, seed)


def check_severity(severity: float) -> None:
    if isinstance(severity, bool) or not isinstance(severity, (int, float, np.floating, np.integer)) or not (
        0.0 <= float(severity) <= MAX_SEVERITY
    ):
        raise PerturbationError(f"severity must be a number in [0, 5], got {severity!r}")


def check_image(image: np.ndarray) -> None:
    """Refuse what no perturbation can take: not an array, not uint8, not HxW / HxWx1 / HxWx3, empty."""
    if not isinstance(image, np.ndarray):
        raise PerturbationError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise PerturbationError(f"image must be uint8, got {image.dtype}; convert it first")
    if image.ndim == 3 and image.shape[2] in (1, 3):
        pass
    elif image.ndim != 2:
        raise PerturbationError(
            f"image must be HxW or HxWx1/HxWx3, got shape {image.shape}"
        )
    if image.size == 0:
        raise PerturbationError("image is empty")


def derive_seed(base_seed: int, frame_index: int, name: str, severity: float) -> int:
    """A stable per-(frame, perturbation, severity) seed.

    crc32 rather than ``hash()`` because Python salts string hashes per process,
    and seeds must replay across processes and machines.
    """
    seq = np.random.SeedSequence(
        [base_seed & 0xFFFFFFFF, frame_index & 0xFFFFFFFF, zlib.crc32(name.encode()), round(severity * 1000)]
    )
    return int(seq.generate_state(1, dtype=np.uint32)[0])
