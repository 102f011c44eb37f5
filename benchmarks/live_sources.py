"""Outage detection, reconnect time and frames dropped under a slow model, on a real MJPEG stream.

A 25 fps MJPEG server (real vtest.avi frames) on 127.0.0.1 is read by a LiveSource while the
consumer sleeps to emulate a model slower than the camera; then the server is killed and
restarted. Prints medians over rounds; ``--json`` prints one summary line, ``--quick`` one round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgeprobe.agent.sources import LiveSource, open_source
from edgeprobe.cli.assets import asset_path
from tests.streams.helpers import free_port, start_mjpeg, stop


def one_round(video: Path, model_s: float, read_timeout_s: float) -> dict[str, float]:
    port = free_port()
    server = start_mjpeg(video, port, "--fps", "25")
    events: list[dict[str, object]] = []
    src = open_source(f"http://127.0.0.1:{port}/video", on_event=events.append, read_timeout_s=read_timeout_s,
                      open_timeout_s=1.0, backoff_initial_s=0.1, backoff_max_s=1.0)
    assert isinstance(src, LiveSource)
    deadline = time.monotonic() + 60
    src.on_idle = lambda: time.monotonic() > deadline
    it = iter(src)
    next(it)
    d0, f0 = src.dropped, src.frames_received
    t0 = time.monotonic()
    consumed = 0
    while time.monotonic() - t0 < 4.0:
        next(it)
        time.sleep(model_s)
        consumed += 1
    dropped, received = src.dropped - d0, src.frames_received - f0
    t_kill = time.perf_counter()
    stop(server)
    while not src.offline:
        time.sleep(0.01)
    detect_s = time.perf_counter() - t_kill
    time.sleep(1.0)
    server = start_mjpeg(video, port, "--fps", "25")
    t_back = time.perf_counter()
    while src.offline:  # back once a new frame arrived (not a stale one left in the slot)
        time.sleep(0.01)
    resume_s = time.perf_counter() - t_back
    src.close()
    stop(server)
    return {"consumed": consumed, "received": received, "dropped": dropped, "dropped_share": dropped / received,
            "detect_s": detect_s, "resume_s": resume_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model-ms", type=float, default=100.0, help="emulated model time per frame")
    ap.add_argument("--read-timeout", type=float, default=2.0)
    args = ap.parse_args()
    video = asset_path("vtest.avi")
    rounds = [one_round(video, args.model_ms / 1000, args.read_timeout) for _ in range(1 if args.quick else 3)]
    summary = {k: round(statistics.median(r[k] for r in rounds), 3) for k in rounds[0]}
    summary.update({"rounds": len(rounds), "camera_fps": 25, "model_ms": args.model_ms,
                    "read_timeout_s": args.read_timeout})
    if args.json:
        print(json.dumps(summary))
    else:
        for k, v in summary.items():
            print(f"{k:>16}: {v}")


if __name__ == "__main__":
    main()
