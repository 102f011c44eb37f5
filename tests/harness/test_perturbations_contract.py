"""The contract every registered perturbation keeps (driven by the registry)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
from edgeprobe.harness import perturbations as P

ALL = P.names()


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(42)
    img = np.zeros((96, 128, 3), np.uint8)
    img[:, :64] = 200
    return np.clip(img.astype(int) + rng.integers(0, 40, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_bytes_other_seed_may_differ(name: str, frame: np.ndarray) -> None:
    a = P.apply(name, frame, 3, seed=11)
    b = P.apply(name, frame, 3, seed=11)
    assert _digest(a) == _digest(b)
    assert a.dtype == np.uint8 and a.shape == frame.shape


@pytest.mark.parametrize("name", ALL)
def test_severity_zero_is_identity(name: str, frame: np.ndarray) -> None:
    assert np.array_equal(P.apply(name, frame, 0, seed=1), frame)


@pytest.mark.parametrize("name", ALL)
def test_input_is_not_mutated(name: str, frame: np.ndarray) -> None:
    before = frame.copy()
    P.apply(name, frame, 5, seed=3)
    assert np.array_equal(frame, before)


def test_same_bytes_across_processes(frame: np.ndarray) -> None:
    code = (
        "import numpy as np, hashlib; from edgeprobe.harness import perturbations as P;"
        "rng = np.random.default_rng(42); img = np.zeros((96, 128, 3), np.uint8); img[:, :64] = 200;"
        "img = np.clip(img.astype(int) + rng.integers(0, 40, img.shape), 0, 255).astype(np.uint8);"
        "print(' '.join(hashlib.sha256(P.apply(n, img, 3, seed=11).tobytes()).hexdigest() for n in P.names()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [_digest(P.apply(n, frame, 3, seed=11)) for n in ALL]


def test_fractional_severity_interpolates_the_table() -> None:
    p = P.get("gaussian_noise")
    assert p.params_at(1) == pytest.approx(p.table[0])
    assert p.params_at(2.5) == pytest.approx(tuple((a + b) / 2 for a, b in zip(p.table[1], p.table[2], strict=True)))
    assert p.params_at(0.5) == pytest.approx(tuple(x / 2 for x in p.table[0]))


@pytest.mark.parametrize("bad", [-0.1, 5.01, float("nan"), "3"])
def test_severity_outside_range_is_refused(bad: object, frame: np.ndarray) -> None:
    with pytest.raises(P.PerturbationError, match="severity"):
        P.apply("gaussian_noise", frame, bad, seed=0)  # type: ignore[arg-type]


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(P.PerturbationError, match='did you mean "gaussian_noise"'):
        P.get("gausian_noise")


@pytest.mark.parametrize("image", [np.zeros((4, 4, 3), np.float32), np.zeros((2, 2, 2, 3), np.uint8),
                                   np.zeros((0, 5, 3), np.uint8), np.zeros((4, 4, 4), np.uint8)])
def test_bad_arrays_are_refused(image: np.ndarray) -> None:
    with pytest.raises(P.PerturbationError):
        P.apply("gaussian_blur", image, 2, seed=0)


def test_seed_derivation_is_stable_and_distinct() -> None:
    s = P.derive_seed(1, 10, "gaussian_noise", 3)
    assert s == P.derive_seed(1, 10, "gaussian_noise", 3)
    assert len({s, P.derive_seed(1, 11, "gaussian_noise", 3), P.derive_seed(1, 10, "gaussian_blur", 3),
                P.derive_seed(1, 10, "gaussian_noise", 4), P.derive_seed(2, 10, "gaussian_noise", 3)}) == 5
