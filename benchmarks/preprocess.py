"""Preprocessing at the speed of a resize: the preprocessor against cv2.resize alone on the same frame.

The demo's case: a 768x576 frame of vtest.avi to the rotation model's 224x224
NCHW float input (centre crop, BGR, ImageNet mean/std), plus NHWC, RGB and
int8-quantised variants. Each round times a block of ``cv2.resize`` alone (the
resize the preprocessor itself must do), a block of the preprocessor, and a
block of the plain formula with full-size temporaries (the way it used to be
written), in rotating order; the figure is the median over rounds of each
round's ratio to that round's resize (paired, so a shared machine's load hits
both sides alike), with min-max.

    python benchmarks/preprocess.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "agent"))

GOAL = 1.3


def _frame() -> np.ndarray:
    video = Path(os.environ.get("EDGEPROBE_CACHE", Path.home() / ".cache" / "edgeprobe")) / "assets" / "vtest.avi"
    cap = cv2.VideoCapture(str(video))
    ok, img = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"cannot read {video}; run `edgeprobe assets fetch` first")
    return img


def _block(fn: Callable[[], object], n: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - t0) / n / 1000  # us per call


def main() -> None:
    from test_preprocess import reference  # the plain formula the tests hold the preprocessor to

    from edgeprobe.agent.backends.preprocess import Preprocessor
    from edgeprobe.agent.config import PreprocessConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rounds, n = (5, 100) if args.quick else (15, 200)
    img = _frame()
    imagenet = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "scale": 1 / 255}
    cases = {
        "demo_nchw_bgr_float32": (PreprocessConfig(resize="center_crop", color="bgr", **imagenet), "NCHW",
                                  np.dtype(np.float32), None),
        "nhwc_rgb_float32": (PreprocessConfig(resize="center_crop", color="rgb", **imagenet), "NHWC",
                             np.dtype(np.float32), None),
        "nhwc_rgb_int8_quantised": (PreprocessConfig(resize="center_crop", color="rgb", **imagenet), "NHWC",
                                    np.dtype(np.int8), (0.0187, -14)),
    }
    h, w = img.shape[:2]
    s = max(224 / h, 224 / w)
    size = (max(224, round(w * s)), max(224, round(h * s)))
    summary: dict[str, object] = {"frame": list(img.shape), "rounds": rounds, "calls_per_block": n, "goal": GOAL}
    for name, (cfg, layout, dtype, quant) in cases.items():
        pre = Preprocessor(cfg, 224, 224, 3, layout, dtype, quantization=quant)
        assert np.array_equal(pre(img), reference(cfg, 224, 224, 3, layout, dtype, quant, img))
        fns: dict[str, Callable[[], object]] = {
            "resize": partial(cv2.resize, img, size, interpolation=cv2.INTER_LINEAR),
            "preprocessor": partial(pre, img),
            "plain_formula": partial(reference, cfg, 224, 224, 3, layout, dtype, quant, img)}
        us: dict[str, list[float]] = {k: [] for k in fns}
        names = list(fns)
        for r in range(rounds):
            for k in names[r % 3:] + names[:r % 3]:
                us[k].append(_block(fns[k], n))
        ratios = {k: [a / b for a, b in zip(us[k], us["resize"], strict=True)]
                  for k in ("preprocessor", "plain_formula")}
        summary[name] = {
            "us_median": {k: statistics.median(v) for k, v in us.items()},
            "ratio_to_resize": {k: {"median": statistics.median(v), "min": min(v), "max": max(v)}
                                for k, v in ratios.items()},
            "bit_identical": True,
        }
        if not args.json:
            r = summary[name]["ratio_to_resize"]  # type: ignore[index]
            print(f"{name}: resize {statistics.median(us['resize']):.0f} us, preprocessor "
                  f"{statistics.median(us['preprocessor']):.0f} us = x{r['preprocessor']['median']:.2f} of the resize "
                  f"[{r['preprocessor']['min']:.2f}-{r['preprocessor']['max']:.2f}] (goal <= {GOAL}); plain formula "
                  f"x{r['plain_formula']['median']:.2f}; bit-identical", file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
