"""Preprocessing at the speed of a resize: the preprocessor against cv2.resize alone on the same frame.

The demo's case: a 768x576 frame of vtest.avi to the rotation model's 224x224
NCHW float input (centre crop, BGR, ImageNet mean/std), plus NHWC, RGB and
int8-quantised variants. For a centre crop the preprocessor resizes only
the part of the frame its crop keeps (agent/backends/resize.py, same pixels),
so the resize of that part alone is measured too, and the preprocessor's
ratio to it printed beside the goal's ratio (to the whole frame's resize, what
a plain implementation calls). The contenders are ``cv2.resize`` alone (the resize
the preprocessor itself must do: the whole frame to the crop's scale), the
preprocessor, and the plain formula with full-size temporaries (the way it used
to be written). Each round calls the resize and one contender alternately,
call by call, timing each call alone; a round's figure is the median per-call
time of each, and the contender's ratio to the resize of the same round. The
result is the median over rounds of those paired ratios with min-max and
quartiles: on a shared machine a preempted call lands in the tail of one
contender's calls and the per-call medians ignore it, and calls microseconds
apart see the same load. The load average is printed beside the figures.

    python benchmarks/preprocess.py [--quick] [--json] [--rounds N] [--calls N]
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


def _round(fns: dict[str, Callable[[], object]], n: int) -> dict[str, float]:
    """Median us per call of each contender over ``n`` interleaved calls of each."""
    names = list(fns)
    times: dict[str, list[int]] = {k: [] for k in names}
    clock = time.perf_counter_ns
    for i in range(n):
        for k in names[i % len(names):] + names[:i % len(names)]:
            fn = fns[k]
            t0 = clock()
            fn()
            times[k].append(clock() - t0)
    return {k: statistics.median(v) / 1000 for k, v in times.items()}


def _spread(xs: list[float]) -> dict[str, float]:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return {"median": statistics.median(xs), "q1": q[0], "q3": q[2], "min": min(xs), "max": max(xs)}


def main() -> None:
    from test_preprocess import reference  # the plain formula the tests hold the preprocessor to

    from edgeprobe.agent.backends.preprocess import Preprocessor
    from edgeprobe.agent.backends.resize import FrameResizer
    from edgeprobe.agent.config import PreprocessConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--calls", type=int, help="calls of each contender per round")
    args = ap.parse_args()
    rounds, n = (5, 100) if args.quick else (15, 300)
    rounds, n = args.rounds or rounds, args.calls or n
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
    summary: dict[str, object] = {"frame": list(img.shape), "rounds": rounds, "calls_per_round": n, "goal": GOAL,
                                  "opencv_threads": cv2.getNumThreads(), "loadavg_before": list(os.getloadavg())}
    for name, (cfg, layout, dtype, quant) in cases.items():
        pre = Preprocessor(cfg, 224, 224, 3, layout, dtype, quantization=quant)
        assert np.array_equal(pre(img), reference(cfg, 224, 224, 3, layout, dtype, quant, img))
        resize = partial(cv2.resize, img, size, interpolation=cv2.INTER_LINEAR)
        part = FrameResizer(img.shape, img.dtype, 224, 224, cfg.resize).plan
        contenders: dict[str, Callable[[], object]] = {
            "preprocessor": partial(pre, img), "plain_formula": partial(reference, cfg, 224, 224, 3, layout, dtype,
                                                                        quant, img)}
        if part.part is not None:  # what the preprocessor's own resize costs: only the part its crop keeps
            contenders["resize_of_the_part"] = partial(cv2.resize, img[:part.part[0], :part.part[1]], None,
                                                       fx=part.fx, fy=part.fy, interpolation=cv2.INTER_LINEAR)
        us: dict[str, list[float]] = {"resize": [], **{k: [] for k in contenders}}
        ratios: dict[str, list[float]] = {k: [] for k in contenders}
        for _ in range(rounds):
            # each contender interleaved with the resize alone, never with the other: the plain formula's
            # frame-sized temporaries would evict the preprocessor's buffers and move glibc's mmap threshold
            for k, fn in contenders.items():
                t = _round({"resize": resize, k: fn}, n)
                ratios[k].append(t[k] / t["resize"])
                us[k].append(t[k])
                if k == "preprocessor":
                    us["resize"].append(t["resize"])
        summary[name] = {
            "us_median": {k: statistics.median(v) for k, v in us.items()},
            "ratio_to_resize": {k: _spread(v) for k, v in ratios.items()},
            "bit_identical": True,
            "resized_part": list(part.part) if part.part else None,
        }
        if part.part is not None:
            summary[name]["preprocessor_over_its_own_resize"] = _spread(  # type: ignore[index]
                [a / b for a, b in zip(ratios["preprocessor"], ratios["resize_of_the_part"], strict=True)])
        if not args.json:
            r = summary[name]["ratio_to_resize"]  # type: ignore[index]
            print(f"{name}: resize {statistics.median(us['resize']):.0f} us, preprocessor "
                  f"{statistics.median(us['preprocessor']):.0f} us = x{r['preprocessor']['median']:.2f} of the resize "
                  f"[{r['preprocessor']['min']:.2f}-{r['preprocessor']['max']:.2f}] (goal <= {GOAL}); plain formula "
                  f"x{r['plain_formula']['median']:.2f}; bit-identical", file=sys.stderr)
            if part.part is not None:
                own = summary[name]["preprocessor_over_its_own_resize"]  # type: ignore[index]
                print(f"  it resizes only the {part.part[1]}x{part.part[0]} part its crop keeps: that resize alone is "
                      f"x{r['resize_of_the_part']['median']:.2f} of the whole frame's, and the preprocessor "
                      f"x{own['median']:.2f} [{own['min']:.2f}-{own['max']:.2f}] of it", file=sys.stderr)
    summary["loadavg_after"] = list(os.getloadavg())
    if not args.json:
        print(f"load average before {summary['loadavg_before']}, after {summary['loadavg_after']} "
              f"on {os.cpu_count()} CPUs; OpenCV threads {cv2.getNumThreads()}", file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
