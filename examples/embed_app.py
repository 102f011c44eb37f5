"""A small production-style app that embeds edgeprobe: its own OpenCV capture, ONNX Runtime session and loop.

It classifies frames of a video with the demo rotation model, the way an application would (the model, the
preprocessing and the loop are the app's, not edgeprobe's), and is instrumented with three lines:
``edgeprobe.attach``, ``probe.observe`` per frame and ``probe.close``.

    python examples/embed_app.py --frames 300 --no-broker --json

runs the app without and with the probe attached, in ``--pairs`` pairs (default 5) whose order alternates
(without first, then with first, ...). Each run is a fresh process: the run without the probe never imports
edgeprobe, so nothing of it (an idle SDK process, its imports) sits beside the reference. It prints the app's
own fps for both, the median of the pairs' with/without ratios with their spread and every pair's (a shared
machine's load drifts between runs seconds apart; pairs cancel most of it), CPU time per frame (the app's
process, all threads; the SDK's own process is apart), the load average, and the messages spooled per kind.
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

import cv2
import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def preprocess(frame: np.ndarray, size: int) -> np.ndarray:
    """Centre crop to a square, resize, normalise: the app's own preprocessing."""
    h, w = frame.shape[:2]
    s = min(h, w)
    crop = frame[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    x = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    return ((x - MEAN) / STD).transpose(2, 0, 1)[None]


def run_app(video: str, model: str, frames: int, probe: Any = None, threads: int = 1) -> dict[str, Any]:
    """The app's loop: read, preprocess, infer, act on the answer; observe() when a probe is attached."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    size = int(session.get_inputs()[0].shape[2])
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {video}")
    counts = np.zeros(4, np.int64)
    done = 0
    cpu_start = time.process_time()
    t_start = time.perf_counter()
    observe_ns = []
    while done < frames:
        ok, frame = cap.read()
        if not ok:  # loop the clip
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        t0 = time.perf_counter_ns()
        x = preprocess(frame, size)
        t1 = time.perf_counter_ns()
        outputs = session.run(None, {name: x})
        t2 = time.perf_counter_ns()
        counts[int(np.argmax(outputs[0]))] += 1  # the app acts on its answer
        t3 = time.perf_counter_ns()
        if probe is not None:
            probe.observe(frame, outputs, timings={"preprocess": t1 - t0, "inference": t2 - t1,
                                                   "postprocess": t3 - t2})
            observe_ns.append(time.perf_counter_ns() - t3)
        done += 1
    wall = time.perf_counter() - t_start
    cpu = time.process_time() - cpu_start
    cap.release()
    out: dict[str, Any] = {"frames": done, "wall_s": round(wall, 3), "fps": round(done / wall, 2),
                           "cpu_ms_per_frame": round(cpu * 1000 / done, 3), "answers": counts.tolist()}
    if observe_ns:
        ns = np.asarray(observe_ns, np.float64)
        out["observe_us"] = {"p50": round(float(np.median(ns)) / 1e3, 1),
                             "p99": round(float(np.percentile(ns, 99)) / 1e3, 1)}
    return out


def run_child(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """One measured run in this process (``--run``): the app alone, or the app with the probe attached."""
    if args.run == "without":
        print(json.dumps({"run": run_app(args.video, args.model, args.frames)}))
        return 0
    import edgeprobe
    from edgeprobe.harness.errors import EdgeprobeError

    try:
        probe = edgeprobe.attach(args.config, overrides)
    except EdgeprobeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = run_app(args.video, str(probe.cfg.model.path), args.frames, probe)
    probe.close()
    print(json.dumps({"run": run, "probe": probe.stats()}))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--config", default=str(HERE / "embed-agent.yaml"))
    ap.add_argument("--video", default=None, help="video file (default: the demo clip in the asset cache)")
    ap.add_argument("--no-broker", action="store_true", help="spool only (no MQTT)")
    ap.add_argument("--broker", default=None, help="HOST:PORT of the MQTT broker (default: the config's)")
    ap.add_argument("--spool", default=None, help="spool file (default: a temporary one)")
    ap.add_argument("--probe-only", action="store_true", help="skip the run without the probe")
    ap.add_argument("--no-probing", action="store_true",
                    help="attach with probing off (latency, health and drift only): what attaching costs by itself")
    ap.add_argument("--pairs", type=int, default=5, help="runs without and with the probe, order alternating")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--run", choices=("without", "with"), help=argparse.SUPPRESS)  # one run, in a child
    ap.add_argument("--model", help=argparse.SUPPRESS)  # (the run without the probe does not read the config)
    args = ap.parse_args(argv)
    if args.frames < 1:
        ap.error("--frames must be at least 1")
    if args.pairs < 1:
        ap.error("--pairs must be at least 1")

    if args.run is not None:
        return run_child(args, json.loads(os.environ["EMBED_APP_OVERRIDES"]))

    from edgeprobe.agent.config import load_config
    from edgeprobe.cli.assets import cache_dir
    from edgeprobe.harness.errors import EdgeprobeError

    os.environ.setdefault("EDGEPROBE_ASSETS", str(cache_dir()))
    video = args.video or str(cache_dir() / "vtest.avi")
    tmp = tempfile.TemporaryDirectory()
    spool = args.spool or str(Path(tmp.name) / "embed-spool.db")
    overrides: dict[str, Any] = {"spool.path": spool}
    if args.no_probing:
        overrides["probe.enabled"] = False
    if args.no_broker:
        overrides["broker.enabled"] = False
    elif args.broker:
        host, _, port = args.broker.rpartition(":")
        overrides.update({"broker.host": host, "broker.port": int(port)})
    try:
        model = str(load_config(args.config, overrides).config.model.path)
    except EdgeprobeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    base = [sys.executable, str(Path(__file__).resolve()), "--frames", str(args.frames), "--config", args.config,
            "--video", video, "--model", model]
    env = {**os.environ, "EMBED_APP_OVERRIDES": json.dumps(overrides)}
    result: dict[str, Any] = {"loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    pairs: list[dict[str, Any]] = []
    for i in range(1 if args.probe_only else args.pairs):
        pair: dict[str, Any] = {}
        for attached in ((True,) if args.probe_only else (False, True) if i % 2 == 0 else (True, False)):
            key = "with_probe" if attached else "without_probe"
            child = subprocess.run([*base, "--run", "with" if attached else "without"], env=env,
                                   capture_output=True, text=True)
            if child.returncode != 0:
                sys.stderr.write(child.stderr)
                return child.returncode
            sys.stderr.write(child.stderr)  # the SDK's one-line warnings, if any
            out = json.loads(child.stdout)
            pair[key] = out["run"]
            if attached:
                result["probe"] = out["probe"]  # the last run's counters and messages
        pairs.append(pair)
    for key in ("without_probe", "with_probe"):
        if key in pairs[0]:
            runs = [p[key] for p in pairs]
            result[key] = {**runs[-1], "fps": statistics.median(r["fps"] for r in runs),
                           "cpu_ms_per_frame": statistics.median(r["cpu_ms_per_frame"] for r in runs),
                           "fps_runs": [r["fps"] for r in runs]}
    if "without_probe" in result:
        ratios = [p["with_probe"]["fps"] / p["without_probe"]["fps"] for p in pairs]
        result["fps_ratio"] = round(statistics.median(ratios), 4)
        result["fps_ratio_spread"] = {"min": round(min(ratios), 4), "max": round(max(ratios), 4), "pairs": len(ratios)}
        result["fps_ratios"] = [round(r, 4) for r in ratios]  # every pair's, to pool runs
        result["cpu_ratio"] = round(statistics.median(p["with_probe"]["cpu_ms_per_frame"]
                                                      / p["without_probe"]["cpu_ms_per_frame"] for p in pairs), 4)
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        w = result.get("without_probe", {}).get("fps")
        print(f"app fps without probe: {w}  with probe: {result['with_probe']['fps']} (medians over {len(pairs)} "
              f"runs each); paired ratio x{result.get('fps_ratio')} {result.get('fps_ratio_spread', '')}; load "
              f"average {result['loadavg_before']} -> {result['loadavg_after']}")
        print("messages spooled:", ", ".join(f"{k} {v}" for k, v in sorted(result["probe"]["messages"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
