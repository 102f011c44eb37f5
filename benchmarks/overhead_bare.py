"""The bare loop overhead.py compares the agent with: it never imports edgeprobe.

cv2 decode -> centre crop + normalise (written here, sharing no code with
edgeprobe's preprocessor: resize, crop, then one multiply-add per channel
plane into a reused NCHW buffer, what a careful hand-written loop does) ->
ONNX Runtime with the same thread count -> argmax. Run as its own process so
nothing the agent does to the interpreter or the allocator can touch it.

    python benchmarks/overhead_bare.py MODEL VIDEO --threads 2 --frames 300 --skip 30 \
        --scale 0.0039 --mean 0.485 0.456 0.406 --std 0.229 0.224 0.225 [--rgb]

Prints one JSON line: wall and CPU (user + system, all threads) ms per frame
over the frames after ``--skip``, minor page faults per frame over the same
frames, and peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort


def vm_hwm_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("video")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--frames", type=int, default=300, help="timed frames")
    ap.add_argument("--skip", type=int, default=30, help="untimed frames first (warm-up)")
    ap.add_argument("--scale", type=float, default=1 / 255)
    ap.add_argument("--mean", type=float, nargs=3, default=[0.0, 0.0, 0.0])
    ap.add_argument("--std", type=float, nargs=3, default=[1.0, 1.0, 1.0])
    ap.add_argument("--rgb", action="store_true", help="the model reads RGB (default BGR)")
    a = ap.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    h, w = int(inp.shape[2]), int(inp.shape[3])  # NCHW float input (the demo model's)
    gain = [np.float32(a.scale / s) for s in a.std]
    bias = [np.float32(-m / s) for m, s in zip(a.mean, a.std, strict=True)]
    blob = np.empty((1, 3, h, w), np.float32)

    def prepare(img: np.ndarray) -> np.ndarray:
        ih, iw = img.shape[:2]
        s = max(h / ih, w / iw)  # cover the input, then cut the centre
        nh, nw = max(h, round(ih * s)), max(w, round(iw * s))
        big = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
        y, x = (nh - h) // 2, (nw - w) // 2
        crop = big[y : y + h, x : x + w]
        if a.rgb:
            crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        for c in range(3):
            np.multiply(crop[:, :, c], gain[c], out=blob[0, c])
            blob[0, c] += bias[c]
        return blob
    cap = cv2.VideoCapture(a.video)
    total = a.skip + a.frames
    n = 0
    t0 = 0.0
    u0 = resource.getrusage(resource.RUSAGE_SELF)
    labels = 0
    while n < total:
        if n == a.skip:
            t0, u0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        ok, img = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            continue
        out = sess.run(None, {inp.name: prepare(img)})
        labels += int(np.argmax(out[0]))
        n += 1
    wall = time.perf_counter() - t0
    u1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime
    print(json.dumps({"ms_per_frame": wall * 1000 / a.frames, "cpu_ms_per_frame": cpu * 1000 / a.frames,
                      "minflt_per_frame": (u1.ru_minflt - u0.ru_minflt) / a.frames,
                      "peak_rss_mb": vm_hwm_mb(), "label_sum": labels,
                      "edgeprobe_imported": any(m.startswith("edgeprobe") for m in sys.modules)}))


if __name__ == "__main__":
    main()
