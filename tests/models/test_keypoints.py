"""The keypoints task: PCK disagreement, fit checks, and metamorphic relations that move (and mirror) landmarks.

The real-model tests use MediaPipe's pose landmark model from the mediapipe wheel on a real photograph; the
rules of the comparison itself are property tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edgeprobe.agent.backends import load_backend, open_adapter
from edgeprobe.agent.config import ModelConfig, PreprocessConfig
from edgeprobe.harness.errors import ConfigError
from edgeprobe.harness.metamorphic import check_relation, evaluate_relations, expected
from edgeprobe.harness.modelconfig import TaskConfig
from edgeprobe.harness.tasks import LayoutMisfit, OutputSpec, make_adapter
from edgeprobe.harness.tasks.keypoints import POSE_MIRROR, Keypoints, KeypointsAdapter, pck_disagreement
from tests.conftest import asset, run_cli

points = arrays(np.float64, st.tuples(st.integers(2, 40), st.just(2)), elements=st.floats(0.0, 1.0))


@settings(max_examples=60, deadline=None)
@given(points, st.floats(0.01, 0.5), st.floats(0.2, 5.0), st.floats(-2.0, 2.0))
def test_pck_is_a_share_unchanged_by_moving_or_scaling_both_sets(a: np.ndarray, tol: float, scale: float,
                                                                 shift: float) -> None:
    rng = np.random.default_rng(a.size)
    b = a + rng.normal(0, 0.05, a.shape)
    d = pck_disagreement(a, b, tol)
    assert 0.0 <= d <= 1.0 and pck_disagreement(a, a, tol) == 0.0
    n = len(a)
    assert round(d * n) == pytest.approx(d * n)  # a share of keypoints
    extent = np.ptp(a, axis=0)
    if np.hypot(*extent) > 1e-3:  # same geometry at another place and size: the same share moved
        assert pck_disagreement(a * scale + shift, b * scale + shift, tol) == pytest.approx(d)


def test_pck_counts_a_keypoint_as_moved_past_the_tolerance_of_the_box_diagonal() -> None:
    a = np.array([[0.0, 0.0], [0.3, 0.0], [0.0, 0.4], [0.3, 0.4]])  # box diagonal 0.5
    b = a.copy()
    b[0] += [0.0, 0.049]  # within 0.1 x 0.5
    b[1] += [0.051, 0.0]  # past it
    b[2] = np.nan  # a missing keypoint moved
    assert pck_disagreement(a, b, 0.1) == 0.5


def _adapter(**kw: Any) -> KeypointsAdapter:
    return KeypointsAdapter(layout="mediapipe_hand", **kw)


def test_presence_and_handedness_flips_are_full_disagreement() -> None:
    a = _adapter()
    pts = np.random.default_rng(0).random((21, 2)).astype(np.float32)
    there = Keypoints(pts, 0.9, True, 0.1)
    assert a.disagreement(there, Keypoints(pts, 0.1, False, 0.1)) == 1.0
    assert a.disagreement(Keypoints(pts, 0.1, False, 0.1), Keypoints(pts + 0.5, 0.2, False, 0.9)) == 0.0
    assert a.disagreement(there, Keypoints(pts, 0.9, True, 0.8)) == 1.0
    assert a.disagreement(there, Keypoints(pts, 0.9, True, 0.2)) == 0.0
    assert a.describe(Keypoints(pts, 0.1, False, 0.1))["count"] == 0  # nothing to lose: counted apart


def _specs(*shapes: tuple[int, ...]) -> list[OutputSpec]:
    return [OutputSpec(f"out{i}", s, "float32") for i, s in enumerate(shapes)]


def test_fit_checks_name_the_output_and_the_layout() -> None:
    hand = _specs((1, 63), (1, 1), (1, 1), (1, 63))
    assert make_adapter("keypoints", hand).layout_name == "mediapipe_hand"  # type: ignore[attr-defined]
    pose = _specs((1, 195), (1, 1), (1, 256, 256, 1), (1, 64, 64, 39), (1, 117))
    assert make_adapter("keypoints", pose).layout_name == "mediapipe_pose"  # type: ignore[attr-defined]
    with pytest.raises(LayoutMisfit, match=r"output 'out0' has shape \(1, 195\) but keypoints/mediapipe_hand "
                                           r"expects landmarks \(1, 63\)"):
        make_adapter("keypoints", pose, layout="mediapipe_hand")
    with pytest.raises(LayoutMisfit, match=r"none of keypoints's layouts .* fits outputs \(1, 896, 16\)"):
        make_adapter("keypoints", _specs((1, 896, 16), (1, 896, 1)))
    sample = [np.zeros((1, 63)), np.full((1, 1), 3.5), np.zeros((1, 1)), np.zeros((1, 63))]
    with pytest.raises(LayoutMisfit, match=r"presence scores from 3.5 to 3.5 .* not in \[0, 1\]"):
        make_adapter("keypoints", hand, sample=sample, layout="mediapipe_hand")
    with pytest.raises(ConfigError, match=r"task.tolerance must be in \(0, 1\]"):
        KeypointsAdapter(tolerance=0.0)
    with pytest.raises(ConfigError, match=r"task\.layout for keypoints must be one of mediapipe_hand, mediapipe_pose"):
        KeypointsAdapter(layout="coco17")


def test_the_pose_mirror_swaps_every_left_right_pair_and_keeps_the_nose() -> None:
    assert POSE_MIRROR[0] == 0 and sorted(POSE_MIRROR) == list(range(33))
    assert all(POSE_MIRROR[POSE_MIRROR[i]] == i for i in range(33))  # an involution
    assert (POSE_MIRROR[11], POSE_MIRROR[12], POSE_MIRROR[27]) == (12, 11, 28)  # shoulders, ankle


class _NoMirror:
    """A plugin's keypoint adapter that does not say how its keypoints mirror."""

    name = "keypoints"
    threshold = 0.5

    def disagreement(self, a: Keypoints, b: Keypoints) -> float:
        return pck_disagreement(a.points, b.points, 0.05)


def test_a_mirror_relation_is_refused_where_the_adapter_cannot_say_how_keypoints_mirror() -> None:
    with pytest.raises(ConfigError, match="relation hflip needs to know which keypoints trade places"):
        check_relation("hflip", _NoMirror())
    check_relation("translate", _NoMirror())  # moving points is defined for any keypoints
    check_relation("rotate90", _adapter())


@pytest.fixture(scope="module")
def pose() -> tuple[Any, Any]:
    cfg = ModelConfig(path=str(asset("pose_landmark_full.tflite")),
                      preprocess=PreprocessConfig(resize="letterbox", color="rgb", scale=1 / 255))
    backend = load_backend(cfg)
    return backend, open_adapter(backend, TaskConfig(kind="keypoints"))


def test_pose_landmarks_hold_the_mirror_relation_only_with_left_and_right_swapped(pose: tuple[Any, Any]) -> None:
    backend, adapter = pose
    messi = cv2.imread(str(asset("messi5.jpg")))

    def predict(image: np.ndarray) -> Keypoints:
        out: Keypoints = adapter.decode(backend.infer(backend.preprocess(image)))
        return out

    clean = predict(messi)
    assert clean.present
    flipped = predict(np.ascontiguousarray(messi[:, ::-1]))
    want, text = expected("hflip", {}, adapter, clean)
    assert "mirrored joints trade places" in text
    swapped = adapter.disagreement(want, flipped)
    unswapped = adapter.disagreement(Keypoints(want.points[list(POSE_MIRROR)], want.score, True), flipped)
    assert swapped <= adapter.threshold < unswapped  # without the swap, left joints land on right ones
    results = evaluate_relations([messi], predict, adapter, ["hflip", "translate", "brightness"], clean=[clean])
    by_name = {r.relation: r for r in results}
    assert by_name["hflip"].violations == 0 and by_name["hflip"].n == 1
    assert by_name["brightness"].violations == 0


def _frames(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(i) for i in images]


def test_a_frame_without_a_person_stays_stable_when_it_stays_empty(pose: tuple[Any, Any]) -> None:
    backend, adapter = pose
    grey = np.full((240, 320, 3), 128, np.uint8)
    clean = adapter.decode(backend.infer(backend.preprocess(grey)))
    assert not clean.present
    (r,) = evaluate_relations(_frames([grey]), lambda im: adapter.decode(backend.infer(backend.preprocess(im))),
                              adapter, ["hflip"], clean=[clean])
    assert r.violations == 0


def test_edgeprobe_tasks_lists_keypoints_with_both_layouts() -> None:
    import json

    proc = run_cli("tasks", "--json")
    assert proc.returncode == 0, proc.stderr
    kinds = {a["kind"]: a for a in json.loads(proc.stdout)["adapters"]}
    layouts = {row["layout"]: row["accepts"] for row in kinds["keypoints"]["layouts"]}
    assert set(layouts) == {"mediapipe_hand", "mediapipe_pose"}
    assert "(1, 63)" in layouts["mediapipe_hand"] and "(1, 195)" in layouts["mediapipe_pose"]
    order = list(kinds)
    assert order.index("keypoints") < order.index("classification") < order.index("embedding")
