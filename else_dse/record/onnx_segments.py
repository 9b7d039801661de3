"""onnxruntime runtime of a cut model: one session per segment.

Each segment of :func:`else_dse.record.cut.plan_cuts` becomes an ONNX model of
its own: its nodes (a layer's node reads the array its consumer returned, a
renamed input), the initializers and ``Constant`` nodes they need, the
tensors crossing the cut as graph inputs and outputs (typed from one run of
the whole model on a zero frame), the model's opsets and local functions.
Every session, and the whole-model reference of :meth:`ONNXSegments.run_full`,
uses :func:`else_dse.record.onnx.session_options` (no graph optimization, one
thread), so a node computes the same bits wherever it runs. Nodes with
subgraphs (``If``, ``Loop``, ``Scan``) keep reading the tensors their bodies
take from the outer scope; in reconstruction mode such a read of a layer's
input cannot be rewired and is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Hashable, Mapping

import numpy as np

from ..workload import Layer
from ._common import RecorderError, SegmentError, check_float_frame
from .cut import Cut, CutPlan, PlannedOp, Segment, plan_cuts
from .onnx import _parse, model_input, session_options
from .segments import SegmentedModel

__all__ = ["ONNXSegments"]


def _outer_reads(graph: Any) -> list[str]:
    """Names a subgraph reads from its enclosing scope (recursively), in first-use order."""
    import onnx

    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    out: list[str] = []
    for node in graph.node:
        for name in list(node.input) + _attr_reads(node, onnx):
            if name and name not in defined and name not in out:
                out.append(name)
        defined.update(node.output)
    return out


def _attr_reads(node: Any, onnx: Any) -> list[str]:
    reads: list[str] = []
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            reads += _outer_reads(a.g)
        elif a.type == onnx.AttributeProto.GRAPHS:
            for g in a.graphs:
                reads += _outer_reads(g)
    return reads


def _name(t: Hashable) -> str:
    """ONNX tensor name of a tensor id (new tensors get a name no model uses)."""
    if isinstance(t, tuple):
        kind, ref = t
        return f"{ref}::else_dse_{kind}" if kind == "recon" else f"else_dse_{kind}_{ref}"
    return str(t)


class ONNXSegments(SegmentedModel):
    """An ``.onnx`` model cut at every synaptic layer's input (see :class:`SegmentedModel`)."""

    def __init__(self, path: Path) -> None:
        try:
            import onnx
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise RecorderError("cutting ONNX models needs onnx and onnxruntime "
                                "(pip install 'else-dse[record]')") from exc
        self._model = onnx.load(str(path))
        graph = self._model.graph
        self._input, _, hwc = model_input(path, graph)
        self._probe = self._probe_run(path, hwc)
        parsed, self._unhandled = _parse(graph, {k: tuple(v.shape) for k, v in self._probe.items()})
        if not parsed:
            raise RecorderError(f"{path}: no Conv, Gemm or MatMul node found")
        consts = {i.name for i in graph.initializer} | {s.values.name for s in graph.sparse_initializer}
        self._ops = [PlannedOp(j, tuple(t or None for t in node.input) + tuple(_attr_reads(node, onnx)),
                               tuple(t or None for t in node.output)) for j, node in enumerate(graph.node)]
        self._cuts = [Cut(i, info["node_index"], layer.input, layer.input, name=layer.name)
                      for i, (layer, _, info) in enumerate(parsed)]
        for layer, _, _ in parsed:
            if self._probe[layer.input].dtype != np.float32:
                raise SegmentError(f"{path}: cannot cut layer {layer.name!r}: its input {layer.input!r} is "
                                   f"{self._probe[layer.input].dtype}, not float32")
        self._constants = consts
        self._outputs = tuple(o.name for o in graph.output)
        self._sessions: dict[bool, list[tuple[Any, list[tuple[Hashable, str]], list[tuple[Hashable, str]]]]] = {}
        self._full: Any = None
        super().__init__(path, tuple(layer for layer, _, _ in parsed), hwc, self._outputs)

    def _probe_run(self, path: Path, hwc: tuple[int, int, int]) -> dict[str, np.ndarray]:
        """Every top-level tensor of the whole model on a zero frame (shapes for the layers, types for cuts)."""
        import onnx
        import onnxruntime as ort

        probe = onnx.ModelProto()
        probe.CopyFrom(self._model)
        have = {o.name for o in probe.graph.output}
        for node in probe.graph.node:
            for t in node.output:
                if t and t not in have:
                    probe.graph.output.append(onnx.ValueInfoProto(name=t))
                    have.add(t)
        try:
            sess = ort.InferenceSession(probe.SerializeToString(), session_options(),
                                        providers=["CPUExecutionProvider"])
            names = [o.name for o in sess.get_outputs()]
            values = dict(zip(names, sess.run(names, self._feed(np.zeros(hwc, np.float32)))))
        except Exception as exc:  # onnxruntime raises its own exception types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SegmentError(f"{path}: onnxruntime cannot run this model ({first})") from exc
        values[self._input] = self._feed(np.zeros(hwc, np.float32))[self._input]
        return {k: np.asarray(v) for k, v in values.items() if isinstance(v, np.ndarray)}

    # ---- plan and build ----------------------------------------------------------------
    def _plan(self, reconstruction: bool) -> CutPlan:
        return plan_cuts(self._ops, self._cuts, inputs=(self._input,), outputs=self._outputs,
                         constants=self._constants, reconstruction=reconstruction)

    def _dtype(self, t: Hashable) -> Any:
        base = t if not isinstance(t, tuple) else (t[1] if t[0] == "recon" else self._cuts[t[1]].read)
        if base not in self._probe:
            raise SegmentError(f"{self.path}: cannot cut at tensor {base!r}: it is not a plain tensor")
        return self._probe[base].dtype

    def segment_model(self, seg: Segment) -> Any:
        """The ONNX model of one segment."""
        import onnx
        from onnx import helper

        graph = self._model.graph
        nodes = []
        for pop in seg.ops:
            src = graph.node[pop.source]
            n_explicit = len(src.input)
            implicit = [t for t in pop.inputs[n_explicit:] if t is not None]
            if any(isinstance(t, tuple) for t in implicit):
                raise SegmentError(f"{self.path}: cannot cut: node {pop.source} {src.op_type} {src.name!r} reads a "
                                   "layer's input inside a subgraph; use nonsynaptic='exact'")
            node = onnx.NodeProto()
            node.CopyFrom(src)
            del node.input[:]
            node.input.extend("" if t is None else _name(t) for t in pop.inputs[:n_explicit])
            nodes.append(node)
        reads = {t for pop in seg.ops for t in pop.reads}
        inits = [i for i in graph.initializer if i.name in reads]
        sparse = [s for s in graph.sparse_initializer if s.values.name in reads]

        def info(t: Hashable) -> Any:
            return helper.make_tensor_value_info(_name(t), helper.np_dtype_to_tensor_dtype(self._dtype(t)), None)

        g = helper.make_graph(nodes, "else_dse_segment", [info(t) for t in seg.inputs],
                              [info(t) for t in seg.outputs], inits, sparse_initializer=sparse)
        m = helper.make_model(g, opset_imports=list(self._model.opset_import), ir_version=self._model.ir_version)
        m.functions.extend(self._model.functions)
        return m

    def _prepare(self, reconstruction: bool, plan: CutPlan) -> None:
        import onnxruntime as ort

        built = []
        for k, seg in enumerate(s for s in plan.steps if isinstance(s, Segment)):
            try:
                sess = ort.InferenceSession(self.segment_model(seg).SerializeToString(), session_options(),
                                            providers=["CPUExecutionProvider"])
            except SegmentError:
                raise
            except Exception as exc:  # onnxruntime raises its own exception types
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise SegmentError(f"{self.path}: onnxruntime rejects segment {k} ({first})") from exc
            built.append((sess, [(t, _name(t)) for t in seg.inputs], [(t, _name(t)) for t in seg.outputs]))
        self._sessions[reconstruction] = built

    # ---- run ---------------------------------------------------------------------------
    def _feed(self, x: np.ndarray) -> dict[Hashable, np.ndarray]:
        return {self._input: np.ascontiguousarray(x.transpose(2, 0, 1)[None])}

    def _run_segment(self, reconstruction: bool, index: int, seg: Segment,
                     values: Mapping[Hashable, np.ndarray]) -> dict[Hashable, np.ndarray]:
        sess, ins, outs = self._sessions[reconstruction][index]
        got = sess.run([name for _, name in outs], {name: values[t] for t, name in ins})
        return {t: v for (t, _), v in zip(outs, got)}

    def _to_chw(self, layer: Layer, a: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=np.float32).reshape(layer.input_shape)

    def _from_chw(self, layer: Layer, x: np.ndarray, like: np.ndarray) -> np.ndarray:
        return x.reshape(like.shape)

    def run_full(self, x: np.ndarray) -> dict[str, np.ndarray]:
        import onnxruntime as ort

        if self._full is None:
            self._full = ort.InferenceSession(self._model.SerializeToString(), session_options(),
                                              providers=["CPUExecutionProvider"])
        got = self._full.run(list(self._outputs), self._feed(check_float_frame(x, self.input_hwc, "frame")))
        return dict(zip(self._outputs, got))
