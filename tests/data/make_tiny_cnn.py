"""Regenerate tiny_cnn_*.tflite and tiny_cnn_weights.npz (needs tensorflow-cpu; not an edgeprobe dependency).

A small seeded CNN (two valid 3x3 stride-2 convolutions with ReLU, global average
pooling, a 4-way dense layer with softmax) exported twice by TensorFlow's own
converter: float32, and full-integer int8 (int8 input and output) calibrated on
real frames of OpenCV's vtest.avi. The weights go to an .npz so the tests can
build the same network as ONNX with onnx.helper and compare the two runtimes.

    python -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu==2.18.1 opencv-python-headless
    /tmp/tfvenv/bin/python tests/data/make_tiny_cnn.py ~/.cache/edgeprobe/assets/vtest.avi
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

SIZE = 96
HERE = Path(__file__).resolve().parent


def frames(video: str, n: int = 64) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(video)
    out = []
    while len(out) < n:
        ok, frame = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(cv2.resize(frame, (SIZE, SIZE)), cv2.COLOR_BGR2RGB)
        out.append(rgb.astype(np.float32) / 255.0)
    return np.stack(out)


def main() -> None:
    tf.keras.utils.set_random_seed(8)
    model = tf.keras.Sequential([
        tf.keras.Input((SIZE, SIZE, 3), batch_size=1),
        tf.keras.layers.Conv2D(16, 3, strides=2, padding="valid", activation="relu"),
        tf.keras.layers.Conv2D(32, 3, strides=2, padding="valid", activation="relu"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(4, activation="softmax"),
    ])
    c1, c2, dense = model.layers[0], model.layers[1], model.layers[3]
    np.savez(HERE / "tiny_cnn_weights.npz", conv1_w=c1.kernel.numpy(), conv1_b=c1.bias.numpy(),
             conv2_w=c2.kernel.numpy(), conv2_b=c2.bias.numpy(), dense_w=dense.kernel.numpy(),
             dense_b=dense.bias.numpy())
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (HERE / "tiny_cnn_float.tflite").write_bytes(conv.convert())
    calib = frames(sys.argv[1])

    def representative():  # type: ignore[no-untyped-def]
        for x in calib:
            yield [x[None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    (HERE / "tiny_cnn_int8.tflite").write_bytes(conv.convert())


if __name__ == "__main__":
    main()
