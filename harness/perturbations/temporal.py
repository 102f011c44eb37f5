"""Temporal faults: frozen, dropped and duplicated frames.

These need the frames around the current one, so they are not functions of
one frame: a :class:`TemporalStream` is fed the clean frames in order and
returns, for each, the frames the model would see (none for a dropped frame,
two for a duplicated one, a stale one while frozen). Given the same frames,
severity and seed it returns the same frames, so a run can be replayed.
Severity is the probability per frame of the fault (frozen: of a freeze
starting, with its length growing too).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from edgeprobe.harness.perturbations.base import (
    Perturbation,
    PerturbationError,
    check_image,
    check_severity,
    get,
    register,
)


class TemporalStream:
    """Feed clean frames with :meth:`push`; each call returns what the consumer receives instead."""

    def __init__(self, name: str, severity: float, seed: int):
        self.perturbation = get(name)
        if not self.perturbation.temporal or self.perturbation.step is None:
            raise PerturbationError(f"perturbation {name!r} acts on single frames; use perturbations.apply")
        check_severity(severity)
        self.params = self.perturbation.params_at(severity)
        self.rng = np.random.default_rng(seed)
        self.held: np.ndarray | None = None
        self.freeze_left = 0
        self.index = 0

    def push(self, frame: np.ndarray) -> list[np.ndarray]:
        check_image(frame)
        step = self.perturbation.step
        assert step is not None
        out = step(self, frame)
        self.index += 1
        return out


def apply_sequence(name: str, frames: Iterable[np.ndarray], severity: float, seed: int) -> list[np.ndarray]:
    """The whole sequence the consumer sees for ``frames`` (its length may differ)."""
    stream = TemporalStream(name, severity, seed)
    out: list[np.ndarray] = []
    for f in frames:
        out.extend(stream.push(f))
    return out


def _frozen(stream: TemporalStream, frame: np.ndarray) -> list[np.ndarray]:
    """The camera stops updating: the last frame is repeated for a while, then the stream resumes."""
    p_start, length = stream.params
    u = float(stream.rng.random())
    if stream.freeze_left > 0 and stream.held is not None:
        stream.freeze_left -= 1
        return [stream.held.copy()]
    if u < p_start and stream.held is not None:
        stream.freeze_left = max(0, round(length) - 1)
        return [stream.held.copy()]
    stream.held = frame
    return [frame.copy()]


def _dropped(stream: TemporalStream, frame: np.ndarray) -> list[np.ndarray]:
    """The frame never arrives (the model sees a jump in time)."""
    (p,) = stream.params
    return [] if float(stream.rng.random()) < p else [frame.copy()]


def _duplicated(stream: TemporalStream, frame: np.ndarray) -> list[np.ndarray]:
    """The frame arrives twice (a buffer resent, a frame-rate converter repeating)."""
    (p,) = stream.params
    return [frame.copy(), frame.copy()] if float(stream.rng.random()) < p else [frame.copy()]


def _single(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    raise AssertionError("temporal perturbations are refused by Perturbation.apply")  # pragma: no cover


for _name, _step, _table, _identity, _pnames, _desc in [
    ("frozen_frame", _frozen, ((0.01, 3.0), (0.02, 5.0), (0.04, 8.0), (0.07, 12.0), (0.12, 20.0)), (0.0, 1.0),
     ("p_start", "length"), "Camera freezes: the last frame repeats for a while."),
    ("dropped_frame", _dropped, ((0.02,), (0.05,), (0.1,), (0.2,), (0.35,)), (0.0,), ("p",),
     "Frames lost between camera and model."),
    ("duplicated_frame", _duplicated, ((0.02,), (0.05,), (0.1,), (0.2,), (0.35,)), (0.0,), ("p",),
     "Frames delivered twice."),
]:
    register(
        Perturbation(
            name=_name,
            family="temporal",
            fn=_single,
            table=_table,
            identity=_identity,
            param_names=_pnames,
            description=_desc,
            source="edgeprobe",
            temporal=True,
            step=_step,
        )
    )
