"""Save a small ONNX model built with onnx.helper (the ONNX recorder, segment and replay tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np


def save_model(directory: Path, name: str, nodes: Sequence, inits: Mapping[str, np.ndarray],
               outputs: Sequence[str], in_shape: Sequence[int], out_shapes: Mapping[str, Sequence[int]] | None = None,
               check: bool = False) -> Path:
    """One graph with input ``x`` of ``in_shape`` (float32), float initializers ``inits`` and
    ``outputs`` (shapes from ``out_shapes``, else unknown); opset 17, IR 8. Returns the path."""
    import onnx
    from onnx import TensorProto, helper

    tensors = [helper.make_tensor(n, TensorProto.FLOAT, a.shape, np.asarray(a, np.float32).ravel())
               for n, a in inits.items()]
    shapes = out_shapes or {}
    graph = helper.make_graph(
        list(nodes), name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes.get(o)) for o in outputs], tensors)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if check:
        onnx.checker.check_model(model)
    path = Path(directory) / f"{name}.onnx"
    onnx.save(model, str(path))
    return path
