"""Analytical cost model: event statistics + hardware template -> energy, latency, memory.

``estimate(stats, hardware)`` maps the exact event counts of
:func:`else_dse.events.count_events` onto a :class:`~else_dse.hardware.Hardware`
template. Everything is vectorized over layers (and frames); the model is a
handful of visible terms, listed here with every assumption ([A]).

State memory (semantics.md), in words, per layer and scheme -- :func:`state_words`
is the one home of these formulas:

* conventional / dense: consumer potentials ``C_out*H_out*W_out``, within a frame.
* line delta along y: sender reference ``s*C*W`` (``s`` = consumer stride), consumer
  potentials of all rows plus the virtual rows ``C_out*(H_out + v)*W_out``
  (neuron-mapped), within a frame; every extended row but the first starts from a
  copy of the previous row's potentials (``C_out*W_out`` words read + written).
  Along x the roles of rows and columns swap.
* temporal delta: sender reference ``C*H*W`` and consumer potentials
  ``C_out*H_out*W_out``, both persistent across frames.

Line-streaming accounting (``state_streaming_bytes``) replaces the consumer's
potentials by the rows in flight (``floor((k-1)*d/s) + 1``) plus, for line delta,
the previous row; the mapping itself is neuron-mapped (every neuron has a slot).

A consumer neuron keeps ``neuron_words`` words; a word is ``state_bits`` wide.

Mapping (:func:`map_layers`). Each layer gets its own cores, in network order.
A layer is tiled by output channels (``n_c`` groups of ``cc`` channels) and then
by output rows (``n_r`` bands of ``rr`` rows, virtual rows included); every core
of the layer holds the weights of its channels (``cc*(C_in/g)*kh*kw`` words,
replicated over row bands), the state of its tile, its share of the sender
references the layer holds for its consumers (proportional to its neurons), and
an input event buffer of ``buffer_events*event_bits`` bits. Of the tilings that
fit ``neurons_per_core`` and ``sram_per_core`` the one with the fewest cores is
taken (ties: the smaller busiest-core tile, then fewer channel groups).
Consecutive layers that need one core each share a core while their neurons
and memory fit together (one event buffer per core) [A]; a shared core runs its
layers one after another, and its static power and barrier energy are split
evenly over them. Cores are placed on the mesh in snake (boustrophedon) order,
layer after layer, so consecutive layers are neighbours. When a layer fits no
tiling, the finest tiling (one channel, one row per core) says by how much it
overflows; the chip overflows when the mapping needs more than ``n_cores``. An
overflowing mapping is costed on ``ceil(total/n_cores)`` copies of the chip
(:func:`chip_grid`; ``overflow_layout``, a template field [A]): ``"grid"`` tiles them
in a near-square grid that forms one mesh (inter-chip links cost like mesh hops), so
distances grow with the square root of the overflow; ``"strip"`` keeps the template's
``mesh_x`` columns and adds rows (distances grow linearly; the former model).

Producers [A]: the tensor a layer reads is produced by the nearest earlier
layer whose output shape equals the tensor's shape, else by the previous layer;
the first layer's input enters at mesh node (0, 0) from outside. The sender
references of a delta scheme live on the producer's cores.

Per layer and frame, with ``E`` input events (stats ``events``), ``S`` SOPs, ``N``
real neurons (``C_out*H_out*W_out``):

* neuron updates ``U``: ``execution="timestep"`` -> ``N`` (every neuron every step);
  ``"event"`` -> ``N*(1 - exp(-S/N))`` [A: the neurons touched by ``S`` SOPs landing
  uniformly at random; at most one update per neuron per frame].
* hops per event ``h = d * dist``: ``d`` destination cores of one event (channel
  groups its ``C_out/g`` fan-out channels span times row bands its cover spans),
  ``dist`` the mean Manhattan distance between a producer core and a consumer core
  [A: unicast copies, no multicast tree].
* state traffic words ``M = 2*copies*neuron_words + ref_reads + writes``
  (line-delta row copies; the sender reads its reference for every element it
  compares -- every element of every needed line / frame [A] -- and writes it once
  per event); ``e_sop`` and ``e_neuron_update`` already include their own weight and
  potential accesses [A].
* energy (pJ): ``synaptic = S*e_sop``, ``neuron = U*e_neuron_update``,
  ``events = E*(e_event_out + h*e_hop)`` (charged to the receiving layer),
  ``memory = M*state_bits*e_sram_bit``, ``barrier = cores*e_barrier`` (one barrier
  per frame/step), ``static = (cores*p_static_core + p_static_chip*cores/used)*T_frame``
  [A: unused cores are power-gated; the chip's own static power is shared by
  cores]; ``cores`` counts a shared core once over the layers sharing it.
* busiest core time (s), with its share ``f = cc*rr/(C_out*H_rows)`` of the layer
  [A: load spread uniformly over the layer's neurons]:
  ``T = f*S*t_sop/lanes + f*U*t_neuron_update + f*copies*neuron_words*t_neuron_update
  + noc*t_hop`` with ``R = E*d/cores`` events received per core and (``hop_timing``, a
  template field [A], :func:`noc_hops`) ``noc = R*min(dist, 1) + dist`` when ``"pipelined"``
  (routers pass one event per ``t_hop``; the route's length adds once; events from the core's
  own node use no link) or ``noc = R*dist`` when
  ``"serialized"`` (every event's whole route is charged to the receiver, the former model).

Frame latency (``schedule``, a template field, overridable per call; the same rule for
every scheme -- docs/hardware.md "Schedule" gives the reasoning):

* ``"sequential"``: layers one after another, ``sum T + t_barrier``.
* ``"streamed"``: consecutive layers on different cores overlap line by line, whatever
  their scheme: a run takes ``min(sum T, max T + sum T*k/H_rows)`` (each layer waits for
  ``k`` lines of its input; ``H_rows`` its output lines along the streaming axis, virtual
  rows of a line delta included; an fc layer waits for all of its input). A run breaks
  where a layer shares the previous layer's core (one core runs its layers one after
  another) and where a line-delta layer needs its input lines in another order (axis or
  direction) than the run streams -- the one scheme-specific rule, required by the
  semantics: a line delta along x needs whole columns. Conventional, dense and
  temporal-delta layers take their input lines in whatever order they arrive.
* ``"step"``: every layer works in parallel within a step, then a barrier:
  ``max T + t_barrier`` (time-stepped chips such as Loihi; one stats frame = one step).
* template default ``"auto"``: ``"step"`` for ``execution="timestep"``, else ``"streamed"``.

In ``"step"`` and in the throughput bound, ``T`` of layers sharing a core adds
up. The throughput bound is ``1 / (max_core T + t_barrier)`` (frames pipelined
over the cores). Static energy is charged over the frame latency of the
chosen schedule [A: one frame at a time].

The steps of :func:`estimate`, each a function over frozen values: :func:`check_stats`
(:class:`Counts`) -> :func:`map_layers` (:class:`CoreMapping`) -> :func:`core_work`
(:class:`CoreWork`) -> :func:`frame_latency` (:class:`Latency`) -> :func:`energy_components`
(:class:`Energy`) -> :func:`memory_bytes` (:class:`Memory`) -> :func:`fit_of` (:class:`Fit`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

import numpy as np
import xarray as xr

from . import _mapping
from .events import StatsArrays
from .hardware import EXECUTIONS, SCHEDULES, Hardware
from .schemes import KINDS
from .workload import Layer

__all__ = [
    "COMPONENTS",
    "KINDS",
    "SCHEDULES",
    "CoreMapping",
    "CoreWork",
    "CostError",
    "Counts",
    "Estimate",
    "Energy",
    "Fit",
    "Geometry",
    "Latency",
    "Memory",
    "check_stats",
    "core_shares",
    "core_work",
    "energy_components",
    "estimate",
    "estimate_values",
    "fit_of",
    "frame_latency",
    "geometry",
    "layer_state_words",
    "chip_grid",
    "map_layers",
    "memory_bytes",
    "noc_hops",
    "neuron_updates",
    "state_words",
    "stream_runs",
]

COMPONENTS = ("synaptic", "neuron", "events", "memory", "barrier", "static")
_DENSE, _CONV, _LINE, _TEMPORAL = range(4)


class CostError(ValueError):
    """Stats or arguments the cost model cannot use; the message says what is allowed."""


# --------------------------------------------------------------------------- geometry
@dataclass(frozen=True, eq=False)
class Geometry:
    """Per-layer geometry as int64 arrays (one entry per layer, network order)."""

    layers: tuple[Layer, ...]
    names: tuple[str, ...]
    c_in: np.ndarray
    h_in: np.ndarray
    w_in: np.ndarray
    c_out: np.ndarray
    h_out: np.ndarray
    w_out: np.ndarray
    k: np.ndarray          # (layer, axis) kernel extent, axis 0 = y, 1 = x
    s: np.ndarray          # (layer, axis) stride
    d: np.ndarray          # (layer, axis) dilation
    fan_channels: np.ndarray  # C_out/g (C_out for fc)
    is_fc: np.ndarray
    weights: np.ndarray    # weight words of the layer
    virtual: np.ndarray    # (layer, 2*axis_x + reverse) virtual rows/cols of line delta (-r_lo)
    needed: np.ndarray     # (layer, 2*axis_x + reverse) lines a line-delta sender emits
    producer: np.ndarray   # index of the producing layer, -1 = from outside the chip

    @property
    def neurons(self) -> np.ndarray:
        """Output neurons per layer (``c_out * h_out * w_out``)."""
        return self.c_out * self.h_out * self.w_out


def _producers(layers: tuple[Layer, ...]) -> np.ndarray:
    prod = np.full(len(layers), -1, dtype=np.int64)
    by_tensor: dict[str, int] = {}
    for i, layer in enumerate(layers):
        if layer.input in by_tensor:
            prod[i] = by_tensor[layer.input]
            continue
        p = -1 if i == 0 else i - 1
        for j in range(i - 1, -1, -1):
            if tuple(layers[j].output_shape) == tuple(layer.input_shape):  # type: ignore[arg-type]
                p = j
                break
        by_tensor[layer.input] = prod[i] = p
    return prod


def _scan_views(layer: Layer) -> tuple[Layer, ...]:
    """The layer in the scan coordinates of a line delta, indexed ``2*axis_x + reverse``
    (as in :mod:`else_dse.events`: swapped for axis x, then flipped for a reverse scan)."""
    return (layer, layer.flipped(), layer.swapped(), layer.swapped().flipped())


def geometry(layers: tuple[Layer, ...] | list[Layer]) -> Geometry:
    """Geometry arrays of ``layers`` (uses only :mod:`else_dse.workload` math)."""
    layers = tuple(layers)
    n = len(layers)
    arr = lambda f: np.array([f(l) for l in layers], dtype=np.int64)  # noqa: E731
    virtual = np.zeros((n, 4), dtype=np.int64)
    needed = np.zeros((n, 4), dtype=np.int64)
    for i, layer in enumerate(layers):
        if layer.op == "fc":
            continue
        for j, g in enumerate(_scan_views(layer)):
            virtual[i, j] = -g.rows("y", extended=True).start
            needed[i, j] = int(np.count_nonzero(g.cover("y", extended=True)))
    c_in = arr(lambda l: l.input_shape[0])
    fan = arr(lambda l: l.fan_out_channels)
    is_fc = np.array([l.op == "fc" for l in layers])
    k = arr(lambda l: l.kernel).reshape(n, 2)
    weights = np.where(is_fc, arr(lambda l: l.in_channels) * arr(lambda l: l.out_channels),
                       arr(lambda l: l.out_channels) * (c_in // arr(lambda l: l.groups)) * k[:, 0] * k[:, 1])
    return Geometry(
        layers=layers, names=tuple(l.name for l in layers),
        c_in=c_in, h_in=arr(lambda l: l.input_shape[1]), w_in=arr(lambda l: l.input_shape[2]),
        c_out=arr(lambda l: l.output_shape[0]), h_out=arr(lambda l: l.output_shape[1]),
        w_out=arr(lambda l: l.output_shape[2]),
        k=k, s=arr(lambda l: l.stride).reshape(n, 2), d=arr(lambda l: l.dilation).reshape(n, 2),
        fan_channels=fan, is_fc=is_fc, weights=weights, virtual=virtual, needed=needed,
        producer=_producers(layers))


@lru_cache(maxsize=32)
def _geometry_from_json(layers_json: str, names: tuple[str, ...] | None) -> Geometry:
    """Geometry of the layers ``names`` (all when None) described by a stats' attrs['layers']."""
    try:
        dicts = json.loads(layers_json)
        by_name = {d["name"]: Layer.from_dict(d) for d in dicts}
    except (TypeError, ValueError, KeyError) as exc:
        raise CostError(f"stats attrs['layers'] is not a JSON list of Layer.to_dict(): {exc}") from None
    if names is None:
        names = tuple(by_name)
    missing = [n for n in names if n not in by_name]
    if missing:
        raise CostError(f"stats layers {missing[:5]} have no geometry in attrs['layers'] "
                        f"(which describes {list(by_name)[:5]}...); stats and geometry must come "
                        "from the same network")
    if not names:
        raise CostError("stats has no layers")
    return geometry(tuple(by_name[n] for n in names))


# --------------------------------------------------------------------------- state
@dataclass(frozen=True, eq=False)
class StateWords:
    """State of a scheme per layer, in words (arrays over layers).

    ``sender``: the sender's reference; ``consumer``: potentials (one per neuron,
    virtual rows included); ``persistent``: whether both live across frames;
    ``copies``: potential words copied row to row per frame; ``ref_reads``:
    reference words read per frame (one per compared element); ``streaming``:
    consumer potentials when the consumer streams lines instead of mapping every
    neuron (semantics.md "line streaming": the rows in flight,
    ``floor((k-1)*d/s) + 1`` along the scan axis, plus one previous row for line
    delta; conventional/dense stream the rows in flight; temporal delta and fc
    layers keep every neuron)."""

    sender: np.ndarray
    consumer: np.ndarray
    streaming: np.ndarray
    persistent: np.ndarray
    copies: np.ndarray
    ref_reads: np.ndarray
    rows: np.ndarray   # rows the consumer maps (virtual rows of a y line delta included)
    cols: np.ndarray   # columns the consumer maps (virtual columns of an x line delta included)


def state_words(geom: Geometry, kind: np.ndarray, axis_x: np.ndarray,
                reverse: np.ndarray | None = None) -> StateWords:
    """State words per layer for scheme codes ``kind`` (index into :data:`KINDS`),
    line axis ``axis_x`` (True = along x) and scan ``reverse``; the formulas of semantics.md."""
    line = kind == _LINE
    temporal = kind == _TEMPORAL
    ax = axis_x.astype(np.int64)
    view = 2 * ax + (np.zeros_like(ax) if reverse is None else reverse.astype(np.int64))
    v = np.where(line, geom.virtual[np.arange(len(kind)), view], 0)
    rows = geom.h_out + np.where(line & ~axis_x, v, 0)
    cols = geom.w_out + np.where(line & axis_x, v, 0)
    consumer = geom.c_out * rows * cols
    # a line is a row (axis y, length W) or a column (axis x, length H) of the input
    line_len = np.where(axis_x, geom.h_in, geom.w_in)
    stride = geom.s[np.arange(len(kind)), ax]
    needed = geom.needed[np.arange(len(kind)), view]
    inputs = geom.c_in * geom.h_in * geom.w_in
    sender = np.where(temporal, inputs, np.where(line, stride * geom.c_in * line_len, 0))
    ref_reads = np.where(temporal, inputs, np.where(line, needed * geom.c_in * line_len, 0))
    ext = np.where(axis_x, cols, rows)
    copies = np.where(line, consumer // np.maximum(ext, 1) * np.maximum(ext - 1, 0), 0)
    # line streaming: rows (columns for axis x) in flight, plus the previous row for line delta
    scan = np.where(line, ax, 0)
    idx = np.arange(len(kind))
    in_flight = (geom.k[idx, scan] - 1) * geom.d[idx, scan] // geom.s[idx, scan] + 1 + line
    across = np.where(line & axis_x, geom.h_out, geom.w_out)
    streaming = np.where(temporal | geom.is_fc, consumer,
                         geom.c_out * across * np.minimum(in_flight, np.where(line, ext, geom.h_out)))
    return StateWords(sender=sender, consumer=consumer, streaming=streaming, persistent=temporal,
                      copies=copies, ref_reads=ref_reads, rows=rows, cols=cols)


def layer_state_words(layer: Layer, kind: str, axis: str = "y",
                      direction: str = "forward") -> dict[str, int | bool]:
    """:func:`state_words` of one layer and scheme kind, as plain numbers.

    >>> l = Layer("c", "x", "conv", 2, 4, kernel=3, padding=1, input_shape=(2, 5, 5))
    >>> layer_state_words(l, "temporal_delta")["sender"], layer_state_words(l, "line_delta")["consumer"]
    (50, 120)
    """
    if kind not in KINDS:
        raise CostError(f"layer {layer.name!r}: scheme kind must be one of {KINDS}, got {kind!r}")
    sw = state_words(geometry((layer,)), np.array([KINDS.index(kind)]), np.array([axis == "x"]),
                     np.array([direction == "reverse"]))
    return {f: (bool if f == "persistent" else int)(getattr(sw, f)[0])
            for f in ("sender", "consumer", "streaming", "persistent", "copies", "ref_reads")}


# --------------------------------------------------------------------------- mapping
_BASE = np.unique(np.concatenate([np.arange(1, 17), np.round(16 * 1.25 ** np.arange(1, 40))])).astype(np.int64)


def core_shares(c_out: int, rows: int, n_c: int, n_r: int) -> np.ndarray:
    """Fraction of a layer's neurons (and, under uniform load, of its SOPs and
    updates) on each of its cores for a tiling into ``n_c`` channel groups and
    ``n_r`` row bands; shape ``(n_c', n_r')`` of the groups/bands that are non-empty.
    Sums to 1; the largest entry is the busiest core's share."""
    cc = -(-c_out // n_c)
    rr = -(-rows // n_r)
    ch = np.diff(np.minimum(np.arange(0, c_out + cc, cc), c_out))
    rw = np.diff(np.minimum(np.arange(0, rows + rr, rr), rows))
    ch, rw = ch[ch > 0], rw[rw > 0]
    return np.outer(ch, rw) / (c_out * rows)


@dataclass(frozen=True, eq=False)
class Tiling:
    """One tiling per layer (arrays over layers): ``n_c`` channel groups of ``cc`` channels
    times ``n_r`` row bands of ``rr`` rows; ``mem`` bytes per core, ``share`` the busiest
    core's fraction of the layer, ``fits`` whether some tiling fits the core limits."""

    n_c: np.ndarray
    n_r: np.ndarray
    cc: np.ndarray
    rr: np.ndarray
    mem: np.ndarray
    share: np.ndarray
    fits: np.ndarray

    @property
    def cores(self) -> np.ndarray:
        """Cores per layer: channel groups times row bands."""
        return self.n_c * self.n_r


@dataclass(frozen=True, eq=False)
class CoreMapping:
    """Where the layers run (arrays over layers, network order; the result of :func:`map_layers`).

    ``cores``, ``channel_groups``, ``row_bands``, ``channels_per_core``, ``rows_per_core``
    and ``share`` (the busiest core's fraction of the layer) describe each layer's tiling;
    ``mem_per_core_bytes`` is the memory of the layer's (possibly shared) core,
    ``layer_mem_per_core_bytes`` the layer's own part; ``group`` numbers the physical
    cores (consecutive one-core layers sharing a core have one group, ``group_size``
    layers), ``static_cores`` = ``cores / group_size``; ``physical_cores`` is the chip
    total. ``fits`` is per layer; ``overflow_neurons`` / ``overflow_sram_bytes`` say by
    how much a layer that fits no tiling overflows at one channel and one row per core.
    ``first_core`` is the layer's first core in snake order, ``dest`` the destination
    cores of one event and ``dist`` the mean producer -> consumer Manhattan distance."""

    cores: np.ndarray
    channel_groups: np.ndarray
    row_bands: np.ndarray
    channels_per_core: np.ndarray
    rows_per_core: np.ndarray
    share: np.ndarray
    mem_per_core_bytes: np.ndarray
    layer_mem_per_core_bytes: np.ndarray
    neurons_per_core_used: np.ndarray
    group: np.ndarray
    group_size: np.ndarray
    static_cores: np.ndarray
    physical_cores: int
    held_sender_bytes: np.ndarray
    fits: np.ndarray
    overflow_neurons: np.ndarray
    overflow_sram_bytes: np.ndarray
    first_core: np.ndarray
    dest: np.ndarray
    dist: np.ndarray

    @property
    def hops(self) -> np.ndarray:
        """Mesh hops per event: destination cores times mean distance."""
        return self.dest * self.dist

    @property
    def shares_core_with_previous(self) -> np.ndarray:
        """Per layer: it runs on the same physical core as the layer before it."""
        return np.concatenate([[False], np.diff(self.group) == 0])


def _held_sender_bytes(geom: Geometry, state: StateWords, hw: Hardware) -> np.ndarray:
    """Bytes of sender references each layer's cores hold: the references its consumers
    need live on the producer's cores (a layer fed from outside holds its own)."""
    n = len(geom.names)
    held = np.zeros(n + 1)
    np.add.at(held, np.where(geom.producer < 0, np.arange(n), geom.producer), state.sender * (hw.state_bits / 8.0))
    return held[:n]


def _row_bytes(geom: Geometry, state: StateWords, hw: Hardware, held: np.ndarray) -> np.ndarray:
    """Bytes one output row of one channel needs on a core: its potentials and its share of
    the sender references the layer holds."""
    return state.cols * hw.neuron_words * (hw.state_bits / 8.0) + held / (geom.c_out * state.rows)


def _fixed_bytes(geom: Geometry, hw: Hardware, cc: np.ndarray) -> np.ndarray:
    """Bytes of a core independent of its rows: weights of its ``cc`` channels and the event buffer."""
    wpc = geom.weights // geom.c_out
    if cc.ndim == 2:
        wpc = wpc[:, None]
    return cc * wpc * (hw.weight_bits / 8.0) + hw.buffer_events * hw.event_bits / 8.0


def _fewest_cores_tiling(geom: Geometry, state: StateWords, hw: Hardware, held: np.ndarray) -> Tiling:
    """Of the tilings that fit ``neurons_per_core`` and ``sram_per_core``, the one with the fewest
    cores (ties: the smaller busiest-core tile, then fewer channel groups); the finest when none
    fits. Per layer over the channel-group counts ``min(b, C_out)`` for ``b`` in ``_BASE`` (1..16,
    then steps of 1.25x, up to the largest C_out) and ``C_out``, in ``_mapping.fewest_cores_tiling``."""
    c = np.ascontiguousarray(geom.c_out, dtype=np.int64)
    n = len(c)
    base = np.ascontiguousarray(_BASE[: int(np.searchsorted(_BASE, c.max())) + 1] if n else _BASE[:0])
    out_i = [np.empty(n, np.int64) for _ in range(4)]
    mem, share, fits = np.empty(n), np.empty(n), np.empty(n, np.uint8)
    _mapping.fewest_cores_tiling(c, np.ascontiguousarray(state.rows, dtype=np.int64),
                                 np.ascontiguousarray(state.cols, dtype=np.int64),
                                 np.ascontiguousarray(geom.weights // geom.c_out, dtype=np.int64),
                                 np.ascontiguousarray(_row_bytes(geom, state, hw, held), dtype=np.float64),
                                 base, hw.weight_bits / 8.0, hw.buffer_events * hw.event_bits / 8.0,
                                 int(hw.neurons_per_core), float(hw.sram_per_core), *out_i, mem, share, fits)
    n_c, n_r, cc, rr = out_i
    return Tiling(n_c=n_c, n_r=n_r, cc=cc, rr=rr, mem=mem, share=share, fits=fits.astype(bool))


def _split_tiling(t: Tiling, geom: Geometry, state: StateWords, hw: Hardware, held: np.ndarray,
                  split: tuple[np.ndarray, np.ndarray]) -> Tiling:
    """``split`` = (channel groups, row bands) wanted per layer: a fitting layer takes at least
    the tiling ``t`` it needs and at most one row of one channel per core."""
    c, rows = geom.c_out, state.rows
    n_c_t = np.where(t.fits, np.clip(split[0], t.n_c, c), t.n_c)
    n_r_t = np.where(t.fits, np.clip(split[1], t.n_r, rows), t.n_r)
    rr = -(-rows // n_r_t)
    cc = -(-c // n_c_t)
    mem = _fixed_bytes(geom, hw, cc) + rr * (cc * _row_bytes(geom, state, hw, held))
    return Tiling(n_c=-(-c // cc), n_r=-(-rows // rr), cc=cc, rr=rr, mem=mem,
                  share=(cc * rr) / (c * rows), fits=t.fits)


def _pack(t: Tiling, state: StateWords, hw: Hardware) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Consecutive single-core layers share a core while their neurons and memory fit (one event
    buffer per core) [A]. Returns per layer the core group, its first core and the memory of
    its core, and the number of physical cores (the loop runs in ``_mapping.pack_layers``)."""
    n = len(t.mem)
    group, first = np.empty(n, np.int64), np.empty(n, np.int64)
    core_mem = np.array(t.mem, dtype=np.float64)
    phys = _mapping.pack_layers(np.ascontiguousarray(t.cc * t.rr * state.cols, dtype=np.int64),
                                np.ascontiguousarray(t.mem, dtype=np.float64),
                                np.ascontiguousarray(t.cores, dtype=np.int64),
                                ((t.cores == 1) & t.fits).astype(np.uint8),
                                hw.buffer_events * hw.event_bits / 8.0, int(hw.neurons_per_core),
                                float(hw.sram_per_core), group, first, core_mem)
    return group, first, core_mem, int(phys)


def chip_grid(hw: Hardware, total: int) -> tuple[int, int]:
    """(chips along x, chips along y) a mapping of ``total`` cores is placed on: one chip when it
    fits; else ``ceil(total / n_cores)`` chips, in a near-square grid (``overflow_layout="grid"``)
    or one column of chips (``"strip"``: the mesh keeps ``mesh_x`` columns and grows rows)."""
    chips = max(-(-total // hw.n_cores), 1)
    if chips == 1 or hw.overflow_layout == "strip":
        return 1, chips
    cx = int(np.ceil(np.sqrt(chips)))
    return cx, -(-chips // cx)


def _mean_distance(geom: Geometry, hw: Hardware, cores: np.ndarray, first: np.ndarray, total: int) -> np.ndarray:
    """Cores placed in snake (boustrophedon) order, layer after layer, on the mesh of the chips
    :func:`chip_grid` gives (``cx*mesh_x`` columns); per layer the mean Manhattan distance
    between a producer core and one of its cores (outside input enters at node (0, 0)).

    E|a - b| of independent integer coordinates from their CDFs: sum_k F_a(1 - F_b) + F_b(1 - F_a),
    per layer over the columns (x) and the rows (y) of the mesh; ``_mapping.snake_distance_terms``
    computes the terms, summed here."""
    n = len(cores)
    mx = chip_grid(hw, total)[0] * hw.mesh_x
    ny = max(total - 1, 0) // mx + 1
    p = np.where(geom.producer < 0, n, geom.producer)
    tx, ty = np.empty((n, mx)), np.empty((n, ny))
    _mapping.snake_distance_terms(np.ascontiguousarray(first, dtype=np.int64),
                                  np.ascontiguousarray(cores, dtype=np.int64),
                                  np.ascontiguousarray(p, dtype=np.int64), mx, ny, tx, ty)
    return tx.sum(1) + ty.sum(1)


def map_layers(geom: Geometry, state: StateWords, hw: Hardware,
               split: tuple[np.ndarray, np.ndarray] | None = None) -> CoreMapping:
    """Tile every layer onto cores and place the cores on the mesh (see module doc).

    ``split`` (optional): per layer (channel groups, row bands) wanted instead of the
    fewest-cores tiling; a fitting layer takes at least the tiling it needs and at
    most one row of one channel per core.
    """
    held = _held_sender_bytes(geom, state, hw)
    t = _fewest_cores_tiling(geom, state, hw, held)
    if split is not None:
        t = _split_tiling(t, geom, state, hw, held, split)
    # overflow at the finest tiling (1 channel x 1 row per core)
    fine_mem = _fixed_bytes(geom, hw, np.ones_like(geom.c_out)) + _row_bytes(geom, state, hw, held)
    group, first, core_mem, total = _pack(t, state, hw)
    group_size = np.bincount(group)[group]
    # destination cores of one event: channel groups its fan-out spans x row bands its cover spans
    span = (geom.k[:, 0] - 1) * geom.d[:, 0]
    d_c = np.minimum(t.n_c, -(-geom.fan_channels // t.cc))
    d_r = np.minimum(t.n_r, 1.0 + span / (t.rr * geom.s[:, 0]))
    return CoreMapping(
        cores=t.cores, channel_groups=t.n_c, row_bands=t.n_r, channels_per_core=t.cc, rows_per_core=t.rr,
        share=t.share, mem_per_core_bytes=core_mem, layer_mem_per_core_bytes=t.mem,
        neurons_per_core_used=t.cc * t.rr * state.cols, group=group, group_size=group_size,
        static_cores=t.cores / group_size, physical_cores=total, held_sender_bytes=held, fits=t.fits,
        overflow_neurons=np.where(t.fits, 0, np.maximum(state.cols - hw.neurons_per_core, 0)),
        overflow_sram_bytes=np.where(t.fits, 0.0, np.maximum(fine_mem - hw.sram_per_core, 0.0)),
        first_core=first, dest=d_c * d_r, dist=_mean_distance(geom, hw, t.cores, first, total))


def _spread_split(m: CoreMapping, busy: np.ndarray, c: np.ndarray, rows: np.ndarray,
                  n_cores: int) -> tuple[np.ndarray, np.ndarray]:
    """Greedy: while the chip has free cores, split the layer with the slowest busiest
    core once more (one row fewer per band, else one channel fewer per group); stop
    when that layer cannot split or the split would not fit ``n_cores``. Layers left
    on their minimal tiling keep sharing cores. Load scales with the busiest share."""
    n_c, n_r = m.channel_groups.copy(), m.row_bands.copy()
    cores = m.cores.copy()
    load = busy.astype(np.float64).copy()
    grown = np.zeros(len(cores), dtype=bool)
    new_group = np.concatenate([[True], np.diff(m.group) != 0])

    def used() -> int:
        prev_grown = np.concatenate([[True], grown[:-1]])
        return int(cores[grown].sum() + cores[~grown & (prev_grown | new_group)].sum())

    active = m.fits & (load > 0)
    for _ in range(n_cores):
        if not active.any():
            break
        i = int(np.argmax(np.where(active, load, -1.0)))
        rr, cc = -(-int(rows[i]) // int(n_r[i])), -(-int(c[i]) // int(n_c[i]))
        if rr > 1:
            rr2, cc2 = rr - 1, cc
        elif cc > 1:
            rr2, cc2 = rr, cc - 1
        else:
            break
        nr2, nc2 = -(-int(rows[i]) // rr2), -(-int(c[i]) // cc2)
        rr2, cc2 = -(-int(rows[i]) // nr2), -(-int(c[i]) // nc2)
        old = (cores[i], grown[i])
        cores[i], grown[i] = nc2 * nr2, True
        if used() > n_cores:
            cores[i], grown[i] = old
            break
        load[i] *= (cc2 * rr2) / (cc * rr)
        n_c[i], n_r[i] = nc2, nr2
    return n_c, n_r


# --------------------------------------------------------------------------- estimate steps
@dataclass(frozen=True, eq=False)
class Counts:
    """The validated input of :func:`estimate`: geometry, scheme codes (index into
    :data:`KINDS`), line axis (True = x) and reverse scan per layer, and the exact
    ``events`` (E) and ``sops`` (S) per (layer, frame) as float64."""

    geom: Geometry
    kind: np.ndarray
    axis_x: np.ndarray
    reverse: np.ndarray
    events: np.ndarray
    sops: np.ndarray


def _stats_parts(stats: Any) -> tuple[set[str], set[str], Mapping[str, Any], Callable[[str], tuple]]:
    """Data variable names, coordinate names, attrs and ``get(name) -> (dims, values)`` of a
    ``count_events`` Dataset or of its :class:`~else_dse.events.StatsArrays`."""
    if isinstance(stats, StatsArrays):
        return set(stats.data), set(stats.coords), stats.attrs, stats.variable
    if not isinstance(stats, xr.Dataset):
        raise CostError(f"stats must be the xarray.Dataset of else_dse.count_events, got {type(stats).__name__}")
    var = stats.variables            # Variables, not DataArrays: this runs once per estimate
    return ({str(k) for k in stats.data_vars}, {str(k) for k in stats.coords}, stats.attrs,
            lambda name: (var[name].dims, var[name].values))


def check_stats(stats: Any) -> Counts:
    """Step 0: the stats of :func:`else_dse.count_events` (or their
    :class:`~else_dse.events.StatsArrays`) as :class:`Counts`, or a :class:`CostError`."""
    data_vars, coords, attrs, get = _stats_parts(stats)
    for name in ("events", "sops"):
        if name not in data_vars:
            raise CostError(f"stats lacks variable {name!r}; estimate needs 'events' and 'sops' "
                            f"(dims layer, frame) from else_dse.count_events, got {sorted(data_vars)}")
        if tuple(get(name)[0]) != ("layer", "frame"):
            raise CostError(f"stats[{name!r}] must have dims ('layer', 'frame'), got {get(name)[0]}")
    if "layers" not in attrs:
        raise CostError("stats lacks attrs['layers'] (JSON list of Layer.to_dict()); use else_dse.count_events")
    if "scheme" not in coords:
        raise CostError(f"stats lacks coordinate 'scheme' on dim layer (one of {KINDS} per layer)")
    names = tuple(np.atleast_1d(get("layer")[1]).astype(str).tolist()) if "layer" in coords else None
    geom = _geometry_from_json(attrs["layers"], names)
    n = len(geom.names)
    n_stats = np.shape(get("events")[1])[0]
    if n_stats != n:
        raise CostError(f"stats has {n_stats} layers but attrs['layers'] describes {n}; "
                        "without a 'layer' coordinate the stats must cover every described layer")
    text = lambda c: (np.asarray(get(c)[1]).astype(str) if c in coords  # noqa: E731
                      else np.full(n, "", dtype=str))
    kinds = text("scheme")
    match = kinds[:, None] == np.array(KINDS)[None, :]
    if not match.any(axis=1).all():
        i = int(np.flatnonzero(~match.any(axis=1))[0])
        raise CostError(f"layer {geom.names[i]!r}: scheme {str(kinds[i])!r} is not one of {KINDS}")
    kind = match.argmax(axis=1)
    axes = text("axis")
    axis_x = axes == "x"
    reverse = text("direction") == "reverse"
    bad = (kind == _LINE) & (geom.is_fc | ((axes != "y") & ~axis_x))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CostError(f"layer {geom.names[i]!r}: line_delta needs a conv/depthwise layer and axis 'y' or "
                        f"'x', got op fc={bool(geom.is_fc[i])}, axis {str(axes[i])!r}")
    events = np.asarray(get("events")[1], dtype=np.float64)
    sops = np.asarray(get("sops")[1], dtype=np.float64)
    if events.shape[1] == 0:
        raise CostError("stats has no frames")
    if not (np.isfinite(events).all() and np.isfinite(sops).all()) or (events < 0).any() or (sops < 0).any():
        raise CostError("stats 'events' and 'sops' must be finite counts >= 0")
    return Counts(geom, kind, axis_x, reverse, events, sops)




@dataclass(frozen=True, eq=False)
class CoreWork:
    """Step 2, the work per (layer, frame): neuron ``updates`` U, state ``traffic_words`` M,
    ``events_out`` (the events a layer's output sends), ``busy`` (s, the layer's busiest
    core) and ``core_busy`` (s, per physical core: layers sharing a core add up)."""

    updates: np.ndarray
    traffic_words: np.ndarray
    events_out: np.ndarray
    busy: np.ndarray
    core_busy: np.ndarray


def neuron_updates(counts: Counts, execution: str) -> np.ndarray:
    """U per (layer, frame): every neuron every step when time-stepped, else the neurons
    ``S`` SOPs landing uniformly at random touch, ``N*(1 - exp(-S/N))`` [A]."""
    N = counts.geom.neurons.astype(np.float64)[:, None]
    if execution == "timestep":
        return np.broadcast_to(N, counts.events.shape)
    return -N * np.expm1(-counts.sops / N)


def noc_hops(received: np.ndarray, dist: np.ndarray, hop_timing: str) -> np.ndarray:
    """Hop times (units of ``t_hop``) a core spends receiving ``received`` events that travel ``dist``
    hops (a mean): ``"pipelined"`` routers hand it one event per hop time and the route adds its
    length once, ``received*min(dist, 1) + dist`` (events from its own node, dist 0, use no
    link); ``"serialized"`` charges every event its whole route, ``received*dist``
    (docs/hardware.md "Hop timing")."""
    if hop_timing == "serialized":
        return received * dist
    return received * np.minimum(dist, 1.0) + dist


def core_work(counts: Counts, state: StateWords, m: CoreMapping, hw: Hardware, updates: np.ndarray) -> CoreWork:
    """Per-core work of every layer on mapping ``m`` (the module doc's ``U``, ``M`` and ``T``)."""
    E, S, geom, nw = counts.events, counts.sops, counts.geom, hw.neuron_words
    n, n_frames = E.shape
    delta = ((counts.kind == _LINE) | (counts.kind == _TEMPORAL))[:, None]
    traffic = (2.0 * state.copies * nw + state.ref_reads)[:, None] + np.where(delta, E, 0.0)
    e_out = np.zeros((n + 1, n_frames))
    np.add.at(e_out, np.where(geom.producer < 0, n, geom.producer), E)
    f = m.share[:, None]
    busy = 1e-9 * (f * S * (hw.t_sop / hw.lanes) + f * updates * hw.t_neuron_update
                   + (f * state.copies[:, None] * nw) * hw.t_neuron_update
                   + noc_hops(E * (m.dest / m.cores)[:, None], m.dist[:, None], hw.hop_timing) * hw.t_hop)
    g_start = np.flatnonzero(np.concatenate([[True], np.diff(m.group) != 0]))
    return CoreWork(updates=updates, traffic_words=traffic, events_out=e_out[:n], busy=busy,
                    core_busy=np.add.reduceat(busy, g_start, axis=0))


@dataclass(frozen=True, eq=False)
class Latency:
    """Step 3, frame latency (s, per frame) under each schedule; ``frame`` is that of ``schedule``.
    ``stream_starts`` marks the first layer of every streamed run, ``stream_axis`` the line
    axis each layer streams along (0 = y, 1 = x)."""

    schedule: str
    sequential: np.ndarray
    streamed: np.ndarray
    step: np.ndarray
    stream_starts: np.ndarray
    stream_axis: np.ndarray
    throughput_fps: float
    busiest_core_s: float

    @property
    def frame(self) -> np.ndarray:
        """Latency per frame (s) under the estimate's schedule."""
        return {"sequential": self.sequential, "streamed": self.streamed, "step": self.step}[self.schedule]


def stream_runs(counts: Counts, m: CoreMapping) -> tuple[np.ndarray, np.ndarray]:
    """Runs of consecutive layers that overlap line by line under ``"streamed"``, the same rule
    for every scheme: a run breaks where a layer shares the previous layer's core, or where
    a line-delta layer needs its input lines in another order (axis or direction) than the
    run streams. Conventional, dense and temporal-delta layers take lines in any order.
    Returns (run starts, streaming axis per layer: 0 = y, 1 = x)."""
    n = len(counts.kind)
    order = np.where(counts.kind == _LINE, 1 + 2 * counts.axis_x + counts.reverse, 0).tolist()
    shared = m.shares_core_with_previous.tolist()
    starts, run_order, current = [False] * n, [0] * n, 0
    for i in range(n):
        if i == 0 or shared[i] or (order[i] and current and order[i] != current):
            starts[i], current = True, order[i]
        elif order[i] and not current:
            current = order[i]
        run_order[i] = current
    start = np.array(starts)
    run = np.cumsum(start) - 1
    ends = np.append(np.flatnonzero(start)[1:], n) - 1
    final = np.array(run_order)[ends][run]                 # the run's order (0: any, 1-2: y, 3-4: x)
    return start, (final >= 3).astype(np.int64)


def frame_latency(counts: Counts, state: StateWords, m: CoreMapping, w: CoreWork, hw: Hardware,
                  schedule: str) -> Latency:
    """Latency per frame of every schedule (module doc); the same rule for every scheme."""
    busy, geom = w.busy, counts.geom
    t_bar = hw.t_barrier * 1e-9
    starts, axis = stream_runs(counts, m)
    s = np.flatnonzero(starts)
    idx = np.arange(len(axis))
    ext = np.where(axis == 1, state.cols, state.rows)
    fill = np.minimum(1.0, geom.k[idx, axis] / ext)[:, None] * busy      # each layer waits for k lines
    runs = np.minimum(np.add.reduceat(busy, s, axis=0),
                      np.maximum.reduceat(busy, s, axis=0) + np.add.reduceat(fill, s, axis=0))
    bottleneck = float(w.core_busy.mean(axis=1).max()) + t_bar
    return Latency(schedule=schedule, sequential=busy.sum(0) + t_bar, streamed=runs.sum(0) + t_bar,
                   step=w.core_busy.max(0) + t_bar, stream_starts=starts, stream_axis=axis,
                   throughput_fps=1.0 / bottleneck if bottleneck > 0 else float("inf"),
                   busiest_core_s=float(w.core_busy.mean(axis=1).max()))


@dataclass(frozen=True, eq=False)
class Energy:
    """Step 4, energy per (layer, frame) in pJ, one array per component of :data:`COMPONENTS`."""

    synaptic: np.ndarray
    neuron: np.ndarray
    events: np.ndarray
    memory: np.ndarray
    barrier: np.ndarray
    static: np.ndarray

    def components(self) -> dict[str, np.ndarray]:
        """``{component: energy (pJ) per (layer, frame)}`` in the order of :data:`COMPONENTS`."""
        return {c: getattr(self, c) for c in COMPONENTS}

    @property
    def total(self) -> np.ndarray:
        """Energy (pJ) per (layer, frame), every component summed."""
        return self.synaptic + self.neuron + self.events + self.memory + self.barrier + self.static


def energy_components(counts: Counts, m: CoreMapping, w: CoreWork, lat: Latency, hw: Hardware) -> Energy:
    """The module doc's energy terms; static power is charged over the schedule's frame latency."""
    E = counts.events
    sc = m.static_cores                                     # physical cores, shared ones split
    p_static = (sc * hw.p_static_core + hw.p_static_chip * sc / m.physical_cores)[:, None]   # mW
    return Energy(
        synaptic=counts.sops * hw.e_sop,
        neuron=w.updates * hw.e_neuron_update,
        events=E * (hw.e_event_out + m.hops * hw.e_hop)[:, None],
        memory=w.traffic_words * (hw.state_bits * hw.e_sram_bit),
        barrier=np.broadcast_to((sc * hw.e_barrier)[:, None], E.shape),
        static=p_static * 1e9 * lat.frame[None, :])


@dataclass(frozen=True, eq=False)
class Memory:
    """Step 5, memory per layer in bytes: state persistent across frames, state within a frame,
    state under line-streaming accounting, weights and event buffers."""

    persistent: np.ndarray
    frame: np.ndarray
    streaming: np.ndarray
    weights: np.ndarray
    buffers: np.ndarray


def memory_bytes(geom: Geometry, state: StateWords, m: CoreMapping, hw: Hardware) -> Memory:
    """Step 5: the :class:`Memory` of every layer (state words at ``state_bits``, weights, buffers)."""
    sb, nw = hw.state_bits / 8.0, hw.neuron_words
    state_bytes = (state.sender + state.consumer * nw) * sb
    return Memory(persistent=np.where(state.persistent, state_bytes, 0.0),
                  frame=np.where(state.persistent, 0.0, state_bytes),
                  streaming=(state.sender + state.streaming * nw) * sb,
                  weights=geom.weights * (hw.weight_bits / 8.0),
                  buffers=m.static_cores * hw.buffer_events * hw.event_bits / 8.0)


@dataclass(frozen=True)
class Fit:
    """Step 6: whether the mapping fits the chip, and if not, what overflows by how much."""

    fits: bool
    overflow: tuple[str, ...]


def fit_of(geom: Geometry, state: StateWords, m: CoreMapping, hw: Hardware) -> Fit:
    """Which layer overflows which limit (``neurons_per_core``, ``sram_per_core``, ``n_cores``) by how much."""
    out = []
    for i in np.flatnonzero(~m.fits):
        name = geom.names[i]
        if m.overflow_neurons[i] <= 0 and m.overflow_sram_bytes[i] <= 0:   # rounding at the limit
            out.append(f"layer {name!r}: no tiling fits neurons_per_core={hw.neurons_per_core} "
                       f"and sram_per_core={hw.sram_per_core} (at the limit)")
        if m.overflow_neurons[i] > 0:
            out.append(f"layer {name!r}: one output row of one channel needs {int(state.cols[i])} "
                       f"neurons, over neurons_per_core={hw.neurons_per_core} by {int(m.overflow_neurons[i])}")
        if m.overflow_sram_bytes[i] > 0:
            out.append(f"layer {name!r}: at one channel and one row per core it needs "
                       f"{m.overflow_sram_bytes[i] + hw.sram_per_core:.0f} bytes per core, over "
                       f"sram_per_core={hw.sram_per_core} by {m.overflow_sram_bytes[i]:.0f}")
    fits_cores = m.physical_cores <= hw.n_cores
    if not fits_cores:
        out.append(f"the mapping needs {m.physical_cores} cores, over n_cores={hw.n_cores} "
                   f"by {m.physical_cores - hw.n_cores}")
    return Fit(fits=bool(m.fits.all() and fits_cores), overflow=tuple(out))


def resolve_schedule(hw: Hardware, execution: str | None, schedule: str | None) -> tuple[str, str]:
    """(execution, schedule) of an estimate: the arguments, else the template's; schedule
    ``"auto"`` is ``"step"`` when time-stepped, else ``"streamed"``."""
    execution = hw.execution if execution is None else execution
    if execution not in EXECUTIONS:
        raise CostError(f"execution must be one of {EXECUTIONS}, got {execution!r}")
    if schedule == "pipelined":
        raise CostError("schedule 'pipelined' (line-delta layers only) is gone: use 'streamed', which "
                        f"overlaps the layers of every scheme alike; allowed: {SCHEDULES} or None")
    schedule = hw.schedule if schedule is None else schedule
    if schedule == "auto":
        schedule = "step" if execution == "timestep" else "streamed"
    if schedule not in SCHEDULES:
        raise CostError(f"schedule must be one of {SCHEDULES} or None (the template's), got {schedule!r}")
    return execution, schedule


def estimate(stats: xr.Dataset, hardware: Hardware, execution: str | None = None,
             schedule: str | None = None, spread: bool = False) -> xr.Dataset:
    """Energy, latency and memory of ``stats`` on ``hardware``: mapping -> per-core work ->
    latency (schedule) -> energy components -> memory -> fit (see the module doc).

    ``execution`` overrides ``hardware.execution`` ("event" | "timestep");
    ``schedule`` overrides ``hardware.schedule``: "sequential" (layer by layer), "streamed"
    (consecutive layers overlap line by line, every scheme alike) or "step"; the template's
    default ``"auto"`` is "step" when time-stepped, else "streamed".
    ``spread=True`` hands the cores the fewest-cores mapping leaves free to the
    layer whose busiest core is slowest, one split at a time (one row fewer per
    band, else one channel fewer per group), lowering the busiest core's time at
    the price of static power [A: a layer's work divides evenly over its neurons].

    Returns a Dataset with per-layer variables (dim ``layer``, means per frame):
    ``events``, ``events_out``, ``sops``, ``neuron_updates``, ``hops``,
    ``energy_pj`` and ``energy_<component>_pj`` for :data:`COMPONENTS`,
    ``busy_s`` (busiest core), ``latency_s`` (the layer's contribution to the
    sequential latency), ``stream_run_start``, ``cores``, ``weight_bytes``, ``state_persistent_bytes``,
    ``state_frame_bytes``, ``buffer_bytes``, ``mem_per_core_bytes``, ``layer_fits``;
    per frame ``frame_energy_pj`` / ``frame_busy_s`` (layer, frame) and
    ``frame_total_energy_pj`` / ``frame_total_latency_s`` (frame); and totals
    ``total_energy_pj``, ``total_energy_<component>_pj``, ``total_latency_s``,
    ``total_latency_sequential_s``, ``total_latency_streamed_s``, ``total_step_s``,
    ``total_static_power_mw``, ``throughput_fps``, ``peak_mem_per_core_bytes``,
    ``total_state_persistent_bytes``, ``total_state_frame_bytes``, ``total_weight_bytes``,
    ``total_cores``, ``fits``. ``attrs``: ``schedule``, ``execution``, ``hop_timing`` and
    ``overflow_layout`` used, and
    ``overflow``, a human-readable description of why the mapping does
    not fit -- which layer overflows which limit (``neurons_per_core``,
    ``sram_per_core``, ``n_cores``) by how much, ``"; "``-separated -- and ``""``
    exactly when ``fits`` is true.
    """
    return estimate_values(stats, hardware, execution, schedule, spread).dataset()


@dataclass(frozen=True, eq=False)
class Estimate:
    """What :func:`estimate` returns, as numpy values: ``data`` ``{name: (dims, values)}`` in the
    Dataset's order, ``coords`` and ``attrs``; :meth:`dataset` is that Dataset."""

    data: dict[str, tuple[tuple[str, ...], Any]]
    coords: dict[str, Any]
    attrs: dict[str, Any]

    def dataset(self) -> xr.Dataset:
        """The Dataset :func:`estimate` returns."""
        return xr.Dataset(self.data, coords=self.coords, attrs=self.attrs)


def estimate_values(stats: xr.Dataset | StatsArrays, hardware: Hardware, execution: str | None = None,
                    schedule: str | None = None, spread: bool = False) -> Estimate:
    """:func:`estimate` (same arguments, same checks) without building the Dataset: the
    search's per-trial path, which reads the values it stores straight from the arrays.
    ``stats`` may also be the :class:`~else_dse.events.StatsArrays` of the Dataset."""
    if not isinstance(hardware, Hardware):
        raise CostError(f"hardware must be an else_dse.Hardware, got {type(hardware).__name__}")
    hw = hardware
    execution, schedule = resolve_schedule(hw, execution, schedule)
    counts = check_stats(stats)
    _, coord_names, stats_attrs, get = _stats_parts(stats)
    frame = get("frame")[1] if "frame" in coord_names else None
    geom = counts.geom
    st = state_words(geom, counts.kind, counts.axis_x, counts.reverse)
    m = map_layers(geom, st, hw)                                            # 1. mapping
    updates = neuron_updates(counts, execution)
    work = core_work(counts, st, m, hw, updates)                            # 2. per-core work
    if spread and m.physical_cores < hw.n_cores and m.fits.any():
        split = _spread_split(m, work.busy.mean(1), geom.c_out, st.rows, hw.n_cores)
        m = map_layers(geom, st, hw, split=split)
        work = core_work(counts, st, m, hw, updates)
    lat = frame_latency(counts, st, m, work, hw, schedule)                  # 3. latency
    energy = energy_components(counts, m, work, lat, hw)                    # 4. energy
    memory = memory_bytes(geom, st, m, hw)                                  # 5. memory
    fit = fit_of(geom, st, m, hw)                                           # 6. fit
    attrs = {"hardware": hw.name, "execution": execution, "schedule": schedule, "spread": int(spread),
             "hop_timing": hw.hop_timing, "overflow_layout": hw.overflow_layout,
             "overflow": "; ".join(fit.overflow), "layers": stats_attrs["layers"],
             "hardware_json": _hardware_json(hw)}
    return _result(frame, counts, m, work, lat, energy, memory, fit, hw, attrs)


def _result(frame: np.ndarray | None, counts: Counts, m: CoreMapping, w: CoreWork, lat: Latency, energy: Energy,
            memory: Memory, fit: Fit, hw: Hardware, attrs: dict[str, Any]) -> Estimate:
    """The steps' values as the documented variables (``frame``: the stats' frame coordinate, if any)."""
    L, LF, F = ("layer",), ("layer", "frame"), ("frame",)
    mean = lambda a: a.mean(axis=1)  # noqa: E731
    comp, total = energy.components(), energy.total
    E, S = counts.events, counts.sops
    sc = m.static_cores
    data: dict[str, Any] = {
        "events": (L, mean(E)), "events_out": (L, mean(w.events_out)), "sops": (L, mean(S)),
        "neuron_updates": (L, mean(w.updates)), "hops": (L, m.hops), "dest_cores": (L, m.dest),
        "energy_pj": (L, mean(total)),
        **{f"energy_{c}_pj": (L, mean(v)) for c, v in comp.items()},
        "state_traffic_bits": (L, mean(w.traffic_words) * hw.state_bits),
        "busy_s": (L, mean(w.busy)), "latency_s": (L, mean(w.busy)),
        "stream_run_start": (L, lat.stream_starts),
        "cores": (L, m.cores), "channel_groups": (L, m.channel_groups),
        "row_bands": (L, m.row_bands), "first_core": (L, m.first_core),
        "core_group": (L, m.group), "layers_on_core": (L, m.group_size),
        "busiest_core_share": (L, m.share),
        "weight_bytes": (L, memory.weights), "state_persistent_bytes": (L, memory.persistent),
        "state_frame_bytes": (L, memory.frame), "state_streaming_bytes": (L, memory.streaming),
        "buffer_bytes": (L, memory.buffers),
        "mem_per_core_bytes": (L, m.mem_per_core_bytes), "neurons_per_core_used": (L, m.neurons_per_core_used),
        "layer_fits": (L, m.fits), "overflow_neurons": (L, m.overflow_neurons),
        "overflow_sram_bytes": (L, m.overflow_sram_bytes),
        "frame_energy_pj": (LF, total), "frame_busy_s": (LF, w.busy),
        "frame_total_energy_pj": (F, total.sum(0)), "frame_total_latency_s": (F, lat.frame),
        "total_energy_pj": ((), float(total.sum(0).mean())),
        **{f"total_energy_{c}_pj": ((), float(v.sum(0).mean())) for c, v in comp.items()},
        "total_latency_s": ((), float(lat.frame.mean())),
        "total_latency_sequential_s": ((), float(lat.sequential.mean())),
        "total_latency_streamed_s": ((), float(lat.streamed.mean())),
        "total_step_s": ((), float(lat.step.mean())),
        "total_static_power_mw": ((), float((sc * hw.p_static_core + hw.p_static_chip * sc / m.physical_cores)
                                            .sum())),
        "throughput_fps": ((), lat.throughput_fps),
        "busiest_core_cycles": ((), lat.busiest_core_s * hw.clock_hz if hw.clock_hz else float("nan")),
        "total_sops": ((), float(mean(S).sum())), "total_events": ((), float(mean(E).sum())),
        "total_neuron_updates": ((), float(mean(w.updates).sum())),
        "peak_mem_per_core_bytes": ((), float(m.mem_per_core_bytes.max())),
        "total_state_persistent_bytes": ((), float(memory.persistent.sum())),
        "total_state_frame_bytes": ((), float(memory.frame.sum())),
        "total_state_streaming_bytes": ((), float(memory.streaming.sum())),
        "total_weight_bytes": ((), float(memory.weights.sum())),
        "total_buffer_bytes": ((), float(memory.buffers.sum())),
        "total_cores": ((), int(m.physical_cores)),
        "fits": ((), fit.fits),
    }
    coords: dict[str, Any] = {"layer": list(counts.geom.names), "scheme": (L, np.array(KINDS)[counts.kind])}
    if frame is not None:
        coords["frame"] = frame
    return Estimate(data, coords, attrs)


@lru_cache(maxsize=256)
def _hardware_json(hw: Hardware) -> str:
    return json.dumps(hw.to_dict())


