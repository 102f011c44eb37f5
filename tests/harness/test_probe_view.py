"""The probe view: the frame shrunk to cover the model's input, and the prober perturbing exactly that."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeprobe.agent.config import PerturbationConfig, ProbeConfig
from edgeprobe.agent.prober import Prober
from edgeprobe.harness.probe_view import probe_view, view_size

sizes = st.integers(min_value=1, max_value=4000)


@given(h=sizes, w=sizes, th=st.integers(1, 1024), tw=st.integers(1, 1024))
def test_view_covers_the_input_never_enlarges_and_keeps_the_aspect(h: int, w: int, th: int, tw: int) -> None:
    vh, vw = view_size(h, w, (th, tw))
    assert vh <= h and vw <= w  # never enlarged
    if (vh, vw) != (h, w):
        assert vh >= th and vw >= tw  # still covers what the model resizes to
        assert vh == th or vw == tw  # and no larger than it must be
        # aspect kept to within the rounding of one side
        assert abs(vh / vw - h / w) <= (h / w) * (1 / min(vh, vw)) + 1e-9


def test_view_pixels_and_the_native_option() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (576, 768, 3), dtype=np.uint8)
    view = probe_view(frame, (224, 224))
    assert view.shape == (224, 299, 3) and view.dtype == np.uint8
    assert abs(float(view.mean()) - float(frame.mean())) < 1.0  # area interpolation keeps the mean
    assert probe_view(frame, (224, 224), "native") is frame
    assert probe_view(frame, (640, 1024)) is frame  # the model is larger than the frame: nothing to shrink
    grey = frame[:, :, 0]
    assert probe_view(grey, (100, 100)).shape == (100, 133)
    one_channel = frame[:, :, :1]
    assert probe_view(one_channel, (100, 100)).shape == (100, 133, 1)


@pytest.mark.parametrize(("resolution", "expected_shape"), [("model", (224, 299, 3)), ("native", (576, 768, 3))])
def test_prober_perturbs_the_view_and_compares_with_its_own_clean_prediction(
        resolution: str, expected_shape: tuple[int, ...]) -> None:
    seen: list[tuple[int, ...]] = []

    def predict(image: np.ndarray) -> float:
        seen.append(image.shape)
        return float(image.mean())

    cfg = ProbeConfig(every_n_frames=1, resolution=resolution,  # type: ignore[arg-type]
                      perturbations=[PerturbationConfig(name="gaussian_blur", severities=[1.0])])
    p = Prober(cfg, predict, lambda a, b: abs(a - b), 0.5, input_hw=(224, 224))
    frame = np.full((576, 768, 3), 128, np.uint8)
    clean_on_full_frame = 999.0  # a reference on other pixels than the perturbed ones would look unstable
    p.probe(frame, clean_on_full_frame, 0)
    assert set(seen) == {expected_shape}
    fractions = [c["fraction"] for c in p.window.summary(0.2, 0.5)]
    # With the view, the clean reference is re-predicted on the view (blur of a flat frame changes nothing);
    # natively the caller's reference is used as given.
    assert fractions == ([0.0] if resolution == "model" else [1.0])
