"""The contract every perturbation keeps, as one table driven by the registry.

Each test is parametrised over the whole catalogue (``P.names()``);
temporal perturbations are run on a short sequence through
``apply_sequence`` so they face the same checks.
"""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
from functools import lru_cache

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.harness import perturbations as P

ALL = P.names()
FRAME_WISE = [n for n in ALL if not P.get(n).temporal]
MONOTONE = [n for n in FRAME_WISE if P.get(n).monotone]


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def run(name: str, image: np.ndarray, severity: float, seed: int) -> np.ndarray:
    """Single frame for frame-wise perturbations; for temporal ones, 12 shifted copies stacked."""
    if not P.get(name).temporal:
        return P.apply(name, image, severity, seed)
    frames = [np.roll(image, i, axis=1) for i in range(12)]
    out = P.apply_sequence(name, frames, severity, seed)
    return np.stack(out) if out else np.zeros((0, *image.shape), np.uint8)


@lru_cache(maxsize=1)
def photo() -> np.ndarray:
    """A real photograph (OpenCV's baboon), small."""
    from tests.conftest import asset

    return np.ascontiguousarray(cv2.resize(cv2.imread(str(asset("baboon.jpg"))), (128, 96)))


def _synthetic() -> np.ndarray:
    rng = np.random.default_rng(42)
    img = np.zeros((96, 128, 3), np.uint8)
    img[:, :64] = 200
    return np.clip(img.astype(int) + rng.integers(0, 40, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ALL)
def test_row_is_complete(name: str) -> None:
    p = P.get(name)
    assert p.family in {"noise", "blur", "weather", "digital", "camera", "temporal", "geometric"}
    assert len(p.table) == 5 and all(len(r) == len(p.identity) == len(p.param_names) for r in p.table)
    assert p.description
    if name in P.IMAGENET_C:
        assert p.source.startswith("ImageNet-C")
    assert p.temporal == (p.step is not None)


def test_catalogue_has_all_of_imagenet_c_and_the_faults() -> None:
    assert set(P.IMAGENET_C) <= set(ALL) and len(P.IMAGENET_C) == 19
    for n in ("pixel_dropout", "block_loss", "frozen_frame", "dropped_frame", "duplicated_frame", "rolling_shutter",
              "lens_occlusion", "smudge", "overexposure", "underexposure", "white_balance", "channel_swap",
              "downscale_upscale", "interlace", "vignetting", "rotate", "translate", "scale", "crop_resize"):
        assert n in ALL, n


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_bytes_and_contract(name: str) -> None:
    frame = photo()
    before = frame.copy()
    a = run(name, frame, 3, seed=11)
    b = run(name, frame, 3, seed=11)
    assert _digest(a) == _digest(b)
    assert np.array_equal(frame, before), "input mutated"
    assert a.dtype == np.uint8 and a.shape[-3:] == frame.shape


@pytest.mark.parametrize("name", ALL)
def test_severity_zero_is_identity(name: str) -> None:
    frame = photo()
    out = run(name, frame, 0, seed=1)
    if P.get(name).temporal:
        assert np.array_equal(out, np.stack([np.roll(frame, i, axis=1) for i in range(12)]))
    else:
        assert np.array_equal(out, frame)


@pytest.mark.parametrize("name", FRAME_WISE)
def test_severity_five_is_further_than_one(name: str) -> None:
    """Holds on a real photograph for every frame-wise perturbation (not only the monotone ones)."""
    frame = photo().astype(np.int16)
    far = [float(np.abs(P.apply(name, photo(), s, seed=5).astype(np.int16) - frame).mean()) for s in (1, 5)]
    table = P.get(name).table
    assert far[1] > 0 and (far[1] > far[0] if table[0] != table[4] else far[1] == far[0]), far


GRID = [round(0.1 * i, 1) for i in range(1, 51)]


@lru_cache(maxsize=1)
def textured() -> np.ndarray:
    """The photograph at a model-input-like size (the probe view), textured everywhere."""
    from tests.conftest import asset

    return np.ascontiguousarray(cv2.resize(cv2.imread(str(asset("baboon.jpg"))), (256, 192)))


@pytest.mark.parametrize("name", FRAME_WISE)
def test_no_severity_above_zero_is_the_clean_frame(name: str) -> None:
    """On a 0.1 grid over (0, 5]: every severity changes the frame, and monotone ones never get closer to it.

    Temporal perturbations are rates over a sequence (a 0.1 drop rate may drop none of a few frames by chance);
    their tables are covered by the identity test below.
    """
    frame = textured()
    ref = frame.astype(np.int16)
    d = [float(np.abs(P.apply(name, frame, s, seed=5).astype(np.int16) - ref).mean()) for s in GRID]
    assert all(x > 0 for x in d), [s for s, x in zip(GRID, d, strict=True) if x == 0]
    if P.get(name).monotone:
        assert all(b >= a for a, b in itertools.pairwise(d)), [(s, round(x, 3)) for s, x in zip(GRID, d, strict=True)]


def _passes_identity(a: tuple[float, ...], b: tuple[float, ...], identity: tuple[float, ...]) -> float | None:
    """The t in (0, 1) at which a + t (b - a) equals the identity row, if the segment passes through it."""
    ts = set()
    for x, y, i in zip(a, b, identity, strict=True):
        if x == y:
            if x != i:
                return None
        else:
            ts.add(round((i - x) / (y - x), 9))
    if not ts:
        return None  # a == b: a constant interval is the identity only where its rows are (not between them)
    (t,) = ts if len(ts) == 1 else (None,)
    return t if t is not None and 0 < t < 1 else None


@pytest.mark.parametrize("name", ALL)
def test_no_interpolated_row_is_the_identity(name: str) -> None:
    """No severity in (0, 5] gets the identity row, between table rows included (saturate passed gain 1 at 2.47)."""
    p = P.get(name)
    rows = (p.identity, *p.table)
    for k in range(1, 5):
        t = _passes_identity(rows[k], rows[k + 1], p.identity)
        assert t is None or k in p.stepped, f"severity {k + t:.3f} of {name} is the clean frame"
        if k in p.stepped:
            assert p.params_at(k + 0.49) == rows[k] and p.params_at(k + 0.5) == rows[k + 1]
    assert all(tuple(p.params_at(s)) != tuple(p.identity) for s in GRID)


def test_saturate_near_its_old_identity_is_not_clean() -> None:
    frame = textured()
    for s in (2.474, 2.4745, 2.5):
        assert np.abs(P.apply("saturate", frame, s, 0).astype(np.int16) - frame).mean() > 1.0, s


def test_same_bytes_across_processes() -> None:
    code = (
        "import numpy as np, hashlib, cv2; from edgeprobe.harness import perturbations as P;"
        "from tests.harness.test_perturbations_contract import run, photo;"
        "print(' '.join(hashlib.sha256(np.ascontiguousarray(run(n, photo(), 3, 11)).tobytes()).hexdigest()"
        " for n in P.names()))"
    )
    from tests.conftest import REPO

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.split() == [_digest(run(n, photo(), 3, 11)) for n in ALL]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 5, 3), (1, 7), (7, 1, 1), (5, 3), (37, 23, 1), (40, 60)])
def test_odd_sizes_and_greyscale(name: str, shape: tuple[int, ...]) -> None:
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for sev in (0.5, 2.7, 5):
        out = run(name, img, sev, seed=3)
        assert out.dtype == np.uint8 and out.shape[-len(shape):] == shape


def _textured(height: int, width: int) -> np.ndarray:
    """The small photograph tiled to any size: the same local texture and colour at 0.1 MP and 12 MP."""
    tile = photo()
    reps = (height // tile.shape[0] + 1, width // tile.shape[1] + 1, 1)
    return np.ascontiguousarray(np.tile(tile, reps)[:height, :width])


@pytest.mark.parametrize("name", ALL)
def test_a_4000x3000_frame_is_perturbed_as_strongly_as_a_small_one(name: str) -> None:
    """A 12-MP frame gets the same perturbation as a small one, over the whole frame, not a no-op or a corner.

    Both frames carry the same texture, so a perturbation whose strength silently depends on the
    frame's size (a kernel or block count fixed in pixels where it should scale, a path that gives
    up on large frames and returns the input, work done on a shrunk copy) moves the mean distance
    out of [1/2, 2] x the small frame's. The real figures on this table lie within 0.6-1.4.
    """
    big, small = _textured(3000, 4000), _textured(300, 400)
    if P.get(name).temporal:
        frames = [np.roll(big, 7 * i, axis=1) for i in range(6)]
        out = P.apply_sequence(name, frames, 5, seed=0)
        assert all(o.shape == big.shape and o.dtype == np.uint8 for o in out)
        assert len(out) != len(frames) or any(
            not np.array_equal(o, f) for o, f in zip(out, frames, strict=True)), \
            "severity 5 left a 4000x3000 sequence unchanged"
        return
    out = P.apply(name, big, 5, seed=0)
    assert out.shape == big.shape and out.dtype == np.uint8
    moved = np.abs(out.astype(np.int16) - big)
    far_small = float(np.abs(P.apply(name, small, 5, seed=0).astype(np.int16) - small).mean())
    assert far_small > 0
    assert 0.5 <= float(moved.mean()) / far_small <= 2.0, (float(moved.mean()), far_small)
    # where it acts: at least half of the twelve 1000x1000 tiles change (occlusions cover part of a frame)
    tiles_changed = moved.reshape(3, 1000, 4, 1000, 3).max(axis=(1, 3, 4)) > 0
    assert tiles_changed.mean() >= 0.5, tiles_changed


@pytest.mark.parametrize("name", MONOTONE)
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), a=st.floats(0, 5), b=st.floats(0, 5),
       h=st.integers(1, 24), w=st.integers(1, 24), grey=st.booleans())
def test_distance_never_decreases_with_severity(name: str, seed: int, a: float, b: float, h: int, w: int,
                                                grey: bool) -> None:
    """For a fixed seed, a higher severity is never closer to the clean frame (where the definition says so)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 256, (h, w) if grey else (h, w, 3), dtype=np.uint8)
    lo, hi = sorted((a, b))
    d = [int(np.abs(P.apply(name, img, s, seed).astype(np.int32) - img).sum()) for s in (lo, hi)]
    assert d[0] <= d[1], (lo, hi, d)


def test_fractional_severity_interpolates_the_table() -> None:
    p = P.get("gaussian_noise")
    assert p.params_at(1) == pytest.approx(p.table[0])
    assert p.params_at(2.5) == pytest.approx(tuple((a + b) / 2 for a, b in zip(p.table[1], p.table[2], strict=True)))
    assert p.params_at(0.5) == pytest.approx(tuple(x / 2 for x in p.table[0]))


@pytest.mark.parametrize("bad", [-0.1, 5.01, float("nan"), "3", True])
def test_severity_outside_range_is_refused(bad: object) -> None:
    with pytest.raises(P.PerturbationError, match=r"severity must be a number in \[0, 5\]"):
        P.apply("gaussian_noise", _synthetic(), bad, seed=0)  # type: ignore[arg-type]


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(P.PerturbationError, match='did you mean "gaussian_noise"'):
        P.get("gausian_noise")


@pytest.mark.parametrize("image", [np.zeros((4, 4, 3), np.float32), np.zeros((2, 2, 2, 3), np.uint8),
                                   np.zeros((0, 5, 3), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                   np.zeros(5, np.uint8), [[1, 2], [3, 4]]])
def test_bad_arrays_are_refused_in_one_sentence(image: np.ndarray) -> None:
    with pytest.raises(P.PerturbationError) as err:
        P.apply("gaussian_blur", image, 2, seed=0)
    assert str(err.value).count(". ") == 0 and "\n" not in str(err.value)


def test_seed_derivation_is_stable_and_distinct() -> None:
    s = P.derive_seed(1, 10, "gaussian_noise", 3)
    assert s == P.derive_seed(1, 10, "gaussian_noise", 3)
    assert len({s, P.derive_seed(1, 11, "gaussian_noise", 3), P.derive_seed(1, 10, "gaussian_blur", 3),
                P.derive_seed(1, 10, "gaussian_noise", 4), P.derive_seed(2, 10, "gaussian_noise", 3)}) == 5


# ---- temporal ------------------------------------------------------------------------------------------------
def _numbered(n: int) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        f = np.zeros((4, 4), np.uint8)
        f[0, 0], f[0, 1] = divmod(i, 256)
        frames.append(f)
    return frames


def _index(f: np.ndarray) -> int:
    return int(f[0, 0]) * 256 + int(f[0, 1])


def test_temporal_faults_change_the_sequence_not_the_frames() -> None:
    frames = _numbered(400)
    dropped = P.apply_sequence("dropped_frame", frames, 5, seed=1)
    dup = P.apply_sequence("duplicated_frame", frames, 5, seed=1)
    frozen = P.apply_sequence("frozen_frame", frames, 5, seed=1)
    ids = [[_index(f) for f in seq] for seq in (dropped, dup, frozen)]
    # dropped: a strictly increasing subsequence with gaps, about 35% lost
    assert ids[0] == sorted(set(ids[0])) and 0.25 < 1 - len(ids[0]) / 400 < 0.45
    # duplicated: every frame, some twice, in order
    assert sorted(set(ids[1])) == list(range(400)) and ids[1] == sorted(ids[1]) and 1.25 < len(ids[1]) / 400 < 1.45
    # frozen: one output per input; runs of a repeated stale frame, never a frame from the future
    assert len(ids[2]) == 400 and all(i <= k for k, i in enumerate(ids[2]))
    assert max(k - i for k, i in enumerate(ids[2])) >= 10


def test_temporal_stream_matches_the_batch_and_replays() -> None:
    frames = _numbered(50)
    stream = P.TemporalStream("frozen_frame", 4.2, seed=9)
    pushed = [f for frame in frames for f in stream.push(frame)]
    batch = P.apply_sequence("frozen_frame", frames, 4.2, seed=9)
    assert [_digest(f) for f in pushed] == [_digest(f) for f in batch]


def test_temporal_on_a_single_frame_says_how_to_use_it() -> None:
    with pytest.raises(P.PerturbationError, match=r"temporal.*apply_sequence"):
        P.apply("frozen_frame", _synthetic(), 2, seed=0)
    with pytest.raises(P.PerturbationError, match="single frames"):
        P.TemporalStream("gaussian_noise", 2, seed=0)
