"""The look-up-table preprocessor against the formula applied the plain way: bit-identical for every layout,
channel order, resize mode and input type."""

from __future__ import annotations

import threading

import cv2
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.agent.backends.preprocess import Preprocessor
from edgeprobe.agent.config import PreprocessConfig


def reference(cfg: PreprocessConfig, th: int, tw: int, channels: int, layout: str, dtype: np.dtype,
              quant: tuple[float, int] | None, image: np.ndarray) -> np.ndarray:
    """The documented formula, step by step with full-size temporaries (what the preprocessor must equal)."""
    h, w = image.shape[:2]
    if cfg.resize == "center_crop":
        s = max(th / h, tw / w)
        nh, nw = max(th, round(h * s)), max(tw, round(w * s))
        big = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        img = big[(nh - th) // 2:(nh - th) // 2 + th, (nw - tw) // 2:(nw - tw) // 2 + tw]
    elif cfg.resize == "letterbox":
        s = min(th / h, tw / w)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))
        img = np.full((th, tw, *image.shape[2:]), 114, dtype=image.dtype)
        y, x = (th - nh) // 2, (tw - nw) // 2
        img[y:y + nh, x:x + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    else:
        img = image if (h, w) == (th, tw) else cv2.resize(image, (tw, th), interpolation=cv2.INTER_LINEAR)
    if channels == 1:
        img = (cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img)[..., None]
    else:
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        if cfg.color == "rgb":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if dtype == np.uint8 and quant is None:
        x = img
    else:
        std = np.asarray(cfg.std, np.float32)[:channels]
        mean = np.asarray(cfg.mean, np.float32)[:channels]
        x = img.astype(np.float32) * (np.float32(cfg.scale) / std) + (-mean / std)
        if quant is not None:
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / quant[0] + quant[1]), info.min, info.max)
    x = x.astype(dtype)
    if layout == "NCHW":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


floats = st.floats(0.0625, 2.0, allow_nan=False, width=32)


@settings(max_examples=120, deadline=None)
@given(
    h=st.integers(4, 90), w=st.integers(4, 90), th=st.integers(2, 48), tw=st.integers(2, 48),
    channels=st.sampled_from([1, 3]), grey_input=st.booleans(), layout=st.sampled_from(["NCHW", "NHWC"]),
    color=st.sampled_from(["rgb", "bgr"]), resize=st.sampled_from(["stretch", "center_crop", "letterbox"]),
    kind=st.sampled_from(["float32", "uint8", "int8_quantised", "uint8_quantised", "float16"]),
    scale=st.sampled_from([1.0, 1 / 255, 1 / 127.5]), mean=st.lists(floats, min_size=3, max_size=3),
    std=st.lists(floats, min_size=3, max_size=3), qscale=st.floats(0.0078125, 0.25, width=32),
    zero=st.integers(-20, 20), seed=st.integers(0, 2**31 - 1),
)
def test_bit_identical_to_the_formula(h: int, w: int, th: int, tw: int, channels: int, grey_input: bool,
                                      layout: str, color: str, resize: str, kind: str, scale: float,
                                      mean: list[float], std: list[float], qscale: float, zero: int,
                                      seed: int) -> None:
    dtype = np.dtype({"float32": np.float32, "float16": np.float16, "uint8": np.uint8,
                      "int8_quantised": np.int8, "uint8_quantised": np.uint8}[kind])
    quant = (float(qscale), zero if kind == "int8_quantised" else abs(zero) + 100) if "quantised" in kind else None
    cfg = PreprocessConfig(resize=resize, color=color, scale=scale, mean=mean, std=std)
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w) if grey_input else (h, w, 3), dtype=np.uint8)
    pre = Preprocessor(cfg, th, tw, channels, layout, dtype, quantization=quant)
    want = reference(cfg, th, tw, channels, layout, dtype, quant, image)
    for _ in range(2):  # the second call reuses the buffer: nothing of the first may leak into it
        got = pre(image)
        assert got.shape == want.shape and got.dtype == want.dtype and got.flags.c_contiguous
        assert np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))) == 0.0
        image = rng.integers(0, 256, image.shape, dtype=np.uint8)
        want = reference(cfg, th, tw, channels, layout, dtype, quant, image)


def test_demo_model_frame_bit_identical() -> None:
    """The demo's own shapes: a 768x576 frame centre-cropped to a 224x224 NCHW float tensor."""
    cfg = PreprocessConfig(resize="center_crop", color="bgr", scale=1 / 255, mean=[0.485, 0.456, 0.406],
                           std=[0.229, 0.224, 0.225])
    image = np.random.default_rng(3).integers(0, 256, (576, 768, 3), dtype=np.uint8)
    got = Preprocessor(cfg, 224, 224, 3, "NCHW", np.dtype(np.float32))(image)
    want = reference(cfg, 224, 224, 3, "NCHW", np.dtype(np.float32), None, image)
    assert np.array_equal(got, want)


def test_a_16_bit_frame_takes_the_general_path_and_still_matches() -> None:
    cfg = PreprocessConfig(color="rgb", mean=[0.1, 0.2, 0.3], std=[0.5, 0.5, 0.5], scale=1 / 65535)
    image = np.random.default_rng(5).integers(0, 65536, (20, 30, 3), dtype=np.uint16)
    got = Preprocessor(cfg, 20, 30, 3, "NHWC", np.dtype(np.float32))(image)
    assert np.array_equal(got, reference(cfg, 20, 30, 3, "NHWC", np.dtype(np.float32), None, image))


def test_the_buffer_is_reused_per_thread_not_shared_between_threads() -> None:
    """One tensor per thread: the loop's and a background prober's calls never write into each other's."""
    pre = Preprocessor(PreprocessConfig(), 8, 8, 3, "NCHW", np.dtype(np.float32))
    a = np.zeros((8, 8, 3), np.uint8)
    first = pre(a)
    assert pre(a + 1) is first  # reused on this thread
    other: list[np.ndarray] = []
    t = threading.Thread(target=lambda: other.append(pre(a + 2)))
    t.start()
    t.join()
    assert other[0] is not first
    assert np.array_equal(first, reference(PreprocessConfig(), 8, 8, 3, "NCHW", np.dtype(np.float32), None, a + 1))


@settings(max_examples=80, deadline=None)
@given(
    h=st.integers(4, 90), w=st.integers(4, 90), th=st.integers(2, 48), tw=st.integers(2, 48),
    color=st.sampled_from(["rgb", "bgr"]), signed=st.booleans(), scale=st.sampled_from([1.0, 1 / 255, 1 / 127.5]),
    mean=st.lists(floats, min_size=3, max_size=3), std=st.lists(floats, min_size=3, max_size=3),
    qscale=st.floats(0.0078125, 0.25, width=32), zero=st.integers(-20, 20), seed=st.integers(0, 2**31 - 1),
)
def test_quantised_nhwc_colour_tensors_drawn_in_one_transform_match_the_formula(
        h: int, w: int, th: int, tw: int, color: str, signed: bool, scale: float, mean: list[float],
        std: list[float], qscale: float, zero: int, seed: int) -> None:
    """The 8-bit NHWC path that draws the three tables with one cv2.transform (where this OpenCV proves it can)
    against the formula, on frames whose every value the tables see: bit-identical, int8 and uint8."""
    dtype = np.dtype(np.int8 if signed else np.uint8)
    quant = (float(qscale), zero if signed else abs(zero) + 100)
    cfg = PreprocessConfig(resize="center_crop", color=color, scale=scale, mean=mean, std=std)
    pre = Preprocessor(cfg, th, tw, 3, "NHWC", dtype, quantization=quant)
    rng = np.random.default_rng(seed)
    for _ in range(2):
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        assert np.array_equal(pre(image), reference(cfg, th, tw, 3, "NHWC", dtype, quant, image))
