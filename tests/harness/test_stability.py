from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeprobe.harness.stability import StabilityWindow, risk_zone, wilson_interval


def _wilson_reference(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson's interval from its definition: the p solving (p_hat - p)^2 = z^2 p (1-p) / n."""
    p_hat = k / n
    a = 1 + z * z / n
    b = -(2 * p_hat + z * z / n)
    c = p_hat * p_hat
    disc = math.sqrt(max(0.0, b * b - 4 * a * c))
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_the_quadratic_definition(kn: tuple[int, int]) -> None:
    k, n = kn
    lo, hi = wilson_interval(k, n)
    ref_lo, ref_hi = _wilson_reference(k, n)
    assert lo == pytest.approx(max(0.0, ref_lo), abs=1e-9)
    assert hi == pytest.approx(min(1.0, ref_hi), abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_known_value_and_bad_input() -> None:
    # 10 of 100: the textbook 95% Wilson interval is (0.0552, 0.1744).
    lo, hi = wilson_interval(10, 100)
    assert lo == pytest.approx(0.0552, abs=1e-4) and hi == pytest.approx(0.1744, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


def test_window_counts_unstable_above_threshold_only() -> None:
    w = StabilityWindow()
    for d in (0.0, 1.0, 1.0, 0.5):
        w.add("gaussian_noise", 3, d, threshold=0.5)
    (cell,) = w.summary()
    assert (cell["n"], cell["unstable"]) == (4, 2)
    assert cell["fraction"] == 0.5 and cell["zone"] == "broken"
    assert cell["mean_disagreement"] == pytest.approx(0.625)


@pytest.mark.parametrize(("fraction", "zone"), [(0.0, "ok"), (0.19, "ok"), (0.2, "at_risk"), (0.49, "at_risk"),
                                                (0.5, "broken")])
def test_risk_zones(fraction: float, zone: str) -> None:
    assert risk_zone(fraction) == zone
