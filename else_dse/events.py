"""Exact event statistics of a quantized recording under a scheme or a per-layer plan.

:func:`count_events` runs the Cython kernels (``else_dse._kernels``) once per
recorded tensor and scheme and wraps the result in an :class:`xarray.Dataset`
with dims ``(layer, frame)``; :func:`event_curve` gives events, SOPs and error
of one layer for many thresholds at once. Everything follows
``shared/design/semantics.md``; the choices that document leaves open are:

- **Open-loop error.** The error is that of what the consumer has accumulated,
  ``Y_h = Y_{h-s} + Dt_h`` (line delta) or ``Y_f = Y_{f-1} + Dt_f`` (temporal),
  while the sender's reference is the input itself (``R_h = X_h``). In the
  closed loop ``Y = R``.
- **Where the error is measured.** Against ``X`` before the activation
  threshold ``tau``. Line delta: over the needed lines only (bottom-padding
  lines included, where ``X = 0`` but ``Y`` may not be; input lines no output
  row reads are not sent and not counted); both norms of ``rel_error`` are over
  those lines. Other schemes: over the whole tensor. ``rel_error`` is
  ``||X - Y|| / ||X||``, 0 when ``X = Y``.
- **Conventional and dense events** count every non-zero (every) element,
  including elements whose fan-out is zero (a stride larger than the kernel).
- **Line indexing** (``lines=True``): for line delta, ``line`` is the index
  along the scan in scan order (line ``j`` of the reverse scan is input row
  ``H - 1 - j``; for axis x, columns), over the extended range ``[0, L)``
  where lines ``>= H`` are bottom padding (in scan order). For the other
  schemes ``line`` is the input row ``y``. Layers with fewer lines are padded
  with zeros up to the longest layer; ``line_events.sum("line") == events``.
- **Reconstruction** (:func:`reconstruct`): what the consumer layer computes
  on, from the same kernels through a mode that also writes it. Conventional
  and dense: ``X`` with ``|X| <= tau`` zeroed. Line delta: ``R`` (closed loop)
  or ``Y`` (open loop) on every needed line of the tensor; the lines no output
  row reads are not sent and keep ``X``; bottom-padding lines (where the
  receiver holds ``|R| <= theta``) are not part of the tensor. Temporal delta:
  ``R`` or ``Y`` after each frame, the state carried in and out
  (:class:`TemporalState`) so frames run one by one or in chunks give the
  results of one pass.
- **event_curve** replaces the scheme's ``threshold`` (or, for
  :class:`Conventional`, its ``tau``) by each of ``thresholds``. Conventional
  curves come exactly from a histogram of ``|X|`` weighted by fan-out. Line and
  temporal delta curves run every threshold in one pass: each line (block of
  positions) is loaded once and processed for every threshold while in cache.
  In the open loop ``D`` (after ``tau``) does not depend on the threshold and is
  computed once. Its error (what the consumer accumulates differs per threshold
  even in the open loop) needs the recursion per threshold, which counts events
  and SOPs on the way; ``error=False`` skips the error (NaN) and then events and
  SOPs of every threshold come exactly from one histogram of ``|D|`` per frame
  (counts and fan-out weights, then a reverse cumulative sum).

Implementation: the kernels read the stored codes and subtract the zero point
on load (``X = code - zero_point`` as :meth:`QuantizedRecording.signed`), so no
converted copy is made. Layers reading one tensor share work: conventional and
temporal counts per (frame, position) are computed once per tensor and scheme,
lossless line deltas (``theta = tau = 0``, where ``R = X`` needs no state) once
per tensor, axis and stride. Every layer runs in one batch (:mod:`else_dse.batched`:
one kernel call for the streaming counts, one for the lossy deltas, one for the lines),
but Dense layers and the temporal deltas of a chunked run, which carry state across
chunks, run layer by layer.

>>> import numpy as np, else_dse as ed
>>> layer = ed.Layer("c1", "x", "conv", 1, 4, kernel=3, padding=1, input_shape=(1, 4, 4))
>>> x = np.tile(np.arange(4, dtype=np.float32), (1, 1, 4, 1))   # every row equal
>>> q = ed.Recording.from_arrays([layer], {"x": x}).quantize(bits=8)
>>> int(ed.count_events(q, ed.Conventional())["events"].sum())
12
>>> int(ed.count_events(q, ed.LineDelta(axis="y"))["events"].sum())   # first row, then -row at y=4
6
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from xarray.indexes import PandasIndex

from . import _kernels, batched
from .recording import QuantizedRecording, Recording
from .schemes import (Conventional, Dense, LineDelta, Scheme, SchemeOrPlan, TemporalDelta,
                      as_plan)
from .workload import Layer

__all__ = ["count_events", "event_curve", "curve_values", "curve_dataset", "layers_of", "stats_dataset", "stats_arrays", "StatsArrays", "LayerStats", "reconstruct", "Reconstruction", "TemporalState"]

_PROGRESS_MIN_LAYERS = 8


@dataclass(frozen=True)
class _Counts:
    """Per-frame results of one layer (internal)."""

    events: np.ndarray       # (F,) int64
    sops: np.ndarray         # (F,) int64
    max_error: np.ndarray    # (F,) float64
    err_sq: np.ndarray       # (F,) int64: sum (X - Y)**2 (rel_error is computed for all layers at once)
    x_sq: np.ndarray         # (F,) int64: sum X**2
    line_events: np.ndarray  # (F, n_lines) int64
    line_sops: np.ndarray    # (F, n_lines) int64


def _rel_error(err_sq: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
    num = np.sqrt(np.asarray(err_sq, dtype=np.float64))
    den = np.sqrt(np.asarray(x_sq, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(num == 0, 0.0, num / np.where(den == 0, 0.0, den))
    return np.where((num > 0) & (den == 0), np.inf, out).astype(np.float64)


def _check_qrec(qrec: Any, where: str) -> QuantizedRecording:
    if isinstance(qrec, QuantizedRecording):
        return qrec
    if isinstance(qrec, Recording):
        raise TypeError(f"{where} counts events on integer codes: quantize the recording first, "
                        f"e.g. rec.quantize(bits=8)")
    raise TypeError(f"{where} needs an else_dse.QuantizedRecording, got {type(qrec).__name__}")


def _flat(X: np.ndarray) -> np.ndarray:
    """``(F, C, H, W)`` -> ``(F, C, H*W)`` view."""
    F, C, H, W = X.shape
    return X.reshape(F, C, H * W)


@functools.lru_cache(maxsize=1024)
def _fan_out(layer: Layer) -> np.ndarray:
    """``layer.fan_out()`` (H, W), cached and read-only."""
    fan = np.ascontiguousarray(layer.fan_out(), dtype=np.int64)
    fan.flags.writeable = False
    return fan


@functools.lru_cache(maxsize=1024)
def _dense_macs(layer: Layer) -> int:
    return layer.dense_macs


@functools.lru_cache(maxsize=64)
def _layers_json(layers: tuple[Layer, ...]) -> str:
    return json.dumps([layer.to_dict() for layer in layers])


@functools.lru_cache(maxsize=64)
def _dense_columns(layers: tuple[Layer, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Dense events and MACs per layer, ``(n_layers, 1)`` int64, read-only."""
    ev = np.array([[layer.dense_events] for layer in layers], np.int64)
    macs = np.array([[_dense_macs(layer)] for layer in layers], np.int64)
    ev.flags.writeable = macs.flags.writeable = False
    return ev, macs


def _line_geometry(layer: Layer, scheme: LineDelta) -> tuple[Layer, np.ndarray, np.ndarray]:
    """The layer in scan coordinates (swapped for axis x, flipped for reverse), its
    extended cover along the scan and its conventional cover across it."""
    return _scan_geometry(layer, scheme.axis, scheme.direction)


@functools.lru_cache(maxsize=1024)
def _scan_geometry(layer: Layer, axis: str, direction: str) -> tuple[Layer, np.ndarray, np.ndarray]:
    g = layer.swapped() if axis == "x" else layer
    if direction == "reverse":
        g = g.flipped()
    cover_line = np.ascontiguousarray(g.cover("y", extended=True), dtype=np.int64)
    cover_pos = np.ascontiguousarray(g.cover("x"), dtype=np.int64)
    s = g.stride[0]
    needed = cover_line > 0
    bad = np.nonzero(needed[s:] & ~needed[:-s])[0] if len(needed) > s else []
    if len(bad):  # cannot happen for the extended row range; guard the kernel's ring buffer
        raise RuntimeError(f"layer {layer.name!r}: needed line {int(bad[0]) + s} references line "
                           f"{int(bad[0])}, which is not needed")
    cover_line.flags.writeable = False
    cover_pos.flags.writeable = False
    return g, cover_line, cover_pos


def _code_arrays(qrec: QuantizedRecording, only: str | None = None) -> dict[str, tuple[Any, int]]:
    """``{tensor: (variable, zero_point)}`` of the stored codes, read once (of
    tensor ``only`` alone if given).

    The kernels form ``X = code - zero_point`` (``QuantizedRecording.signed``) on
    load, so the codes are used as stored (uint8 / uint16) without a converted copy.
    """
    out: dict[str, tuple[Any, int]] = {}
    for var in qrec.data.variables.values():
        tensor = var.attrs.get("tensor")
        if tensor is not None and "zero_point" in var.attrs and (only is None or str(tensor) == only):
            out[str(tensor)] = (var, int(var.attrs["zero_point"]))
            if only is not None:
                break
    return out


def _codes(qrec: QuantizedRecording, tensor: str, found: dict[str, tuple[Any, int]]
           ) -> tuple[np.ndarray, int]:
    """C-contiguous codes of ``tensor`` and the zero point to subtract."""
    if tensor in found:
        var, zp = found[tensor]
        codes = np.ascontiguousarray(var.values)
        if codes.dtype in (np.uint8, np.uint16, np.int8, np.int16, np.int32):
            return codes, zp
    return qrec.signed(tensor), 0


class _TensorCache:
    """Codes and per-tensor kernel results shared by layers reading one tensor."""

    def __init__(self, qrec: QuantizedRecording, layers: Sequence[Layer],
                 states: dict[tuple, np.ndarray] | None = None, threads: int = 1,
                 found: dict[str, tuple[Any, int]] | None = None) -> None:
        self.qrec = qrec
        self.states = states
        self.threads = threads
        self.expect(layers)
        self.found = _code_arrays(qrec) if found is None else found
        self.arrays: dict[str, tuple[np.ndarray, int]] = {}
        self.results: dict[tuple, Any] = {}

    def expect(self, layers: Sequence[Layer]) -> None:
        """Release a tensor's codes and results after the last of ``layers`` (run in
        order, ``done(j, ...)`` with j their index) that reads it."""
        self.last_use = {layer.input: i for i, layer in enumerate(layers)}

    def split(self, layers: Sequence[Layer]) -> "_TensorCache":
        """A cache for ``layers`` (all reading tensors no other group reads), one kernel thread,
        sharing this one's codes lookup and temporal states (keyed by tensor: disjoint)."""
        return _TensorCache(self.qrec, layers, self.states, 1, self.found)

    def codes(self, tensor: str) -> tuple[np.ndarray, int]:
        if tensor not in self.arrays:
            self.arrays[tensor] = _codes(self.qrec, tensor, self.found)
        return self.arrays[tensor]

    def done(self, i: int, tensor: str) -> None:
        if self.last_use[tensor] == i:
            self.arrays.pop(tensor, None)
            for key in [k for k in self.results if k[0] == tensor]:
                del self.results[key]

    def threads_for(self, X: np.ndarray, streaming: bool = False) -> int:
        """:func:`kernel_threads` of the codes ``X`` at this cache's ``threads``."""
        return kernel_threads(self.threads, X.size, streaming)

    def temporal_state(self, tensor: str, scheme: TemporalDelta, X: np.ndarray) -> dict[str, np.ndarray]:
        """The kernel's ``state=`` argument when the run carries temporal state
        (``states``: ``{(tensor, scheme): (2, C*H*W) int32}``, advanced in place), else none."""
        if self.states is None:
            return {}
        key = (tensor, scheme)
        if key not in self.states:
            self.states[key] = np.zeros((2, X[0].size), np.int32)
        return {"state": self.states[key]}

    def get(self, key: tuple, compute: Any) -> Any:
        if key not in self.results:
            self.results[key] = compute()
        return self.results[key]


# ---- per-scheme counting --------------------------------------------------------

def _dense(layer: Layer, F: int) -> _Counts:
    c, h, w = layer.input_shape
    fan = _fan_out(layer)
    zeros = np.zeros(F, np.int64)
    return _Counts(np.full(F, layer.dense_events, np.int64), np.full(F, _dense_macs(layer), np.int64),
                   np.zeros(F), zeros, zeros, np.full((F, h), c * w, np.int64),
                   np.tile(c * fan.sum(axis=1), (F, 1)).astype(np.int64))


def _position_counts(kernel: Any, X: np.ndarray, zp: int, *args: Any,
                     **recon: Any) -> tuple[np.ndarray, ...]:
    """Run a per-position kernel (conventional / temporal) -> count (F, H, W) and errors
    (``recon``: the kernel's optional reconstruction / state arguments)."""
    F, C, H, W = X.shape
    count = np.zeros((F, H * W), np.int32)
    emax, esq, xsq = (np.zeros(F, np.int64) for _ in range(3))
    kernel(_flat(X), *args, count, emax, esq, xsq, zp=zp, **recon)
    return count.reshape(F, H, W), emax, esq, xsq


def _from_position_counts(layer: Layer, res: tuple[np.ndarray, ...]) -> _Counts:
    count, emax, esq, xsq = res
    events, sops, line_events, line_sops = batched.position_lines(layer, count)
    return _Counts(events, sops, emax.astype(np.float64), esq, xsq, line_events, line_sops)


def _count_layer(i: int, layer: Layer, scheme: Scheme, cache: _TensorCache, F: int) -> _Counts:
    if isinstance(scheme, Dense) and scheme.tau == 0:
        return _dense(layer, F)
    X, zp = cache.codes(layer.input)
    if isinstance(scheme, (Conventional, Dense)):
        res = cache.get((layer.input, "conventional", scheme.tau),
                        lambda: _position_counts(_kernels.conventional, X, zp, scheme.tau,
                                                 threads=cache.threads_for(X, True)))
        if isinstance(scheme, Dense):  # everything is sent; the error is that of the threshold
            dense = _dense(layer, F)
            return dataclasses.replace(dense, max_error=res[1].astype(np.float64), err_sq=res[2],
                                       x_sq=res[3])
        return _from_position_counts(layer, res)
    if isinstance(scheme, TemporalDelta):
        lossless = scheme.threshold == scheme.tau == 0
        res = cache.get((layer.input, "temporal_delta", scheme),
                        lambda: _position_counts(_kernels.temporal_delta, X, zp, scheme.threshold,
                                                 scheme.loop == "closed", scheme.tau,
                                                 threads=cache.threads_for(X, lossless),
                                                 **cache.temporal_state(layer.input, scheme, X)))
        return _from_position_counts(layer, res)
    raise ValueError(f"layer {layer.name!r}: unknown scheme {scheme!r}")


# ---- public API --------------------------------------------------------------------

THREADS_ENV = "ELSE_DSE_THREADS"
PAR_MIN = 1 << 18   # codes per kernel thread: below it a tensor runs on fewer threads
#: the same for the kernels that stream the codes once (conventional, lossless deltas): one
#: thread already reads some 50 GB/s and a team start costs ~60 µs (benchmarks/bench_events.py)
PAR_MIN_STREAMING = 1 << 22


def kernel_threads(threads: int, size: int, streaming: bool = False) -> int:
    """Kernel threads for ``size`` codes: one per ``PAR_MIN`` codes (``PAR_MIN_STREAMING`` for
    the kernels that only stream the codes once: conventional, lossless deltas), at most
    ``threads`` (a thread team costs more than it saves on a small tensor)."""
    return max(1, min(threads, size // (PAR_MIN_STREAMING if streaming else PAR_MIN)))


def resolve_threads(threads: int | None) -> int:
    """The kernels' thread count: ``threads`` if given, else the environment variable
    ``ELSE_DSE_THREADS``, else every core this process may run on."""
    where = "threads"
    if threads is None:
        env = os.environ.get(THREADS_ENV)
        if env is None:
            return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        where = f"environment variable {THREADS_ENV}"
        try:
            threads = int(env)
        except ValueError:
            raise ValueError(f"{where} must be an int >= 1, got {env!r}") from None
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"{where} must be an int >= 1, got {threads!r}")
    return int(threads)


def count_events(qrec: QuantizedRecording, scheme_or_plan: SchemeOrPlan,
                 lines: bool = False, *, threads: int | None = None) -> xr.Dataset:
    """Events, SOPs and reconstruction error per layer and frame.

    ``scheme_or_plan`` is one scheme for every layer or a :class:`Plan`. Returns a
    Dataset with dims ``(layer, frame)``: int64 ``events``, ``sops``,
    ``dense_events``, ``dense_macs``; float64 ``max_error`` (code steps) and
    ``rel_error``; coords ``scheme`` (kind), ``axis``, ``threshold``, ``tau``, ``op``
    (also ``direction``, ``loop``) on ``layer``; attrs ``layers`` (JSON geometry),
    ``plan`` (repr), ``bits``, ``calibration``. ``lines=True`` adds
    ``line_events`` and ``line_sops`` with dims ``(layer, frame, line)`` (see the
    module docstring for the line indexing). A chunked recording
    (``open_recording(path, chunks={"frame": k})``) is counted chunk by chunk,
    on a ``dask.distributed`` cluster if a client is active, with the same result.
    ``threads`` sets the kernels' OpenMP threads (default: ``ELSE_DSE_THREADS``,
    else all cores); results are identical for every thread count.
    """
    qrec = _check_qrec(qrec, "count_events")
    n = resolve_threads(threads)
    if qrec.frame_chunks is not None:
        as_plan(scheme_or_plan).resolve(qrec.layers)   # a bad plan fails before streaming
        from .chunked import count_chunked
        return count_chunked(qrec, scheme_or_plan, lines, n)
    return _count(qrec, scheme_or_plan, lines, _TensorCache(qrec, qrec.layers, threads=n))


def _count(qrec: QuantizedRecording, scheme_or_plan: SchemeOrPlan, lines: bool,
           cache: "_TensorCache") -> xr.Dataset:
    """:func:`count_events` of an in-memory recording through ``cache`` (which carries
    the temporal state of a chunked run): every layer in one batch (:mod:`else_dse.batched`)
    but Dense layers and the temporal deltas of a chunked run (state carried across
    chunks), which run layer by layer."""
    plan = as_plan(scheme_or_plan)
    layers = qrec.layers
    schemes = plan.resolve(layers)
    F = qrec.n_frames
    in_batch = {i: e for i, (layer, scheme) in enumerate(zip(layers, schemes))
                if (e := _batch_entry(layer, scheme, cache)) is not None}
    rest = [i for i in range(len(layers)) if i not in in_batch]
    results: dict[int, _Counts] = {}
    bar = None
    if len(rest) >= _PROGRESS_MIN_LAYERS and sys.stderr.isatty():  # tqdm's disable=None, unbuilt
        from tqdm.auto import tqdm
        bar = tqdm(total=len(rest), desc="count_events", unit="layer", disable=None, leave=False)
    groups: dict[str, list[int]] = {}          # layers by input tensor: a group shares codes and results
    for i in rest:
        groups.setdefault(layers[i].input, []).append(i)
    sub = [layers[i] for i in rest]

    def run(group: list[int], c: _TensorCache) -> None:
        for j, i in enumerate(group):
            results[i] = _count_layer(i, layers[i], schemes[i], c, F)
            c.done(j, layers[i].input)
            if bar is not None:
                bar.update()

    try:
        batch = _run_batch(cache, [layers[i] for i in in_batch], list(in_batch.values()), F, lines)
        if _pool_groups(cache, layers, schemes, groups):  # many tensors: one thread each
            with ThreadPoolExecutor(cache.threads) as pool:
                for f in [pool.submit(run, g, cache.split([layers[i] for i in g])) for g in groups.values()]:
                    f.result()
        elif rest:                             # few tensors: the kernels' own threads
            cache.expect(sub)
            run(rest, cache)
    finally:
        if bar is not None:
            bar.close()
    return _assemble(qrec, scheme_or_plan, list(in_batch), batch, results, lines)


def _batch_entry(layer: Layer, scheme: Scheme, cache: "_TensorCache"
                 ) -> tuple[int, int, batched.Line | None, int, bool] | None:
    """``(op, tau, scan, theta, closed)`` of a layer the batch counts (conventional, line
    deltas, temporal deltas without carried state), else None (Dense, chunked temporal)."""
    if isinstance(scheme, TemporalDelta) and cache.states is not None:
        return None
    return _layer_entry(layer, scheme)


@functools.lru_cache(maxsize=4096)
def _layer_entry(layer: Layer, scheme: Scheme) -> tuple[int, int, batched.Line | None, int, bool] | None:
    """:func:`_batch_entry` without carried state (cached: the scan geometry costs ~2 us)."""
    if type(scheme) is Conventional:
        return batched.CONVENTIONAL, scheme.tau, None, 0, True
    if isinstance(scheme, TemporalDelta):
        if scheme.threshold == scheme.tau == 0:
            return batched.TEMPORAL, 0, None, 0, True
        return batched.TEMPORAL_DELTA, scheme.tau, None, scheme.threshold, scheme.loop == "closed"
    if isinstance(scheme, LineDelta):
        g, cover_line, cover_pos = _line_geometry(layer, scheme)
        line = batched.Line(scheme.axis, g.stride[0], scheme.direction == "reverse", cover_line, cover_pos)
        if scheme.threshold == scheme.tau == 0:
            return batched.PAIRS, 0, line, 0, True
        return batched.LINE_DELTA, scheme.tau, line, scheme.threshold, scheme.loop == "closed"
    return None


def _run_batch(cache: "_TensorCache", layers: list[Layer], entries: list[tuple], F: int,
               lines: bool) -> batched.Layers:
    """:func:`batched.count` of ``layers`` under their ``_batch_entry``, on the codes
    as stored (read once per tensor, not kept in ``cache``)."""
    codes: dict[str, tuple[np.ndarray, int]] = {}
    for layer in layers:
        if layer.input not in codes:
            codes[layer.input] = _codes(cache.qrec, layer.input, cache.found)
    rows = [(layer, *codes[layer.input], *e) for layer, e in zip(layers, entries)]
    size = {True: 0, False: 0}
    for tensor, lossy in {(layer.input, e[0] >= batched.LINE_DELTA) for layer, e in zip(layers, entries)}:
        size[lossy] += codes[tensor][0].size
    positions = sum(F * layer.input_shape[1] * layer.input_shape[2] for layer in layers)
    return batched.count(rows, F, (kernel_threads(cache.threads, size[False], True),
                                   kernel_threads(cache.threads, size[True]),
                                   kernel_threads(cache.threads, positions)), lines)


def _assemble(qrec: QuantizedRecording, scheme_or_plan: SchemeOrPlan, in_batch: list[int],
              batch: batched.Layers, results: Mapping[int, _Counts], lines: bool) -> xr.Dataset:
    """The Dataset of :func:`count_events` from the batch's rows (layers ``in_batch``)
    and the per-layer ``results``."""
    L, F = len(qrec.layers), qrec.n_frames
    cols = {name: np.zeros((L, F), np.float64 if name == "err_max" else np.int64)
            for name in ("events", "sops", "err_max", "err_sq", "x_sq")}
    for name in cols:
        cols[name][in_batch] = getattr(batch, name)
    for i, r in results.items():
        for name, v in zip(cols, (r.events, r.sops, r.max_error, r.err_sq, r.x_sq)):
            cols[name][i] = v
    line_cols = None
    if lines:
        line_cols = _pad_lines(L, F, {i: (r.line_events, r.line_sops) for i, r in results.items()},
                               (in_batch, batch.line_events, batch.line_sops))  # type: ignore[arg-type]
    return _stats_columns(qrec, scheme_or_plan, cols["events"], cols["sops"],
                          cols["err_max"], _rel_error(cols["err_sq"], cols["x_sq"]),
                          line_cols).dataset()


def _pad_lines(L: int, F: int, rows: Mapping[int, tuple[np.ndarray, np.ndarray]],
               block: tuple[list[int], np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Line events and SOPs ``(L, F, width)``, zero-padded to the most lines: layer ``i``'s
    ``(F, lines)`` arrays from ``rows[i]``, and ``block`` ``(layers, (n, F, w) events, SOPs)``."""
    if block is not None and not rows and len(block[0]) == L and list(block[0]) == list(range(L)):
        return block[1], block[2]               # every layer in the block, in order: as they are
    widths = [ev.shape[1] for ev, _ in rows.values()] + ([block[1].shape[2]] if block else [])
    width = max(widths, default=0)
    out = np.zeros((L, F, width), np.int64), np.zeros((L, F, width), np.int64)
    if block is not None:
        for k in (0, 1):
            out[k][block[0], :, : block[k + 1].shape[2]] = block[k + 1]
    for i, pair in rows.items():
        for k in (0, 1):
            out[k][i, :, : pair[k].shape[1]] = pair[k]
    return out


def _pool_groups(cache: "_TensorCache", layers: Sequence[Layer], schemes: Sequence[Scheme],
                 groups: Mapping[str, list[int]]) -> bool:
    """Whether ``_count`` runs the per-layer tensor groups (Dense, chunked temporal deltas) on a
    thread pool (one kernel thread each) rather than one after another on the kernels' own
    threads: with at least two groups per thread whose layers run a stateful (lossy) kernel on
    ``PAR_MIN`` codes or more on average. Streaming kernels read a tensor faster than a thread
    hand-off pays for (``benchmarks/bench_events.py``, thread scaling)."""
    if cache.threads < 2 or len(groups) < 2 * cache.threads:
        return False
    heavy = [g for g in groups.values() if any(_stateful(schemes[i]) for i in g)]
    if len(heavy) < 2 * cache.threads:
        return False
    size = sum(cache.qrec.n_frames * int(np.prod(layers[g[0]].input_shape)) for g in heavy) / len(heavy)
    return size >= PAR_MIN


def _stateful(scheme: Scheme) -> bool:
    """A delta scheme whose kernel carries state (a threshold or an activation threshold)."""
    return isinstance(scheme, (LineDelta, TemporalDelta)) and (scheme.threshold > 0 or scheme.tau > 0)


@dataclass(frozen=True)
class LayerStats:
    """Per-frame statistics of one layer under one scheme: int64 ``events`` and ``sops``,
    float64 ``max_error`` and ``rel_error`` (shape ``(F,)``); optionally ``line_events`` and
    ``line_sops`` (``(F, n_lines)``, every layer or none)."""

    events: np.ndarray
    sops: np.ndarray
    max_error: np.ndarray
    rel_error: np.ndarray
    line_events: np.ndarray | None = None
    line_sops: np.ndarray | None = None


def _dataset(data: dict[str, tuple[Any, Any]], coords: dict[str, Any]) -> xr.Dataset:
    """``xr.Dataset(data, coords=coords)`` for plain arrays -- a coordinate is ``(dims, values)``,
    or the values of a dimension coordinate -- built from Variables and the dimension
    coordinates' own ``PandasIndex`` (public xarray API; the same Dataset in about half the
    time, which a search pays on every trial)."""
    variables: dict[str, Any] = {}
    indexes: dict[str, Any] = {}
    for name, value in coords.items():
        if isinstance(value, tuple):
            variables[name] = xr.Variable(*value)
            continue
        arr = np.asarray(value)
        indexes[name] = PandasIndex(pd.Index(arr), name, coord_dtype=arr.dtype)
        variables.update(indexes[name].create_variables())
    return xr.Dataset({k: xr.Variable(*v) for k, v in data.items()},
                      coords=xr.Coordinates(variables, indexes=indexes))


@dataclass(frozen=True, eq=False)
class StatsArrays:
    """The statistics :func:`stats_arrays` assembles, as numpy values: ``data``
    ``{name: (dims, values)}``, ``coords`` (``(dims, values)``, or the values of a
    dimension coordinate) and ``attrs``; :meth:`dataset` is the Dataset of
    :func:`count_events`. :func:`else_dse.cost.estimate_values` takes either."""

    data: dict[str, tuple[tuple[str, ...], np.ndarray]]
    coords: dict[str, Any]
    attrs: dict[str, Any]

    def dataset(self) -> xr.Dataset:
        """The ``(layer, frame)`` Dataset of :func:`count_events`."""
        ds = _dataset(self.data, self.coords)
        ds.attrs.update(self.attrs)
        return ds

    def variable(self, name: str) -> tuple[tuple[str, ...], np.ndarray]:
        """``(dims, values)`` of a data variable or coordinate (KeyError if there is none)."""
        if name in self.data:
            return self.data[name]
        c = self.coords[name]
        return (tuple(c[0]), np.asarray(c[1])) if isinstance(c, tuple) else ((name,), np.asarray(c))


def stats_dataset(qrec: QuantizedRecording, scheme_or_plan: SchemeOrPlan,
                  rows: Sequence[LayerStats]) -> xr.Dataset:
    """The ``(layer, frame)`` Dataset of :func:`count_events` from per-layer results
    (:func:`stats_arrays` as a Dataset)."""
    return stats_arrays(qrec, scheme_or_plan, rows).dataset()


def stats_arrays(qrec: QuantizedRecording, scheme_or_plan: SchemeOrPlan,
                 rows: Sequence[LayerStats]) -> StatsArrays:
    """The ``(layer, frame)`` statistics of :func:`count_events` from per-layer results.

    ``rows`` are the statistics of ``qrec.layers`` in order, under the schemes
    ``scheme_or_plan`` gives them; the coordinates (scheme, axis, direction, loop,
    threshold, tau, op) and attributes come from those schemes. The one place that
    assembles statistics: ``count_events``, the search's cache and the studies use it
    (the search without building the Dataset).
    """
    qrec = _check_qrec(qrec, "stats_dataset")
    layers = qrec.layers
    if len(rows) != len(layers):
        raise ValueError(f"stats_dataset: {len(rows)} rows for {len(layers)} layers")
    F = qrec.n_frames

    def stack(attr: str, dtype: type) -> np.ndarray:   # one (layer, frame) array of the rows' columns
        cols = [np.asarray(getattr(r, attr)) for r in rows]
        for layer, c in zip(layers, cols):
            if c.shape != (F,):
                raise ValueError(f"stats_dataset: layer {layer.name!r}: {attr} has shape {c.shape}, "
                                 f"expected ({F},), one value per frame")
        return np.concatenate(cols).reshape(len(rows), F).astype(dtype, copy=False)
    line_cols = None
    if rows and rows[0].line_events is not None:
        line_cols = _pad_lines(len(layers), F, {j: (r.line_events, r.line_sops) for j, r in enumerate(rows)})  # type: ignore[misc]
    return _stats_columns(qrec, scheme_or_plan, stack("events", np.int64), stack("sops", np.int64),
                          stack("max_error", np.float64), stack("rel_error", np.float64), line_cols)


def _stats_columns(qrec: QuantizedRecording, scheme_or_plan: SchemeOrPlan, events: np.ndarray,
                   sops: np.ndarray, max_error: np.ndarray, rel_error: np.ndarray,
                   line_cols: tuple[np.ndarray, np.ndarray] | None) -> StatsArrays:
    """:func:`stats_arrays` of ``(layer, frame)`` columns (``line_cols``: line events and
    SOPs ``(layer, frame, line)``, or None)."""
    layers = qrec.layers
    schemes = as_plan(scheme_or_plan).resolve(layers)
    F = qrec.n_frames
    names = [layer.name for layer in layers]
    variables = qrec.data.variables   # Variables, not DataArrays: this is on count_events' path
    coords: dict[str, Any] = {"layer": names, "frame": variables["frame"].values}
    if "frame_label" in qrec.data.coords:
        coords["frame_label"] = ("frame", variables["frame_label"].values)
    fields = [s.to_dict() for s in schemes]
    coords.update({
        "scheme": ("layer", [f["kind"] for f in fields]),
        **{c: ("layer", [f[c] for f in fields]) for c in ("axis", "direction", "loop")},
        **{c: ("layer", np.array([f[c] for f in fields], np.int64)) for c in ("threshold", "tau")},
        "op": ("layer", [layer.op for layer in layers]),
    })
    dense_ev, dense_macs = _dense_columns(tuple(layers))
    LF = ("layer", "frame")
    data = {
        "events": (LF, events),
        "sops": (LF, sops),
        "dense_events": (LF, np.repeat(dense_ev, F, axis=1)),
        "dense_macs": (LF, np.repeat(dense_macs, F, axis=1)),
        "max_error": (LF, max_error),
        "rel_error": (LF, rel_error),
    }
    if line_cols is not None:
        data["line_events"] = (("layer", "frame", "line"), line_cols[0])
        data["line_sops"] = (("layer", "frame", "line"), line_cols[1])
        coords["line"] = np.arange(line_cols[0].shape[2])
    return StatsArrays(data, coords, {"layers": _layers_json(tuple(layers)), "plan": repr(scheme_or_plan),
                                      "bits": qrec.bits, "calibration": qrec.calibration})


def layers_of(ds: xr.Dataset) -> tuple[Layer, ...]:
    """The geometry of the layers of a ``count_events`` Dataset, in the order of its
    ``layer`` coordinate (works on subsets selected with ``ds.sel(layer=...)``)."""
    if "layers" not in ds.attrs:
        raise ValueError("dataset has no 'layers' attribute; pass a count_events result")
    by_name = {d["name"]: Layer.from_dict(d) for d in json.loads(ds.attrs["layers"])}
    if "layer" not in ds.coords:
        return tuple(by_name.values())
    names = np.atleast_1d(ds["layer"].values)
    missing = [str(n) for n in names if str(n) not in by_name]
    if missing:
        raise ValueError(f"layers {missing} have no geometry in the 'layers' attribute")
    return tuple(by_name[str(n)] for n in names)


def _check_thresholds(thresholds: Sequence[int]) -> np.ndarray:
    vals = list(np.atleast_1d(np.asarray(thresholds, dtype=object)))
    if not vals:
        raise ValueError("event_curve: thresholds must be a non-empty sequence of ints >= 0")
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"event_curve: thresholds must be ints >= 0 (code steps), got {v!r}")
    out = np.array([int(v) for v in vals], np.int64)
    if len(np.unique(out)) != len(out):
        raise ValueError(f"event_curve: thresholds must be distinct, got {out.tolist()}")
    if out.max() > 2**31 - 1:
        raise ValueError("event_curve: thresholds must be < 2**31")
    return out


def _abs_bound(X: np.ndarray, zp: int) -> int:
    """An upper bound of ``|X| = |code - zp|`` (from the dtype; from the data for int32)."""
    if X.dtype in (np.uint8, np.int8, np.uint16, np.int16):
        info = np.iinfo(X.dtype)
        return max(abs(int(info.min) - zp), abs(int(info.max) - zp))
    if X.size == 0:
        return 0
    return max(abs(int(X.min()) - zp), abs(int(X.max()) - zp))


def _delta_lut(th: np.ndarray, X: np.ndarray, zp: int) -> tuple[np.ndarray, np.ndarray]:
    """Bins of the open-loop histogram of ``|D|``: ``lut[a]`` is the number of
    thresholds below ``a`` (``|D|`` is clamped to ``len(lut) - 1``, which exceeds
    every threshold or every possible ``|D| <= 2 max|X|``). Returns the lut and the
    rank of each threshold among the sorted thresholds."""
    order = np.argsort(th, kind="stable")
    u = th[order]
    # at least 1024 entries where |D| can reach them: a lut that clamps most |D|
    # to one entry measured slower (gathers of one address) than one indexed by |D|
    size = min(max(int(u[-1]), 1023), 2 * _abs_bound(X, zp)) + 2
    lut = np.searchsorted(u, np.arange(size), side="left").astype(np.int32)
    rank = np.empty(len(th), np.int64)
    rank[order] = np.arange(len(th))
    return lut, rank


def _from_histogram(hc: np.ndarray, hs: np.ndarray, rank: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Events and SOPs (threshold, frame) from histograms (frame, T + 1): the
    threshold of rank k keeps the bins above k (a reverse cumulative sum)."""
    above_c = np.cumsum(hc[:, ::-1], axis=1)[:, ::-1]   # sum over bins >= b
    above_s = np.cumsum(hs[:, ::-1], axis=1)[:, ::-1]
    return (np.ascontiguousarray(above_c[:, rank + 1].T),
            np.ascontiguousarray(above_s[:, rank + 1].T))


def _delta_curve(X: np.ndarray, zp: int, layer: Layer, scheme: LineDelta | TemporalDelta,
                 th: np.ndarray, error: bool, events: np.ndarray, sops: np.ndarray, emax: np.ndarray,
                 esq: np.ndarray, xsq: np.ndarray, state: np.ndarray | None = None, threads: int = 1
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Line or temporal delta curve of :func:`event_curve`: fills the (threshold, frame)
    arrays in one kernel pass; returns events and SOPs (from the histogram of ``|D|``
    in the open loop without the error). ``state``: a temporal delta's state per
    threshold, ``(T, 2, C*H*W)`` int32, advanced in place (chunked curves); ``threads``: the
    kernel's OpenMP threads."""
    F, T = X.shape[0], len(th)
    open_loop = scheme.loop == "open"
    if open_loop and not error:
        lut, rank = _delta_lut(th, X, zp)
    else:
        lut, rank = np.zeros(1, np.int32), np.arange(T)
    hc, hs = np.zeros((F, T + 1), np.int64), np.zeros((F, T + 1), np.int64)
    if isinstance(scheme, LineDelta):
        g, cover_line, cover_pos = _line_geometry(layer, scheme)
        _kernels.line_delta_curve(X, 0 if scheme.axis == "y" else 1,
                                  scheme.direction == "reverse", g.stride[0], cover_line,
                                  cover_pos, th.astype(np.int32), not open_loop, scheme.tau,
                                  events, sops, emax, esq, xsq, lut, hc, hs,
                                  with_error=bool(error), zp=zp, threads=threads)
    else:
        _kernels.temporal_delta_curve(_flat(X), _fan_out(layer).ravel(), th.astype(np.int32),
                                      not open_loop, scheme.tau, events, sops, emax, esq, xsq,
                                      lut, hc, hs, with_error=bool(error), zp=zp, state=state,
                                      threads=threads)
    if open_loop and not error:
        events, sops = _from_histogram(hc, hs, rank)
    if isinstance(scheme, LineDelta):
        sops *= layer.fan_out_channels
    return events, sops


def _conventional_curve(X: np.ndarray, zp: int, layer: Layer, th: np.ndarray, events: np.ndarray,
                        sops: np.ndarray, emax: np.ndarray, esq: np.ndarray, xsq: np.ndarray,
                        threads: int = 1) -> None:
    """Conventional curve of :func:`event_curve` (thresholds are taus): exact from one
    histogram of ``|X|`` weighted by fan-out; fills the (threshold, frame) arrays."""
    F = X.shape[0]
    fan = _fan_out(layer).ravel()
    V = min(int(th.max()), _abs_bound(X, zp)) + 2   # bin V-1 gathers every |X| >= V-1
    hist, hist_sops = np.zeros((F, V), np.int64), np.zeros((F, V), np.int64)
    _kernels.abs_histogram(_flat(X), fan, hist, hist_sops, xsq, zp=zp, threads=threads)
    v = np.arange(V)
    above_events = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]      # sum over bins >= v
    above_sops = np.cumsum(hist_sops[:, ::-1], axis=1)[:, ::-1]
    sq = np.cumsum(hist * v * v, axis=1)                          # sum over bins <= v
    present = np.where(hist > 0, v, 0)
    running_max = np.maximum.accumulate(present, axis=1)
    for t, tau in enumerate(th):             # a tau >= V - 1 is above every |X|
        events[t] = above_events[:, min(tau + 1, V - 1)]
        sops[t] = above_sops[:, min(tau + 1, V - 1)]
        esq[t] = sq[:, min(tau, V - 1)]
        emax[t] = running_max[:, min(tau, V - 1)]


def event_curve(qrec: QuantizedRecording, layer_name: str, scheme: Scheme,
                thresholds: Sequence[int], error: bool = True, *, threads: int | None = None) -> xr.Dataset:
    """Events, SOPs and error of one layer for many thresholds in one call.

    ``scheme`` is a :class:`LineDelta` or :class:`TemporalDelta` whose ``threshold``
    takes each value of ``thresholds`` (all in one pass over the tensor), or a
    :class:`Conventional` whose ``tau`` does (exact from a histogram of ``|X|``
    weighted by fan-out). Returns a Dataset with dims ``(threshold, frame)`` and
    variables ``events``, ``sops`` (int64), ``max_error``, ``rel_error`` (float64),
    equal to ``count_events`` with each threshold.

    In the open loop ``D`` (after ``tau``) does not depend on the threshold. The
    error of what the consumer accumulates still needs the recursion per
    threshold; it runs in the same pass and counts events and SOPs on the way.
    ``error=False`` skips the error (``max_error`` and ``rel_error`` are NaN): in
    the open loop events and SOPs of every threshold then come exactly from one
    histogram of ``|D|`` weighted by fan-out (a pure histogram pass); the closed
    loop runs a cheaper recursion; :class:`Conventional` is a histogram either way.
    ``threads`` sets the kernels' OpenMP threads as in :func:`count_events` (same results).
    """
    layer, th = _curve_args(qrec, layer_name, scheme, thresholds, error)
    n = resolve_threads(threads)
    if qrec.frame_chunks is not None:
        from .chunked import curve_chunked
        return curve_chunked(qrec, layer.name, scheme, th.tolist(), bool(error), n)
    return curve_dataset(qrec, layer, scheme, th,
                         *_curve_arrays(qrec, layer, scheme, th, bool(error), threads=n), bool(error))


def curve_values(qrec: QuantizedRecording, layer_name: str, scheme: Scheme, thresholds: Sequence[int],
                 error: bool = True, *, threads: int | None = None) -> dict[str, np.ndarray]:
    """:func:`event_curve` as numpy arrays (same arguments, checks and values):
    ``events``, ``sops``, ``max_error``, ``rel_error`` of shape ``(threshold, frame)``,
    without building the Dataset -- the search's cache calls it once per layer and scheme."""
    layer, th = _curve_args(qrec, layer_name, scheme, thresholds, error)
    n = resolve_threads(threads)
    if qrec.frame_chunks is not None:
        from .chunked import curve_chunked
        ds = curve_chunked(qrec, layer.name, scheme, th.tolist(), bool(error), n)
        return {v: ds.variables[v].values for v in ("events", "sops", "max_error", "rel_error")}
    events, sops, emax, rel = _curve_arrays(qrec, layer, scheme, th, bool(error), threads=n)
    if not error:
        emax, rel = np.full(events.shape, np.nan), np.full(events.shape, np.nan)
    return {"events": events, "sops": sops, "max_error": emax, "rel_error": rel}


def _curve_args(qrec: QuantizedRecording, layer_name: str, scheme: Scheme, thresholds: Sequence[int],
                error: bool) -> tuple[Layer, np.ndarray]:
    """The checked layer and thresholds of an :func:`event_curve` call."""
    qrec = _check_qrec(qrec, "event_curve")
    layer = qrec.layer(layer_name) if layer_name in {l.name for l in qrec.layers} else None
    if layer is None:
        raise ValueError(f"event_curve: unknown layer {layer_name!r}; valid layer names are "
                         f"{[l.name for l in qrec.layers]}")
    if not isinstance(scheme, (LineDelta, TemporalDelta, Conventional)):
        raise ValueError(f"event_curve: scheme must be LineDelta, TemporalDelta or Conventional "
                         f"(thresholds are its tau), got {scheme!r}")
    if not isinstance(error, (bool, np.bool_)):
        raise TypeError(f"event_curve: error must be a bool, got {error!r}")
    scheme.check_layer(layer)
    return layer, _check_thresholds(thresholds)


def _curve_arrays(qrec: QuantizedRecording, layer: Layer, scheme: Scheme, th: np.ndarray,
                  error: bool, state: np.ndarray | None = None, threads: int = 1) -> tuple[np.ndarray, ...]:
    """Events, SOPs (int64), max and relative error (float64) of an in-memory curve, (T, F);
    ``state`` as :func:`_delta_curve` takes it (a temporal delta's, carried across chunks);
    at most ``threads`` kernel threads (:func:`kernel_threads`)."""
    X, zp = _codes(qrec, layer.input, _code_arrays(qrec, layer.input))
    F, T = X.shape[0], len(th)
    events, sops, emax, esq = (np.zeros((T, F), np.int64) for _ in range(4))
    xsq = np.zeros(F, np.int64)
    if isinstance(scheme, (LineDelta, TemporalDelta)):
        events, sops = _delta_curve(X, zp, layer, scheme, th, error, events, sops, emax, esq, xsq, state,
                                    kernel_threads(threads, X.size * T))   # the work grows with T
    else:  # Conventional: thresholds are activation thresholds tau
        _conventional_curve(X, zp, layer, th, events, sops, emax, esq, xsq, kernel_threads(threads, X.size, True))
    return events, sops, emax.astype(np.float64), _rel_error(esq, xsq[None, :])


def curve_dataset(qrec: QuantizedRecording, layer: Layer, scheme: Scheme, th: np.ndarray,
                  events: np.ndarray, sops: np.ndarray, max_error: np.ndarray, rel_error: np.ndarray,
                  error: bool) -> xr.Dataset:
    """The ``(threshold, frame)`` Dataset of :func:`event_curve` from its arrays (errors NaN
    when ``error`` is False); the one place that assembles a curve, in memory or chunked."""
    if not error:
        max_error = np.full(events.shape, np.nan)
        rel_error = np.full(events.shape, np.nan)
    ds = _dataset(
        {"events": (("threshold", "frame"), events), "sops": (("threshold", "frame"), sops),
         "max_error": (("threshold", "frame"), max_error),
         "rel_error": (("threshold", "frame"), rel_error)},
        {"threshold": th, "frame": qrec.data["frame"].values})
    ds.attrs.update({"layer": layer.name, "layers": _layers_json((layer,)),
                     "scheme": repr(scheme), "bits": qrec.bits, "calibration": qrec.calibration,
                     "threshold_of": "tau" if isinstance(scheme, Conventional) else "threshold"})
    return ds


# ---- reconstruction: what the consumer computes on ---------------------------------

_KERNEL_CODES = (np.uint8, np.uint16, np.int8, np.int16, np.int32)


@dataclass(frozen=True)
class TemporalState:
    """Where a temporal-delta stream stands after some frames: the sender's
    reference ``R`` and the consumer's sum ``Y`` (equal in the closed loop), signed
    codes ``(C, H, W)`` int32, read-only. :meth:`start` is a stream's beginning."""

    sender: np.ndarray
    receiver: np.ndarray

    def __post_init__(self) -> None:
        for name in ("sender", "receiver"):
            a = np.array(getattr(self, name), dtype=np.int32, order="C")
            if a.ndim != 3:
                raise ValueError(f"TemporalState: {name} must be (C, H, W), got shape {a.shape}")
            a.flags.writeable = False
            object.__setattr__(self, name, a)
        if self.sender.shape != self.receiver.shape:
            raise ValueError(f"TemporalState: sender {self.sender.shape} and receiver "
                             f"{self.receiver.shape} differ in shape")

    @classmethod
    def start(cls, shape: tuple[int, int, int]) -> "TemporalState":
        """The state before the first frame: zeros."""
        return cls(np.zeros(shape, np.int32), np.zeros(shape, np.int32))

    @classmethod
    def _own(cls, sender: np.ndarray, receiver: np.ndarray) -> "TemporalState":
        """A state over fresh int32 (C, H, W) arrays nobody else holds (no copy)."""
        state = object.__new__(cls)
        for name, a in (("sender", sender), ("receiver", receiver)):
            a.flags.writeable = False
            object.__setattr__(state, name, a)
        return state


@dataclass(frozen=True)
class Reconstruction:
    """Result of :func:`reconstruct`: ``values`` (frame, C, H, W) int32 signed codes
    the consumer computes on; the kernels' ``events`` and ``sops`` (frame,) int64;
    ``state`` after the last frame (temporal delta only, else None)."""

    values: np.ndarray
    events: np.ndarray
    sops: np.ndarray
    state: TemporalState | None = None


def _kernel_codes(codes: Any, layer: Layer, zero_point: int) -> tuple[np.ndarray, int]:
    a = np.asarray(codes)
    if a.ndim != 4 or a.shape[1:] != layer.input_shape:
        raise ValueError(f"reconstruct: layer {layer.name!r}: codes must be (frame, C, H, W) with "
                         f"(C, H, W) = {layer.input_shape}, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"reconstruct: layer {layer.name!r}: codes must be integers, got {a.dtype}")
    if a.dtype in _KERNEL_CODES:
        return np.ascontiguousarray(a), int(zero_point)
    X = a.astype(np.int64) - int(zero_point)
    if X.size and (X.min() < -2**31 or X.max() >= 2**31):
        raise ValueError(f"reconstruct: layer {layer.name!r}: codes - zero_point leave int32")
    return np.ascontiguousarray(X, dtype=np.int32), 0


def _state_array(state: TemporalState | None, layer: Layer) -> np.ndarray:
    """The kernel's (2, C*H*W) state, a fresh copy (the kernel overwrites it)."""
    n = int(np.prod(layer.input_shape))
    if state is None:
        return np.zeros((2, n), np.int32)
    if not isinstance(state, TemporalState):
        raise TypeError(f"reconstruct: state must be a TemporalState, got {type(state).__name__}")
    if state.sender.shape != layer.input_shape:
        raise ValueError(f"reconstruct: layer {layer.name!r}: state has shape {state.sender.shape}, "
                         f"the layer input {layer.input_shape}")
    return np.stack([state.sender.ravel(), state.receiver.ravel()])


def reconstruct(codes: np.ndarray, layer: Layer, scheme: Scheme, *, zero_point: int = 0,
                state: TemporalState | None = None) -> Reconstruction:
    """What ``layer`` computes on when its input ``codes`` (frame, C, H, W) are sent
    under ``scheme``, with the events and SOPs the same kernels count.

    Signed codes are ``X = codes - zero_point``; ``values`` are signed codes too
    (dequantize with the tensor's scale). ``state`` (temporal delta only) is where
    the stream stands before frame 0 (default: its start); the result's ``state``
    continues it, so frames run one by one give the results of one pass. See the
    module docstring for what each scheme reconstructs.

    >>> import numpy as np, else_dse as ed
    >>> layer = ed.Layer("c", "x", "conv", 1, 1, input_shape=(1, 1, 3))
    >>> r = reconstruct(np.array([[[[5, 1, -3]]]]), layer, ed.Conventional(tau=1))
    >>> r.values.ravel().tolist(), r.events.tolist()
    ([5, 0, -3], [2])
    """
    if not isinstance(scheme, Scheme):
        raise TypeError(f"reconstruct: scheme must be Dense, Conventional, LineDelta or TemporalDelta, "
                        f"got {scheme!r}")
    scheme.check_layer(layer)
    if state is not None and not isinstance(scheme, TemporalDelta):
        raise ValueError(f"reconstruct: layer {layer.name!r}: state is for TemporalDelta, not {scheme}")
    X, zp = _kernel_codes(codes, layer, zero_point)
    values = np.empty(X.shape, np.int32)
    if isinstance(scheme, LineDelta):
        g, cover_line, cover_pos = _line_geometry(layer, scheme)
        F, L = X.shape[0], len(cover_line)
        le, ls = np.zeros((F, L), np.int64), np.zeros((F, L), np.int64)
        err = [np.zeros(F, np.int64) for _ in range(3)]
        _kernels.line_delta(X, 0 if scheme.axis == "y" else 1, scheme.direction == "reverse",
                            g.stride[0], cover_line, cover_pos, scheme.threshold,
                            scheme.loop == "closed", scheme.tau, le, ls, *err, zp=zp, recon=values)
        return Reconstruction(values, le.sum(axis=1), ls.sum(axis=1) * layer.fan_out_channels)
    flat = _flat(values)
    if isinstance(scheme, TemporalDelta):
        if (state is not None and scheme.loop == "closed"
                and not np.array_equal(state.sender, state.receiver)):
            raise ValueError(f"reconstruct: layer {layer.name!r}: in the closed loop the state's "
                             f"sender and receiver are equal (Y = R); got different arrays")
        st = _state_array(state, layer)
        res = _position_counts(_kernels.temporal_delta, X, zp, scheme.threshold,
                               scheme.loop == "closed", scheme.tau, recon=flat, state=st)
        new = TemporalState._own(st[0].reshape(layer.input_shape), st[1].reshape(layer.input_shape))
    else:
        res = _position_counts(_kernels.conventional, X, zp, scheme.tau, recon=flat)
        new = None
    counts = _dense(layer, X.shape[0]) if isinstance(scheme, Dense) else _from_position_counts(layer, res)
    return Reconstruction(values, counts.events, counts.sops, new)
