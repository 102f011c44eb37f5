"""A model built with onnx.helper whose work scales with the number of chained MatMuls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def matmul_chain(path: Path, depth: int, size: int = 64, batch: int | str = 1,
                 input_shape: list[int | str] | None = None) -> Path:
    """x[batch, 3, size, size] -> ``depth`` MatMuls by size x size -> mean over H, W -> y[batch, 3] (3 'classes')."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    prev = "x"
    for i in range(depth):
        w = (rng.standard_normal((size, size)) / np.sqrt(size)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]))
        prev = f"h{i}"
    shape = input_shape or [batch, 3, size, size]
    if len(shape) == 4:
        nodes.append(helper.make_node("ReduceMean", [prev], ["y"], axes=[2, 3], keepdims=0))
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])
    else:
        nodes.append(helper.make_node("Identity", [prev], ["y"]))
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)
    graph = helper.make_graph(nodes, "matmul_chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
