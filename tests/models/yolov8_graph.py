"""A small ONNX graph with the exact output layout of a YOLOv8 / YOLO11 detection export.

No PyPI package in the registry lists ships a YOLOv8-family ``.onnx`` in its
wheel (the ones that mention YOLOv8 download weights at run time, which the
tests may not do), so this graph stands in for one. It keeps what the
``yolov8`` layout depends on: input ``images`` (1, 3, H, W) RGB in [0, 1];
one output ``output0`` (1, 4 + C, N) with N = (H/8)(W/8) + (H/16)(W/16) +
(H/32)(W/32) columns in the order of the strides-8/16/32 heads, rows
``cx, cy, w, h`` in input pixels then C sigmoid class scores, no objectness.

What it "detects" is simple and checkable: class 0 is a bright patch (the
mean brightness of each cell's stride-sized window through a steep sigmoid),
class 1 never fires. Boxes are each cell's window, twice the stride wide.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STRIDES = (8, 16, 32)


def build(path: Path, size: int = 320, classes: int = 2) -> Path:
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    nodes.append(helper.make_node("ReduceMean", ["images", "axes_c"], ["grey"], keepdims=1))
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "axes_c"))
    boxes = []
    flat_scores = []
    for s in STRIDES:
        g = size // s
        nodes.append(helper.make_node("AveragePool", ["grey"], [f"pool{s}"], kernel_shape=[s, s], strides=[s, s]))
        nodes.append(helper.make_node("Reshape", [f"pool{s}", "flat_shape"], [f"flat{s}"]))
        flat_scores.append(f"flat{s}")
        yy, xx = np.mgrid[0:g, 0:g]
        cx = (xx.ravel() + 0.5) * s
        cy = (yy.ravel() + 0.5) * s
        boxes.append(np.stack([cx, cy, np.full_like(cx, 2.0 * s), np.full_like(cy, 2.0 * s)]))
    inits.append(numpy_helper.from_array(np.array([1, 1, -1], np.int64), "flat_shape"))
    n = sum((size // s) ** 2 for s in STRIDES)
    inits.append(numpy_helper.from_array(np.concatenate(boxes, axis=1)[None].astype(np.float32), "boxes"))
    nodes.append(helper.make_node("Concat", flat_scores, ["brightness"], axis=2))  # (1, 1, N)
    # class 0: sigmoid(24 * (brightness - 0.6)); other classes: sigmoid(-8), never above a 0.25 score threshold
    gains = np.array([24.0] + [0.0] * (classes - 1), np.float32).reshape(1, classes, 1)
    biases = np.array([-24.0 * 0.6] + [-8.0] * (classes - 1), np.float32).reshape(1, classes, 1)
    inits += [numpy_helper.from_array(gains, "gains"), numpy_helper.from_array(biases, "biases")]
    nodes.append(helper.make_node("Mul", ["brightness", "gains"], ["scaled"]))
    nodes.append(helper.make_node("Add", ["scaled", "biases"], ["logits"]))
    nodes.append(helper.make_node("Sigmoid", ["logits"], ["scores"]))
    nodes.append(helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1))
    graph = helper.make_graph(
        nodes, "yolov8_layout",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + classes, n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    # Ultralytics exports carry their class names and stride in metadata_props like this.
    for key, value in (("names", str({i: f"class{i}" for i in range(classes)})), ("stride", "32"),
                       ("task", "detect")):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path
