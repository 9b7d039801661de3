"""LiteRT runtime of a cut model: one subgraph and one SignatureDef per segment in a rewritten flatbuffer.

LiteRT cannot take a modified intermediate tensor (``set_tensor`` on one is
overwritten by ``invoke``), so the model is rewritten with the flatbuffer
schema's object API (``ai_edge_litert.schema_py_generated``): the original
subgraphs stay as they are (control-flow ops keep their subgraph indices) and
each segment of :func:`else_dse.record.cut.plan_cuts` is appended as a
subgraph of its own, holding only the tensors its ops use (an unused sparse
tensor would make the loader fail), with a SignatureDef naming its inputs and
outputs. Every segment runs through ``Interpreter.get_signature_runner`` of one
interpreter, with the options of :func:`else_dse.record.tflite.record_tflite`
(builtin kernels, no default delegate, default thread count).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Hashable, Mapping

import numpy as np

from ..workload import Layer
from .cut import Cut, CutPlan, PlannedOp, Segment, plan_cuts
from ._common import SegmentError
from .segments import SegmentedModel
from .tflite import _schema, _tensor_name, parse_tflite

__all__ = ["TFLiteSegments"]


def _interpreter(**kw: Any) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    return Interpreter(experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, **kw)


def _sig_name(t: Hashable) -> str:
    """SignatureDef name of a tensor id (a Python keyword argument of the signature runner)."""
    if isinstance(t, tuple):
        return "_".join(str(v) for v in t)
    return f"t{t}"


class TFLiteSegments(SegmentedModel):
    """A ``.tflite`` model cut at every synaptic layer's input (see :class:`SegmentedModel`)."""

    def __init__(self, path: Path) -> None:
        parsed, self._unhandled, model_input = parse_tflite(path)
        schema = _schema()
        self._model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
        g = self._model.subgraphs[0]
        self._check_cuttable(path, g, parsed)
        self._ops = [PlannedOp(j, tuple(int(t) if t >= 0 else None for t in op.inputs),
                               tuple(int(t) if t >= 0 else None for t in op.outputs))
                     for j, op in enumerate(g.operators)]
        writer = {t: j for j, op in enumerate(self._ops) for t in op.writes}
        self._cuts = []
        for i, tl in enumerate(parsed):
            slot = self._ops[tl.info["op_index"]].inputs[0]
            pad_op = writer[slot] if slot != tl.read_index else None
            self._cuts.append(Cut(i, tl.info["op_index"], tl.read_index, slot, pad_op, name=tl.layer.name))
        self._constants = {t for t, tensor in enumerate(g.tensors) if self._has_data(tensor)}
        self._input = model_input["index"]
        self._outputs = tuple(int(t) for t in g.outputs)
        self._built: dict[bool, tuple[Any, list[Any]]] = {}
        self._full: Any = None
        _, h, w, c = model_input["shape"]
        names = tuple(_tensor_name(g.tensors[t]) for t in self._outputs)
        super().__init__(path, tuple(tl.layer for tl in parsed), (h, w, c), names)

    def _has_data(self, tensor: Any) -> bool:
        bufs = self._model.buffers
        buf = bufs[tensor.buffer] if 0 <= tensor.buffer < len(bufs) else None
        return buf is not None and ((buf.data is not None and len(buf.data) > 0) or bool(buf.offset))

    def _check_cuttable(self, path: Path, g: Any, parsed: list[Any]) -> None:
        schema = _schema()
        for t, tensor in enumerate(g.tensors):
            if tensor.isVariable:
                raise SegmentError(f"{path}: cannot cut: tensor {t} {_tensor_name(tensor)!r} is a variable "
                                   "(state kept across invocations inside one subgraph)")
        for tl in parsed:
            tensor = g.tensors[tl.read_index]
            if tensor.type != schema.TensorType.FLOAT32:
                raise SegmentError(f"{path}: cannot cut layer {tl.layer.name!r}: its input tensor "
                                   f"{_tensor_name(tensor)!r} has TFLite type {tensor.type}, not FLOAT32")

    # ---- plan and build ----------------------------------------------------------
    def _plan(self, reconstruction: bool) -> CutPlan:
        return plan_cuts(self._ops, self._cuts, inputs=(self._input,), outputs=self._outputs,
                         constants=self._constants, reconstruction=reconstruction)

    def _tensor(self, t: Hashable, g: Any) -> Any:
        """The TensorT of an original index, or a fresh activation tensor for a new id."""
        if not isinstance(t, tuple):
            return g.tensors[t]
        kind, ref = t
        cut = self._cuts[ref] if kind in ("fed", "pad") else None
        like = g.tensors[cut.read if kind == "fed" else cut.slot] if cut is not None else g.tensors[ref]
        new = copy.copy(like)
        new.name = f"{_tensor_name(like)};else_dse:{kind}".encode()
        new.buffer = 0
        return new

    def _subgraph(self, k: int, seg: Segment, g: Any) -> tuple[Any, Any]:
        schema = _schema()
        local: dict[Hashable, int] = {}
        tensors: list[Any] = []

        def index(t: Hashable | None) -> int:
            if t is None:
                return -1
            if t not in local:
                local[t] = len(tensors)
                tensors.append(self._tensor(t, g))
            return local[t]

        ops = []
        for pop in seg.ops:
            op = copy.copy(g.operators[pop.source])
            op.inputs = [index(t) for t in pop.inputs]
            op.outputs = [index(t) for t in pop.outputs]
            if op.intermediates is not None and len(op.intermediates):
                op.intermediates = [index(int(t)) for t in op.intermediates]
            ops.append(op)
        sub = schema.SubGraphT()
        sub.operators, sub.name = ops, f"else_dse_segment_{k:03d}".encode()
        sub.inputs, sub.outputs = [index(t) for t in seg.inputs], [index(t) for t in seg.outputs]
        sub.tensors = tensors
        sig = schema.SignatureDefT()
        sig.signatureKey = f"segment_{k:03d}"
        sig.inputs = [self._tensor_map(_sig_name(t), local[t]) for t in seg.inputs]
        sig.outputs = [self._tensor_map(_sig_name(t), local[t]) for t in seg.outputs]
        return sub, sig

    @staticmethod
    def _tensor_map(name: str, index: int) -> Any:
        m = _schema().TensorMapT()
        m.name, m.tensorIndex = name, index
        return m

    def flatbuffer(self, plan: CutPlan) -> bytes:
        """The rewritten model: the original subgraphs, then one subgraph + SignatureDef per segment."""
        import flatbuffers

        g = self._model.subgraphs[0]
        model = copy.copy(self._model)
        b0 = self._model.buffers[0] if self._model.buffers else None
        if b0 is None or (b0.data is not None and len(b0.data)) or b0.offset:  # new tensors use buffer 0
            raise SegmentError(f"{self.path}: cannot cut: buffer 0 is not the empty buffer new tensors need")
        base = len(self._model.subgraphs)
        subs, sigs = [], []
        for k, seg in enumerate(s for s in plan.steps if isinstance(s, Segment)):
            sub, sig = self._subgraph(k, seg, g)
            sig.subgraphIndex = base + k
            subs.append(sub)
            sigs.append(sig)
        model.subgraphs = list(self._model.subgraphs) + subs
        model.signatureDefs = sigs
        builder = flatbuffers.Builder(1 << 20)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    def _prepare(self, reconstruction: bool, plan: CutPlan) -> None:
        content = self.flatbuffer(plan)
        try:
            interp = _interpreter(model_content=content)
            runners = [interp.get_signature_runner(f"segment_{k:03d}") for k in range(plan.segments)]
        except (RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SegmentError(f"{self.path}: the TFLite runtime rejects the cut model ({first})") from exc
        names = [([(t, _sig_name(t)) for t in s.inputs], [(t, _sig_name(t)) for t in s.outputs])
                 for s in plan.steps if isinstance(s, Segment)]
        self._built[reconstruction] = (interp, list(zip(runners, names)))

    # ---- run -------------------------------------------------------------------------
    def _feed(self, x: np.ndarray) -> dict[Hashable, np.ndarray]:
        return {self._input: x[None].copy()}  # its own array: a layer's input may be a view of it

    def _run_segment(self, reconstruction: bool, index: int, seg: Segment,
                     values: Mapping[Hashable, np.ndarray]) -> dict[Hashable, np.ndarray]:
        runner, (ins, outs) = self._built[reconstruction][1][index]
        try:
            got = runner(**{name: values[t] for t, name in ins})
        except (RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SegmentError(f"{self.path}: the TFLite runtime fails in segment {index} ({first}); "
                               f"ops the recorder does not handle: {self._unhandled or 'none'}") from exc
        return {t: got[name] for t, name in outs}

    def _to_chw(self, layer: Layer, a: np.ndarray) -> np.ndarray:
        """A (C, H, W) view of the runtime's (1, H, W, C) array (no copy; ``_from_chw`` of an
        array in that memory order is a view again)."""
        if a.ndim == 4:
            return a[0].transpose(2, 0, 1)
        return a.reshape(layer.input_shape)

    def _from_chw(self, layer: Layer, x: np.ndarray, like: np.ndarray) -> np.ndarray:
        if like.ndim == 4:
            return np.ascontiguousarray(x.transpose(1, 2, 0))[None]
        return x.reshape(like.shape)

    def run_full(self, x: np.ndarray) -> dict[str, np.ndarray]:
        from ._common import check_float_frame

        if self._full is None:
            self._full = _interpreter(model_path=str(self.path))
            self._full.allocate_tensors()
        it = self._full
        it.set_tensor(self._input, check_float_frame(x, self.input_hwc, "frame")[None])
        it.invoke()
        return {name: it.get_tensor(t) for name, t in zip(self.output_names, self._outputs)}
