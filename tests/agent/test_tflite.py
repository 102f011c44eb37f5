"""LiteRT backend on real TFLite models: MediaPipe's face detector and person segmenter on a real
photo, a TensorFlow-converted int8 model, and the same network in ONNX Runtime and LiteRT."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprobe.agent.backends import load_backend
from edgeprobe.agent.backends.preprocess import Preprocessor
from edgeprobe.agent.backends.tflite import TFLiteBackend, dequantize, quantize
from edgeprobe.agent.config import ModelConfig, PreprocessConfig
from edgeprobe.harness.errors import ModelError
from edgeprobe.harness.tasks import make_adapter
from edgeprobe.harness.tasks.base import Detections, SegmentationMask
from edgeprobe.harness.tasks.detection import box_iou
from tests.conftest import asset

DATA = Path(__file__).resolve().parents[1] / "data"
#: MediaPipe models take RGB in [-1, 1] (face) or [0, 1] (selfie segmentation)
FACE_PRE = PreprocessConfig(color="rgb", scale=2 / 255, mean=[1.0, 1.0, 1.0])

# messi5.jpg (OpenCV sample, 548x342): a footballer facing the camera. The crop below holds his
# face large enough for the short-range detector; the face box was marked by eye on the crop,
# in crop pixels (x1, y1, x2, y2), viewed at 3x.
FACE_CROP = (slice(0, 171), slice(150, 321))
FACE_BOX_PX = (75, 100, 106, 131)
# A square crop around the whole player for the person segmenter.
PERSON_CROP = (slice(0, 342), slice(100, 442))


def _imread(name: str) -> np.ndarray:
    image = cv2.imread(str(asset(name)))
    assert image is not None, name
    return image


def _backend(name: str, pre: PreprocessConfig | None = None, threads: int = 1) -> TFLiteBackend:
    backend = load_backend(ModelConfig(path=str(asset(name)), threads=threads, preprocess=pre or PreprocessConfig()))
    assert isinstance(backend, TFLiteBackend)
    return backend


def _detect(backend: TFLiteBackend, image: np.ndarray) -> Detections:
    adapter = make_adapter("ssd_anchors", backend.output_specs)
    return adapter.decode(backend.infer(backend.preprocess(image)))  # type: ignore[no-any-return, unused-ignore]


def test_backend_reports_the_input_spec_and_stages() -> None:
    b = _backend("face_detection_short_range.tflite", FACE_PRE)
    d = b.describe()
    assert d["runtime"].startswith(("ai-edge-litert ", "tflite-runtime "))
    assert d["input"]["layout"] == "NHWC" and (d["input"]["height"], d["input"]["width"]) == (128, 128)
    assert d["input"]["quantization"] is None and d["input"]["dtype"] == "float32"
    assert [o.shape for o in b.output_specs] == [(1, 896, 16), (1, 896, 1)]
    assert b.load_ns > 0 and len(b.sha256) == 64
    x = b.preprocess(_imread("baboon.jpg"))
    assert x.shape == (1, 128, 128, 3) and x.dtype == np.float32
    assert float(x.min()) >= -1.0 and float(x.max()) <= 1.0 and float(x.min()) < 0 < float(x.max())


def test_face_detector_finds_the_face_where_it_is() -> None:
    b = _backend("face_detection_short_range.tflite", FACE_PRE)
    crop = _imread("messi5.jpg")[FACE_CROP]
    dets = _detect(b, crop)
    assert len(dets) >= 1
    h, w = crop.shape[:2]
    truth = np.array([[FACE_BOX_PX[0] / w, FACE_BOX_PX[1] / h, FACE_BOX_PX[2] / w, FACE_BOX_PX[3] / h]])
    best = int(np.argmax(dets.scores))
    assert dets.scores[best] > 0.8
    assert box_iou(dets.boxes[best:best + 1], truth)[0, 0] > 0.6, dets
    # Mirrored frame -> mirrored box (the hflip relation the agent checks).
    flipped = _detect(b, crop[:, ::-1])
    fb = flipped.boxes[int(np.argmax(flipped.scores))]
    mirrored = np.array([[1 - fb[2], fb[1], 1 - fb[0], fb[3]]])
    assert box_iou(mirrored, truth)[0, 0] > 0.6


def test_face_detector_finds_no_face_in_a_face_free_image() -> None:
    b = _backend("face_detection_short_range.tflite", FACE_PRE)
    assert len(_detect(b, _imread("fruits.jpg"))) == 0


def test_selfie_segmentation_covers_the_person() -> None:
    b = _backend("selfie_segmentation.tflite", PreprocessConfig(color="rgb"))
    crop = _imread("messi5.jpg")[PERSON_CROP]
    adapter = make_adapter("segmentation", b.output_specs, layout="nhwc")
    mask = adapter.decode(b.infer(b.preprocess(crop)))
    assert isinstance(mask, SegmentationMask) and mask.labels.shape == (256, 256)
    person = mask.labels.astype(bool)
    s = 256 / crop.shape[0]
    # Face (from the detector test, in full-image pixels) and the shirt just below it are person...
    fx1, fy1 = int((FACE_BOX_PX[0] + 150 - 100) * s), int(FACE_BOX_PX[1] * s)
    fx2, fy2 = int((FACE_BOX_PX[2] + 150 - 100) * s), int(FACE_BOX_PX[3] * s)
    assert person[fy1:fy2, fx1:fx2].mean() > 0.8
    assert person[fy2 + 5:fy2 + 40, fx1:fx2].mean() > 0.8
    # ... the crowd in the top corners is not, and the person is a minority of the frame.
    assert person[:40, :40].mean() < 0.05 and person[:40, -40:].mean() < 0.05
    assert 0.05 < person.mean() < 0.5


def test_golden_outputs_recorded_on_the_reference_host() -> None:
    """Guards preprocessing, anchors and runtime upgrades; tolerances leave room for XNNPACK's kernels per CPU."""
    golden = np.load(DATA / "tflite_golden.npz")
    face = _backend("face_detection_short_range.tflite", FACE_PRE)
    img = _imread("messi5.jpg")
    logits = face.infer(face.preprocess(img[FACE_CROP]))[1].reshape(-1)
    np.testing.assert_allclose(logits, golden["face_logits"], atol=0.05)
    seg = _backend("selfie_segmentation.tflite", PreprocessConfig(color="rgb"))
    prob = seg.infer(seg.preprocess(img[PERSON_CROP]))[0][0, ::8, ::8, 0]
    np.testing.assert_allclose(prob, golden["selfie_prob_8x"], atol=0.02)


# --- the same network in ONNX Runtime and LiteRT; TensorFlow's int8 conversion ---------------------


def tiny_cnn_onnx(path: Path) -> Path:
    """The network of tests/data/tiny_cnn_float.tflite rebuilt from its weights as ONNX (NCHW)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.load(DATA / "tiny_cnn_weights.npz")
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(w["conv1_w"].transpose(3, 2, 0, 1)), "w1"),
        numpy_helper.from_array(w["conv1_b"], "b1"),
        numpy_helper.from_array(np.ascontiguousarray(w["conv2_w"].transpose(3, 2, 0, 1)), "w2"),
        numpy_helper.from_array(w["conv2_b"], "b2"),
        numpy_helper.from_array(w["dense_w"], "wd"),
        numpy_helper.from_array(w["dense_b"], "bd"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], strides=[2, 2]), helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], strides=[2, 2]), helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wd", "bd"], ["l"]), helper.make_node("Softmax", ["l"], ["probs"], axis=-1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 96, 96])
    y = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(nodes, "tiny_cnn", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _frames(video: Path, n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    out = []
    for i in range(n * 20):
        ok, frame = cap.read()
        if not ok:
            break
        if i % 20 == 0:
            out.append(frame)
    return out


def test_same_network_agrees_across_onnxruntime_and_litert(tmp_path: Path, vtest_video: Path) -> None:
    pre = PreprocessConfig(color="rgb")
    onnx_b = load_backend(ModelConfig(path=str(tiny_cnn_onnx(tmp_path / "tiny.onnx")), threads=1, preprocess=pre))
    tfl_b = load_backend(ModelConfig(path=str(DATA / "tiny_cnn_float.tflite"), threads=1, preprocess=pre))
    assert onnx_b.input_spec.layout == "NCHW" and tfl_b.input_spec.layout == "NHWC"
    for frame in _frames(vtest_video, 8):
        a = np.asarray(onnx_b.infer(onnx_b.preprocess(frame))[0])
        b = np.asarray(tfl_b.infer(tfl_b.preprocess(frame))[0])
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_int8_model_quantises_inputs_and_dequantises_outputs(vtest_video: Path) -> None:
    pre = PreprocessConfig(color="rgb")
    f32 = _backend_path(DATA / "tiny_cnn_float.tflite", pre)
    q8 = _backend_path(DATA / "tiny_cnn_int8.tflite", pre)
    spec = q8.input_spec
    assert spec.dtype == "int8" and spec.quantization is not None
    scale, zero = spec.quantization
    assert scale == pytest.approx(1 / 255, rel=1e-3) and zero == -128
    assert q8.output_specs[0].dtype == "float32"  # dequantised for the adapters
    out_scale = 1 / 256  # TFLite fixes int8 softmax outputs to this scale
    for frame in _frames(vtest_video, 8):
        x = q8.preprocess(frame)
        assert x.dtype == np.int8
        ref = np.asarray(f32.infer(f32.preprocess(frame))[0])
        got = np.asarray(q8.infer(x)[0])
        assert got.dtype == np.float32
        assert np.all(np.abs(got - ref) <= 4 * out_scale), (got, ref)


def test_int8_model_fed_float_frames_says_so() -> None:
    q8 = _backend_path(DATA / "tiny_cnn_int8.tflite", PreprocessConfig(color="rgb"))
    with pytest.raises(ModelError, match=r"takes int8 input \(quantised, scale 0.00392\d*, zero point -128\) but was "
                                         r"fed float32"):
        q8.infer(np.zeros((1, 96, 96, 3), np.float32))


def _backend_path(path: Path, pre: PreprocessConfig) -> TFLiteBackend:
    backend = load_backend(ModelConfig(path=str(path), threads=1, preprocess=pre))
    assert isinstance(backend, TFLiteBackend)
    return backend


def test_custom_op_model_names_the_op() -> None:
    with pytest.raises(ModelError, match="custom op Landmarks2TransformMatrix"):
        _backend("face_landmark_with_attention.tflite")


# --- quantisation arithmetic ---------------------------------------------------------------------------

scales = st.floats(min_value=1e-4, max_value=1.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(scale=scales, zero=st.integers(-128, 127), x=st.floats(-50, 50, allow_nan=False))
def test_quantise_dequantise_round_trip(scale: float, zero: int, x: float) -> None:
    q = quantize(np.array([x]), (scale, zero), np.dtype(np.int8))
    back = float(dequantize(q, (scale, zero))[0])
    lo, hi = (-128 - zero) * scale, (127 - zero) * scale
    if lo <= x <= hi:  # representable: within half a step (plus float32 rounding)
        assert abs(back - x) <= scale / 2 + 1e-5 * max(1.0, abs(x))
    else:  # saturates to the nearest end
        assert back == pytest.approx(lo if x < lo else hi, rel=1e-5, abs=1e-6)


@settings(max_examples=50, deadline=None)
@given(scale=scales, zero=st.integers(-128, 127), seed=st.integers(0, 2**31 - 1),
       dtype=st.sampled_from([np.int8, np.uint8]))
def test_preprocessor_quantises_like_tflite(scale: float, zero: int, seed: int, dtype: type) -> None:
    """The preprocessor's folded normalise+quantise equals normalising in float, then quantize()."""
    info = np.iinfo(dtype)
    zero = int(np.clip(zero, info.min, info.max))
    cfg = PreprocessConfig(color="rgb", scale=1 / 255, mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])
    img = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    pre = Preprocessor(cfg, 8, 8, 3, "NHWC", np.dtype(dtype), quantization=(scale, zero))
    got = pre(img)
    real = (cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255 - np.array(cfg.mean, np.float32)) \
        / np.array(cfg.std, np.float32)
    want = quantize(real, (scale, zero), np.dtype(dtype))[None]
    assert got.dtype == np.dtype(dtype)
    # One step apart at most: x*a+b and (x/255-mean)/std round differently on exact .5 ties.
    assert np.max(np.abs(got.astype(np.int32) - want.astype(np.int32))) <= 1
