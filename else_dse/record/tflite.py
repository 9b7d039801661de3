"""Record the inputs of every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED op of a TFLite model.

The flatbuffer is parsed with ``ai_edge_litert.schema_py_generated`` for the
geometry (weights shape, stride, dilation, padding, depth multiplier, fused
activation); the model runs in ``ai_edge_litert``'s interpreter with every
tensor preserved and the default (XNNPACK) delegate off, so each op's input
tensor can be read after ``invoke()``.

Geometry rules:

* ``SAME`` padding is resolved exactly as TF does (:func:`tf_same_padding`),
  ``VALID`` is zero padding.
* A zero ``PAD`` op that only pads y and x and feeds a conv/depthwise op is
  folded into the layer's padding (``fold_pad=True``, default): the recorded
  tensor is the PAD's input, so the explicit zero border becomes implicit
  padding, as hardware would see it. ``layer_info`` notes the folded amounts.
* A depthwise conv with multiplier ``m`` has ``groups = C_in`` and
  ``out_channels = C_in * m``; a CONV_2D whose weights have fewer input
  channels than the tensor is a grouped conv (``groups = C_in / weights_in``).
* A FULLY_CONNECTED input ``(1, N)`` is stored as ``(N, 1, 1)``; a 4-D NHWC
  input as ``(C, H, W)`` (its flattening order differs from TFLite's NHWC
  order, which does not change any event count because every input element of
  an fc layer has fan-out ``C_out``).

Every layer's computed output shape is compared with the tensor the runtime
produced; a mismatch raises :class:`RecorderError` naming the layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..recording import Recording
from ..workload import GeometryError, Layer
from ._common import RecorderError, model_frames, progress, provenance, tf_same_padding
from .media import Preprocess

__all__ = ["TFLiteLayer", "parse_tflite", "record_tflite"]

_SYNAPTIC = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "FULLY_CONNECTED": "fc"}
# synaptic-looking ops the recorder does not turn into layers (reported in attrs "unhandled_ops")
_UNHANDLED = ("TRANSPOSE_CONV", "CONV_3D", "CONV_3D_TRANSPOSE", "BATCH_MATMUL", "EMBEDDING_LOOKUP",
              "UNIDIRECTIONAL_SEQUENCE_LSTM", "LSTM", "SVDF", "RNN")


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RecorderError("recording TFLite models needs ai-edge-litert "
                            "(pip install 'else-dse[record]')") from exc
    return schema


def _names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True)
class TFLiteLayer:
    """A parsed synaptic op: its :class:`Layer`, the tensor to read, the output to check, and notes."""

    layer: Layer
    read_index: int
    output_index: int
    info: dict[str, Any]


def _const(model: Any, tensor: Any, schema: Any) -> np.ndarray | None:
    buf = model.buffers[tensor.buffer] if tensor.buffer < len(model.buffers) else None
    if buf is None or buf.data is None or len(buf.data) == 0:
        return None
    dtype = {schema.TensorType.INT32: np.int32, schema.TensorType.INT64: np.int64}.get(tensor.type)
    if dtype is None:
        return None
    return np.frombuffer(bytes(np.asarray(buf.data, dtype=np.uint8)), dtype=dtype).reshape(tuple(tensor.shape))


def _tensor_name(t: Any) -> str:
    name = t.name.decode() if isinstance(t.name, bytes) else str(t.name or "")
    return name


class _Flat:
    """Subgraph 0 of an unpacked flatbuffer with the lookups the parser needs."""

    def __init__(self, model: Any, schema: Any) -> None:
        self.model, self.g, self.schema = model, model.subgraphs[0], schema
        self.op_names = _names(schema.BuiltinOperator)
        self.act_names = _names(schema.ActivationFunctionType)
        self.producer = {int(o): op for op in self.g.operators for o in op.outputs}
        self._short: dict[int, str] = {}

    def opname(self, op: Any) -> str:
        oc = self.model.operatorCodes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        if code == self.schema.BuiltinOperator.CUSTOM:
            custom = oc.customCode.decode() if isinstance(oc.customCode, bytes) else str(oc.customCode)
            return f"CUSTOM:{custom}"
        return self.op_names.get(code, f"op{code}")

    def act(self, opts: Any) -> str:
        return self.act_names.get(int(getattr(opts, "fusedActivationFunction", 0)), "?")

    def tname(self, idx: int) -> str:
        """First part of the TFLite tensor name, made unique by the tensor index if needed."""
        if idx not in self._short:
            base = _tensor_name(self.g.tensors[idx]).split(";")[0] or f"tensor{idx}"
            self._short[idx] = base if base not in self._short.values() else f"{base}#{idx}"
        return self._short[idx]

    def folded_pad(self, prod: Any) -> np.ndarray | None:
        """The ``(4, 2)`` amounts of a zero PAD of y and x only, else ``None``."""
        if prod is None or self.opname(prod) != "PAD":
            return None
        pads = _const(self.model, self.g.tensors[prod.inputs[1]], self.schema)
        if pads is not None and pads.shape == (4, 2) and not pads[0].any() and not pads[3].any() and (pads >= 0).all():
            return pads
        return None


def _model_input(path: Path, f: _Flat) -> dict[str, Any]:
    g = f.g
    if len(g.inputs) != 1:
        raise RecorderError(f"{path}: the recorder needs a model with one input, got {len(g.inputs)}")
    t_in = g.tensors[g.inputs[0]]
    if t_in.type != f.schema.TensorType.FLOAT32 or len(t_in.shape) != 4 or t_in.shape[0] != 1:
        raise RecorderError(f"{path}: the model input must be float32 NHWC with batch 1, "
                            f"got type {t_in.type} shape {list(t_in.shape)}")
    return {"index": int(g.inputs[0]), "shape": tuple(int(v) for v in t_in.shape), "name": _tensor_name(t_in)}


def _fc_layer(f: _Flat, label: str, layer_name: str, read_index: int, x_shape: list[int],
              w_shape: list[int]) -> Layer:
    n_in, n_out = w_shape[1], w_shape[0]
    if int(np.prod(x_shape)) != n_in:
        raise RecorderError(f"layer {layer_name!r} ({label}): input shape {x_shape} "
                            f"does not hold {n_in} features for batch 1")
    shape = (x_shape[3], x_shape[1], x_shape[2]) if len(x_shape) == 4 else (n_in, 1, 1)
    return Layer(layer_name, f.tname(read_index), "fc", n_in, n_out, input_shape=shape)


def _conv_layer(f: _Flat, op: Any, kind: str, label: str, layer_name: str, x_shape: list[int],
                w_shape: list[int], info: dict[str, Any], fold_pad: bool) -> tuple[Layer, int]:
    """A conv/depthwise layer (SAME resolved, a zero PAD folded) and the tensor it records."""
    op_index = info["op_index"]
    if len(x_shape) != 4 or x_shape[0] != 1:
        raise RecorderError(f"layer {layer_name!r} ({label}): input must be NHWC with batch 1, got {x_shape}")
    opts, same = op.builtinOptions, op.builtinOptions.padding == f.schema.Padding.SAME
    _, h, w, c = x_shape
    kh, kw = w_shape[1], w_shape[2]
    sh, sw = int(opts.strideH), int(opts.strideW)
    dh, dw = int(opts.dilationHFactor or 1), int(opts.dilationWFactor or 1)
    (top, bottom), (left, right) = (tf_same_padding(h, kh, sh, dh), tf_same_padding(w, kw, sw, dw)) if same \
        else ((0, 0), (0, 0))
    info["tflite_padding"] = "SAME" if same else "VALID"
    if kind == "depthwise":
        groups, c_out = c, w_shape[3]
        mult = int(opts.depthMultiplier or 1)
        if c_out != c * mult and c_out % c:
            raise RecorderError(f"layer {layer_name!r} (op {op_index}): depthwise weights {w_shape} "
                                f"do not fit {c} input channels (multiplier {mult})")
        info["depth_multiplier"] = c_out // c
    else:
        c_out, w_in = w_shape[0], w_shape[3]
        if c % w_in:
            raise RecorderError(f"layer {layer_name!r} (op {op_index}): weights {w_shape} have "
                                f"{w_in} input channels, which does not divide the input's {c}")
        groups = c // w_in
    read_index = int(op.inputs[0])
    prod = f.producer.get(read_index)
    pads = f.folded_pad(prod) if fold_pad else None
    if pads is not None:
        read_index = int(prod.inputs[0])
        pre = [int(v) for v in f.g.tensors[read_index].shape]
        top, bottom = top + int(pads[1, 0]), bottom + int(pads[1, 1])
        left, right = left + int(pads[2, 0]), right + int(pads[2, 1])
        h, w = pre[1], pre[2]
        info["folded_pad"] = [int(pads[1, 0]), int(pads[1, 1]), int(pads[2, 0]), int(pads[2, 1])]
    layer = Layer(layer_name, f.tname(read_index), kind, c, c_out, kernel=(kh, kw), stride=(sh, sw),
                  padding=(top, bottom, left, right), dilation=(dh, dw), groups=groups, input_shape=(c, h, w))
    return layer, read_index


def parse_tflite(model_path: str | Path, fold_pad: bool = True) -> tuple[list[TFLiteLayer], list[str], dict[str, Any]]:
    """Parse a ``.tflite`` flatbuffer into synaptic layers.

    Returns ``(layers, unhandled_ops, model_input)`` where ``model_input`` has
    ``index``, ``shape`` (NHWC) and ``name`` of the single float32 input.
    """
    schema = _schema()
    path = Path(model_path)
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    if not model.subgraphs:
        raise RecorderError(f"{path}: the model has no subgraph")
    f = _Flat(model, schema)
    unhandled = [f"subgraph {i} (control flow)" for i in range(1, len(model.subgraphs))]
    model_input = _model_input(path, f)
    out: list[TFLiteLayer] = []
    for op_index, op in enumerate(f.g.operators):
        name_ = f.opname(op)
        if name_ in _UNHANDLED or name_.startswith("CUSTOM:"):
            unhandled.append(f"op {op_index} {name_}")
            continue
        kind = _SYNAPTIC.get(name_)
        if kind is None:
            continue
        layer_name = f"{kind}_{len(out):02d}"
        x_shape, w_shape = ([int(v) for v in f.g.tensors[op.inputs[k]].shape] for k in (0, 1))
        info: dict[str, Any] = {"tflite_op": name_, "op_index": op_index, "weights_shape": w_shape,
                                "output_tensor": _tensor_name(f.g.tensors[op.outputs[0]]),
                                "activation": f.act(op.builtinOptions)}
        prod = f.producer.get(int(op.inputs[0]))
        if prod is not None:
            info["producer"] = f.opname(prod)
            if hasattr(prod.builtinOptions, "fusedActivationFunction"):
                info["producer_activation"] = f.act(prod.builtinOptions)
        try:
            if kind == "fc":
                read_index = int(op.inputs[0])
                layer = _fc_layer(f, f"op {op_index} {name_}", layer_name, read_index, x_shape, w_shape)
            else:
                layer, read_index = _conv_layer(f, op, kind, f"op {op_index} {name_}", layer_name, x_shape,
                                                w_shape, info, fold_pad)
        except GeometryError as exc:
            raise RecorderError(f"op {op_index} {name_}: {exc}") from exc
        info["input_tensor_index"] = read_index
        out.append(TFLiteLayer(layer, read_index, int(op.outputs[0]), info))
    if not out:
        raise RecorderError(f"{path}: no CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED op found")
    return out, unhandled, model_input


def _check_shapes(tl: TFLiteLayer, x: np.ndarray, y: np.ndarray) -> None:
    layer = tl.layer
    c, h, w = layer.input_shape
    if layer.op == "fc":
        if x.size != layer.in_channels or y.size != layer.out_channels:
            raise RecorderError(f"layer {layer.name!r} (op {tl.info['op_index']}): runtime input {x.shape} / "
                                f"output {y.shape} disagree with fc {layer.in_channels} -> {layer.out_channels}")
        return
    if tuple(x.shape) != (1, h, w, c):
        raise RecorderError(f"layer {layer.name!r} (op {tl.info['op_index']}): runtime input shape {x.shape} "
                            f"disagrees with the parsed input_shape (C,H,W)={layer.input_shape}")
    co, ho, wo = layer.output_shape  # type: ignore[misc]
    if tuple(y.shape) != (1, ho, wo, co):
        raise RecorderError(f"layer {layer.name!r} (op {tl.info['op_index']}): computed output_shape "
                            f"(C,H,W)={layer.output_shape} but the runtime produced NHWC {tuple(y.shape)} "
                            f"(padding {layer.padding}, stride {layer.stride}, dilation {layer.dilation})")


def _to_chw(layer: Layer, a: np.ndarray) -> np.ndarray:
    if a.ndim == 4:
        return np.ascontiguousarray(a[0].transpose(2, 0, 1))
    return a.reshape(layer.input_shape)


def record_tflite(model_path: str | Path, frames: Iterable[Any], *,
                  value_range: tuple[float, float] = (0.0, 1.0), progress_bar: bool = True,
                  attrs: Mapping[str, Any] | None = None, frame_labels: Sequence[str] | None = None,
                  fold_pad: bool = True) -> Recording:
    """Run a TFLite model on ``frames`` and record the input of each conv/depthwise/fc op.

    ``frames``: uint8 images (prepared by :func:`else_dse.record.media.prepare` with
    ``value_range``) or float32 arrays of the model's input shape ``(H, W, C)``.
    """
    path = Path(model_path)
    parsed, unhandled, model_input = parse_tflite(path, fold_pad=fold_pad)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:
        interp = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interp.allocate_tensors()
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RecorderError(f"{path}: the TFLite runtime cannot run this model ({first}); "
                            f"ops the recorder does not handle: {unhandled or 'none'}") from exc
    _, h, w, c = model_input["shape"]
    reads = list(dict.fromkeys(tl.read_index for tl in parsed))
    names = {tl.read_index: tl.layer.input for tl in parsed}
    layer_of = {tl.read_index: tl.layer for tl in parsed}
    stacks: dict[int, list[np.ndarray]] = {i: [] for i in reads}
    total = len(frames) if hasattr(frames, "__len__") else None  # type: ignore[arg-type]
    n = 0
    for x in progress(model_frames(frames, h, w, c, value_range), total, f"record {path.name}", progress_bar):
        interp.set_tensor(model_input["index"], x[None])
        interp.invoke()
        if n == 0:
            for tl in parsed:
                _check_shapes(tl, interp.get_tensor(tl.read_index), interp.get_tensor(tl.output_index))
        for i in reads:
            stacks[i].append(_to_chw(layer_of[i], interp.get_tensor(i)))
        n += 1
    if n == 0:
        raise RecorderError(f"{path}: no frames given")
    arrays = {names[i]: np.stack(stacks[i]) for i in reads}
    meta = provenance(path, "else_dse.record.tflite", ("ai-edge-litert",),
                      Preprocess(h, w, value_range).describe(),
                      {tl.layer.name: tl.info for tl in parsed}, unhandled)
    meta["model_input"] = f"{model_input['name']} NHWC {list(model_input['shape'])}"
    meta["fold_pad"] = int(fold_pad)
    meta.update(attrs or {})
    return Recording.from_arrays([tl.layer for tl in parsed], arrays, attrs=meta, frame_labels=frame_labels)
