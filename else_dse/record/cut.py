"""Where to cut a network so that every synaptic layer can be fed its own input: a plan for any runtime.

The plan works on an abstract graph: ops in network (topological) order, each
reading and writing tensor ids, and the cuts (one per layer: the op, the
tensor the recorder records, and a folded ``PAD`` if any). It rewires the
graph so that

* each layer ``i`` reads a tensor of its own, ``("fed", i)``, written by a
  *consume step* that reads the recorded tensor (a folded ``PAD`` is copied,
  ``("pad", i)``, so each conv pads its own array);
* with ``reconstruction=True`` every other reader of a recorded tensor ``T``
  (non-synaptic ops, model outputs) reads ``("recon", T)``, written by the
  consume step of ``T``'s first layer in network order;

then schedules ops and consume steps (consume steps as early as their input
allows, in network order when the dependencies permit it), drops ops nothing
needs, and groups the ops between two consume steps into one segment with its
inputs and outputs. Ops that read only constants (weights dequantization,
``DENSIFY``) are not scheduled: each segment that needs their output gets its
own copy, so weights stay constant tensors inside every segment.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

from ._common import SegmentError

__all__ = ["Cut", "PlannedOp", "Segment", "Consume", "CutPlan", "plan_cuts"]

Tid = Hashable  # a tensor id: an int (TFLite index), a str (ONNX name) or a tuple for a new tensor


@dataclass(frozen=True)
class Cut:
    """Layer ``layer`` (network order) at op ``op``: it records ``read``; its op reads ``slot`` at input 0.

    ``pad_op`` is the index of a folded ``PAD`` op (``read`` -> ``slot``), else ``None``; ``name``
    the layer's name (for messages).
    """

    layer: int
    op: int
    read: Tid
    slot: Tid
    pad_op: int | None = None
    name: str = ""


@dataclass(frozen=True)
class PlannedOp:
    """Op ``source`` of the original graph, with its inputs and outputs after rewiring (``None`` = absent)."""

    source: int
    inputs: tuple[Tid | None, ...]
    outputs: tuple[Tid | None, ...]

    @property
    def reads(self) -> tuple[Tid, ...]:
        return tuple(t for t in self.inputs if t is not None)

    @property
    def writes(self) -> tuple[Tid, ...]:
        return tuple(t for t in self.outputs if t is not None)


@dataclass(frozen=True)
class Segment:
    """Ops to run together (constant-only ops first, then scheduled ones), fed ``inputs``, giving ``outputs``."""

    ops: tuple[PlannedOp, ...]
    inputs: tuple[Tid, ...]
    outputs: tuple[Tid, ...]


@dataclass(frozen=True)
class Consume:
    """Layer ``layer`` reads ``read``; what the consumer returns is written to ``fed`` (and ``recon``)."""

    layer: int
    read: Tid
    fed: Tid
    recon: Tid | None = None


@dataclass(frozen=True)
class CutPlan:
    """Steps in run order; ``outputs`` are the tensors that hold the model outputs after the last step."""

    steps: tuple[Segment | Consume, ...]
    outputs: tuple[Tid, ...]
    segments: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", sum(isinstance(s, Segment) for s in self.steps))


def _rewire(ops: Sequence[PlannedOp], cuts: Sequence[Cut], outputs: Sequence[Tid],
            reconstruction: bool) -> tuple[list[tuple[tuple, PlannedOp]], tuple[Tid, ...], dict[int, Tid | None]]:
    """Keyed ops with each layer's input replaced by its own tensor; outputs; recon tensor per layer."""
    by_op = {c.op: c for c in cuts}
    first: dict[Tid, int] = {}
    for c in cuts:
        first.setdefault(c.read, c.layer)
    recon = {t: ("recon", t) for t in first} if reconstruction else {}
    keyed: list[tuple[tuple, PlannedOp]] = []
    for j, op in enumerate(ops):
        ins = [recon.get(t, t) for t in op.inputs]
        cut = by_op.get(j)
        if cut is not None:
            if op.inputs[0] != cut.slot:
                raise SegmentError(f"op {j}: input 0 is {op.inputs[0]!r}, not the layer's tensor {cut.slot!r}")
            ins[0] = ("fed", cut.layer) if cut.pad_op is None else ("pad", cut.layer)
            if cut.pad_op is not None:  # this layer's own copy of the folded PAD, just before it
                pad = ops[cut.pad_op]
                keyed.append(((j - 0.5, 0, 0), PlannedOp(
                    pad.source, (("fed", cut.layer), *pad.inputs[1:]), (("pad", cut.layer),))))
        keyed.append(((j, 0, 0), PlannedOp(op.source, tuple(ins), op.outputs)))
    layer_recon = {c.layer: (recon[c.read] if reconstruction and first[c.read] == c.layer else None) for c in cuts}
    return keyed, tuple(recon.get(t, t) for t in outputs), layer_recon


def _constant_producers(keyed: Sequence[tuple[tuple, PlannedOp]], constants: set) -> tuple[set, dict]:
    """Tensors computed from constants only, and the op that writes each (ops with no output excluded)."""
    const = set(constants)
    producer: dict[Tid, PlannedOp] = {}
    for _, op in keyed:
        if op.writes and all(t in const for t in op.reads):
            const.update(op.writes)
            for t in op.writes:
                producer[t] = op
    return const, producer


def _schedule(nodes: list[tuple[tuple, PlannedOp | Consume]], available: set) -> list[PlannedOp | Consume]:
    """Kahn's algorithm, smallest key first: the key order itself whenever it respects the dependencies."""
    writer: dict[Tid, int] = {}
    for n, (_, node) in enumerate(nodes):
        for t in (node.writes if isinstance(node, PlannedOp) else (node.fed, node.recon)):
            if t is not None:
                writer[t] = n
    deps: list[set[int]] = []
    for n, (_, node) in enumerate(nodes):
        reads = node.reads if isinstance(node, PlannedOp) else (node.read,)
        missing = [t for t in reads if t not in available and t not in writer]
        if missing:
            where = f"layer {node.layer}" if isinstance(node, Consume) else f"op {node.source}"
            raise SegmentError(f"cannot cut: {where} reads tensor {missing[0]!r}, which no op computes")
        deps.append({writer[t] for t in reads if t in writer})
    users: list[list[int]] = [[] for _ in nodes]
    for n, d in enumerate(deps):
        for m in d:
            users[m].append(n)
    left = [len(d) for d in deps]
    heap = [(nodes[n][0], n) for n in range(len(nodes)) if not left[n]]
    heapq.heapify(heap)
    order: list[PlannedOp | Consume] = []
    while heap:
        _, n = heapq.heappop(heap)
        order.append(nodes[n][1])
        for m in users[n]:
            left[m] -= 1
            if not left[m]:
                heapq.heappush(heap, (nodes[m][0], m))
    if len(order) != len(nodes):
        raise SegmentError("cannot cut: the rewired graph has a cycle")
    return order


def _live(order: Sequence[PlannedOp | Consume], outputs: Sequence[Tid]) -> list[PlannedOp | Consume]:
    """Drop ops whose outputs nothing reads (consume steps and ops without outputs always stay)."""
    needed = set(outputs)
    keep: list[PlannedOp | Consume] = []
    for node in reversed(order):
        if isinstance(node, Consume):
            needed.add(node.read)
        elif node.writes and not needed.intersection(node.writes):
            continue
        else:
            needed.update(node.reads)
        keep.append(node)
    return keep[::-1]


def _segments(order: Sequence[PlannedOp | Consume], outputs: Sequence[Tid], const: set,
              const_producer: Mapping[Tid, PlannedOp]) -> list[Segment | Consume]:
    """Group the ops between consume steps; give each group its constant ops, inputs and outputs."""
    groups: list[list[PlannedOp] | Consume] = []
    for node in order:
        if isinstance(node, Consume):
            groups.append(node)
        elif groups and isinstance(groups[-1], list):
            groups[-1].append(node)
        else:
            groups.append([node])
    needed = set(outputs)
    steps: list[Segment | Consume] = []
    for g in reversed(groups):
        if isinstance(g, Consume):
            needed.add(g.read)
            steps.append(g)
            continue
        consts = _constant_ops(g, const, const_producer)
        made = {t for op in consts + g for t in op.writes}
        inputs = tuple(dict.fromkeys(t for op in g for t in op.reads if t not in made and t not in const))
        outs = tuple(dict.fromkeys(t for op in g for t in op.writes if t in needed))
        needed.difference_update(made)
        needed.update(inputs)
        steps.append(Segment(tuple(consts + g), inputs, outs))
    return steps[::-1]


def _constant_ops(group: Sequence[PlannedOp], const: set, producer: Mapping[Tid, PlannedOp]) -> list[PlannedOp]:
    """The constant-only ops (transitively) that ``group`` needs, in source order, once each."""
    want: dict[int, PlannedOp] = {}
    stack = [t for op in group for t in op.reads if t in producer]
    while stack:
        op = producer[stack.pop()]
        if id(op) not in want:
            want[id(op)] = op
            stack.extend(t for t in op.reads if t in producer)
    return sorted(want.values(), key=lambda op: op.source)


def plan_cuts(ops: Sequence[PlannedOp], cuts: Sequence[Cut], *, inputs: Sequence[Tid], outputs: Sequence[Tid],
              constants: set, reconstruction: bool = False) -> CutPlan:
    """Plan segments and consume steps for ``ops`` (network order) cut at every layer of ``cuts``.

    ``inputs``/``outputs`` are the model's; ``constants`` the tensors holding weights and other
    constants. Raises :class:`SegmentError` when a cut cannot be made (a layer reading a constant,
    a model output computed from constants only, a tensor nothing computes).
    """
    keyed, outs, layer_recon = _rewire(ops, cuts, outputs, reconstruction)
    const, const_producer = _constant_producers(keyed, constants)
    for c in cuts:
        if c.read in const:
            raise SegmentError(f"cannot cut layer {c.name or c.layer!r} (op {c.op}): its input {c.read!r} is computed "
                                "from constants only; there is no activation to feed")
    bad = [t for t in outs if t in const]
    if bad:
        raise SegmentError(f"cannot cut: model output {bad[0]!r} is computed from constants only")
    producer_key = {t: key for key, op in keyed for t in op.writes}
    nodes: list[tuple[tuple, PlannedOp | Consume]] = [(k, op) for k, op in keyed if not set(op.writes) & const
                                                      or not op.writes]
    k_prev = -1.0
    for c in sorted(cuts, key=lambda c: c.layer):  # consume as early as the input allows, in network order
        k_prev = max(k_prev, producer_key.get(c.read, (-1.0,))[0])
        nodes.append(((k_prev, 1, c.layer), Consume(c.layer, c.read, ("fed", c.layer), layer_recon[c.layer])))
    order = _live(_schedule(nodes, set(inputs) | const), outs)
    return CutPlan(tuple(_segments(order, outs, const, const_producer)), outs)
