"""Record the inputs of every 2-D Conv, Gemm and MatMul (fully connected) node of an ONNX model.

The model runs in onnxruntime without graph optimizations (``ORT_DISABLE_ALL``,
one thread, :func:`session_options`), so every node is computed as written,
nothing fused or folded, and every recorded tensor (each layer's input and
output) is appended to ``graph.output``. The cut model of
:mod:`else_dse.record.onnx_segments` runs with the same options, which makes
its unchanged runs bit for bit those of the whole model. Geometry comes from the node attributes and
the shapes the runtime produced on the first frame:

* ``pads`` (ONNX order ``top, left, bottom, right``) -> ``(top, bottom, left, right)``;
  ``auto_pad=SAME_UPPER`` is TF's ``SAME`` (odd pixel after), ``SAME_LOWER`` puts
  it before, ``VALID`` is zero padding; ``strides``, ``dilations``, ``group``.
* A Conv with ``group == C_in > 1`` is ``depthwise`` (``out = C_in * m``).
* ``Gemm`` (``transA=0``, constant B) and ``MatMul`` with a 2-D constant right
  operand and a ``(1, K)`` input are ``fc``; the input is stored as ``(K, 1, 1)``.

Frames are images ``(H, W, C)`` like for TFLite; they are transposed to NCHW
for the model. Nodes that look synaptic but are not handled (ConvTranspose, 1-D
or 3-D Conv, batched MatMul, ...) are listed in the attrs ``unhandled_ops``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..recording import Recording
from ..workload import GeometryError, Layer
from ._common import RecorderError, model_frames, progress, provenance, tf_same_padding
from .media import Preprocess

__all__ = ["record_onnx", "session_options", "model_input"]

_UNHANDLED = ("ConvTranspose", "ConvInteger", "QLinearConv", "QLinearMatMul", "MatMulInteger", "LSTM", "GRU", "RNN")


def session_options() -> Any:
    """onnxruntime options of every ONNX run here: no graph optimization, one thread, no profiling."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return so


def model_input(path: Path, graph: Any) -> tuple[str, list[int | None], tuple[int, int, int]]:
    """The single NCHW input of ``graph``: its name, declared shape and ``(H, W, C)``."""
    init_names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init_names]
    if len(inputs) != 1:
        raise RecorderError(f"{path}: the recorder needs a model with one input, got {[i.name for i in inputs]}")
    dims = inputs[0].type.tensor_type.shape.dim
    in_shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    if len(in_shape) != 4 or any(v is None for v in in_shape[1:]):
        raise RecorderError(f"{path}: the model input must be NCHW with fixed C, H, W, got {in_shape}")
    _, c, h, w = (int(v) if v is not None else 1 for v in in_shape)
    return inputs[0].name, in_shape, (h, w, c)


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _constants(graph: Any, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Shapes of the weights: initializers, Constant-node outputs, and tensors that nodes compute from
    those alone (e.g. ``ConstantOfShape``, ``Cast`` or ``DequantizeLinear`` of weights; shape as run)."""
    out = {init.name: tuple(int(d) for d in init.dims) for init in graph.initializer}
    const = set(out)
    for node in graph.node:
        if node.op_type == "Constant":
            const.update(node.output)
            for a in node.attribute:
                if a.name == "value":
                    out[node.output[0]] = tuple(int(d) for d in a.t.dims)
        elif node.output and all(t in const for t in node.input if t):
            const.update(node.output)
            out.update({t: tuple(shapes[t]) for t in node.output if t in shapes})
    return out


def _parse(graph: Any, shapes: Mapping[str, tuple[int, ...]]) -> tuple[list[tuple[Layer, str, dict]], list[str]]:
    """Layers from nodes; ``shapes`` are runtime shapes of the node inputs/outputs."""
    consts = _constants(graph, shapes)
    layers: list[tuple[Layer, str, dict]] = []
    unhandled: list[str] = []
    for index, node in enumerate(graph.node):
        op = node.op_type
        label = f"node {index} {op} {node.name!r}"
        if op in _UNHANDLED:
            unhandled.append(label)
            continue
        if op not in ("Conv", "Gemm", "MatMul"):
            continue
        at = _attrs(node)
        x, w, y = node.input[0], node.input[1], node.output[0]
        name = f"{'fc' if op != 'Conv' else 'conv'}_{len(layers):02d}"
        info: dict[str, Any] = {"onnx_op": op, "node_index": index, "node_name": node.name, "output_tensor": y}
        if x not in shapes:  # an initializer: no activation to record
            unhandled.append(f"{label} (its input {x!r} is a constant)")
            continue
        xs = shapes[x]
        try:
            if op == "Conv":
                if w not in consts or len(consts[w]) != 4:
                    unhandled.append(f"{label} (needs a constant 4-D weight)")
                    continue
                if len(xs) != 4 or xs[0] != 1:
                    raise RecorderError(f"layer {name!r} ({label}): input must be NCHW with batch 1, got {xs}")
                co, ci_g, kh, kw = consts[w]
                _, c, h, wd = xs
                kh, kw = at.get("kernel_shape", (kh, kw))
                sh, sw = at.get("strides", (1, 1))
                dh, dw = at.get("dilations", (1, 1))
                g = int(at.get("group", 1))
                auto = at.get("auto_pad", "NOTSET")
                if auto in ("SAME_UPPER", "SAME_LOWER"):
                    (t, b), (le, r) = tf_same_padding(h, kh, sh, dh), tf_same_padding(wd, kw, sw, dw)
                    if auto == "SAME_LOWER":
                        t, b, le, r = b, t, r, le
                elif auto == "VALID":
                    t = b = le = r = 0
                else:
                    t, le, b, r = at.get("pads", (0, 0, 0, 0))
                if ci_g * g != c:
                    raise RecorderError(f"layer {name!r} ({label}): weights {consts[w]} with group={g} "
                                        f"do not fit {c} input channels")
                kind = "depthwise" if g == c and c > 1 else "conv"
                name = f"{kind}_{len(layers):02d}"
                info.update({"weights_shape": list(consts[w]), "auto_pad": auto})
                layer = Layer(name, x, kind, c, co, kernel=(kh, kw), stride=(sh, sw), padding=(t, b, le, r),
                              dilation=(dh, dw), groups=g, input_shape=(c, h, wd))
            else:
                if op == "Gemm" and int(at.get("transA", 0)):
                    unhandled.append(f"{label} (transA=1)")
                    continue
                if w not in consts or len(consts[w]) != 2 or len(xs) != 2 or xs[0] != 1:
                    unhandled.append(f"{label} (needs input (1, K) and a constant 2-D weight; input {xs})")
                    continue
                k_, n_ = consts[w]
                if op == "Gemm" and int(at.get("transB", 0)):
                    k_, n_ = n_, k_
                if k_ != xs[1]:
                    raise RecorderError(f"layer {name!r} ({label}): weight {consts[w]} does not fit input {xs}")
                info["weights_shape"] = list(consts[w])
                layer = Layer(name, x, "fc", k_, n_, input_shape=(k_, 1, 1))
        except GeometryError as exc:
            raise RecorderError(f"{label}: {exc}") from exc
        layers.append((layer, y, info))
    return layers, unhandled


def _check(layer: Layer, label: str, got: tuple[int, ...]) -> None:
    co, ho, wo = layer.output_shape  # type: ignore[misc]
    want = (1, co) if layer.op == "fc" else (1, co, ho, wo)
    if tuple(got) != want:
        raise RecorderError(f"layer {layer.name!r} ({label}): computed output shape {want} but the runtime "
                            f"produced {tuple(got)} (padding {layer.padding}, stride {layer.stride}, "
                            f"dilation {layer.dilation})")


def record_onnx(model_path: str | Path, frames: Iterable[Any], *,
                value_range: tuple[float, float] = (0.0, 1.0), progress_bar: bool = True,
                attrs: Mapping[str, Any] | None = None, frame_labels: Sequence[str] | None = None) -> Recording:
    """Run an ONNX model on ``frames`` and record the input of each Conv/Gemm/MatMul node."""
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RecorderError("recording ONNX models needs onnx and onnxruntime "
                            "(pip install 'else-dse[record]')") from exc
    path = Path(model_path)
    model = onnx.load(str(path))
    graph = model.graph
    init_names = {i.name for i in graph.initializer}
    in_name, in_shape, (h, w, c) = model_input(path, graph)

    # every input/output of a candidate node becomes a graph output (types from shape inference)
    inferred = onnx.shape_inference.infer_shapes(model)
    elem = {vi.name: vi.type.tensor_type.elem_type for vi in
            list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input)}
    wanted: list[str] = []
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul"):
            for t in (node.input[0], node.input[1], node.output[0]):  # input, weights (if computed), output
                if t not in init_names and t != in_name and t not in wanted:
                    wanted.append(t)
    existing = {o.name for o in graph.output}
    for t in wanted:
        if t not in existing:
            graph.output.append(onnx.helper.make_tensor_value_info(t, elem.get(t, onnx.TensorProto.FLOAT), None))
    sess = ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]

    parsed: list[tuple[Layer, str, dict]] | None = None
    unhandled: list[str] = []
    stacks: dict[str, list[np.ndarray]] = {}
    total = len(frames) if hasattr(frames, "__len__") else None  # type: ignore[arg-type]
    for x in progress(model_frames(frames, h, w, c, value_range), total, f"record {path.name}", progress_bar):
        feed = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        values = dict(zip(out_names, sess.run(out_names, {in_name: feed})))
        values[in_name] = feed
        if parsed is None:
            parsed, unhandled = _parse(graph, {k: tuple(v.shape) for k, v in values.items()})
            if not parsed:
                raise RecorderError(f"{path}: no Conv, Gemm or MatMul node found")
            for layer, y, info in parsed:
                _check(layer, f"node {info['node_index']} {info['onnx_op']}", values[y].shape)
            stacks = {layer.input: [] for layer, _, _ in parsed}
        for t in stacks:
            stacks[t].append(np.asarray(values[t], dtype=np.float32).reshape(
                next(layer.input_shape for layer, _, _ in parsed if layer.input == t)))
    if parsed is None:
        raise RecorderError(f"{path}: no frames given")
    arrays = {t: np.stack(v) for t, v in stacks.items()}
    meta = provenance(path, "else_dse.record.onnx", ("onnxruntime", "onnx"), Preprocess(h, w, value_range).describe(),
                      {layer.name: info for layer, _, info in parsed}, unhandled)
    meta["model_input"] = f"{in_name} NCHW {in_shape}"
    meta.update(attrs or {})
    return Recording.from_arrays([layer for layer, _, _ in parsed], arrays, attrs=meta, frame_labels=frame_labels)
