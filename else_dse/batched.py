"""The streaming counts of every layer of a recording in two kernel calls.

Conventional counting and the lossless deltas (line delta with ``theta = tau = 0``,
temporal delta with ``theta = tau = 0`` and no carried state) read every code once and
keep no state. :func:`count` runs them for many layers at once: one
``_kernels.stream_counts`` call over every (tensor, frame), then one
``_kernels.layer_lines`` call over every (layer, frame) that turns per-position counts
into per-line events and SOPs, both on OpenMP threads with the GIL released. Layers
reading one tensor share its counts (one item per tensor and kind of count), as in
:func:`else_dse.events.count_events`' per-layer path, which gives the same integers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from . import _kernels
from .workload import Layer

__all__ = ["Line", "Layers", "count"]

_ITEM = {name: j for j, name in enumerate(_kernels.ITEM_COLUMNS)}
_LINE = {name: j for j, name in enumerate(_kernels.LINE_COLUMNS)}
CONVENTIONAL, TEMPORAL, PAIRS = 0, 1, 2   # stream_counts' ops


@dataclass(frozen=True)
class Line:
    """A lossless line delta's scan of one layer: axis (``"y"``/``"x"``), reference
    distance ``s``, reverse scan, and the kernel's cover arrays (extended cover along the
    scan, conventional cover across it; left out of equality, as the scan and the layer
    determine them)."""

    axis: str
    s: int
    reverse: bool
    cover_line: np.ndarray = field(compare=False)
    cover_pos: np.ndarray = field(compare=False)


@dataclass(frozen=True, eq=False)
class Layers:
    """:func:`count`'s results for its layers, in order: ``(n, F)`` int64 ``events``,
    ``sops``, ``err_max``, ``err_sq``, ``x_sq``; ``(n, F, lines)`` ``line_events`` and
    ``line_sops`` (zero-padded, or None)."""

    events: np.ndarray
    sops: np.ndarray
    err_max: np.ndarray
    err_sq: np.ndarray
    x_sq: np.ndarray
    line_events: np.ndarray | None
    line_sops: np.ndarray | None


@functools.lru_cache(maxsize=1024)
def _covers(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """The conventional covers along y and x: ``fan_out() == outer(cy, cx) * fan_out_channels``."""
    return layer.cover("y"), layer.cover("x")


@dataclass(frozen=True, eq=False)
class _Table:
    """The kernels' arguments for one layout of entries: ``items`` (stream_counts rows),
    ``rows`` (layer_lines rows), ``covers`` (uint32), ``sources`` (the entry whose codes
    each item reads), ``item_of`` (each entry's item), ``size`` (int32 counts) and
    ``width`` (the most lines of a layer)."""

    items: np.ndarray
    rows: np.ndarray
    covers: np.ndarray
    sources: tuple[int, ...]
    item_of: np.ndarray
    size: int
    width: int


def _item(shape: tuple[int, ...], dtype: str, zp: int, op: int, arg: int, line: Line | None,
          code: int, out: int) -> list[int]:
    """One ``stream_counts`` row for codes of ``shape`` (F, C, H, W)."""
    F, C, H, W = shape
    N = H * W
    k, lo, hi = arg, N, N
    if op == PAIRS and line is not None:
        k = line.s * W if line.axis == "y" else line.s
        lo, hi = (line.s * W, max(0, N - line.s * W)) if line.axis == "y" else (N, N)
    row = [0] * len(_ITEM)
    for name, v in (("codes", code), ("kind", _kernels.CODE_KINDS[dtype]), ("zp", zp), ("C", C), ("N", N),
                    ("op", op), ("arg", k), ("nz_lo", lo), ("nz_hi", hi), ("out", out),
                    ("out2", out + F * N if op == PAIRS else out)):
        row[_ITEM[name]] = v
    return row


def _line_row(layer: Layer, shape: tuple[int, ...], item: list[int], line: Line | None,
              n_cover: int) -> tuple[list[int], list[np.ndarray]]:
    """One ``layer_lines`` row of ``layer`` over the counts of ``item``, and its covers."""
    _, _, H, W = shape
    a, b = (line.cover_line, line.cover_pos) if line is not None else _covers(layer)
    row = [0] * len(_LINE)
    for name, v in (("mode", int(line is not None)), ("H", H), ("W", W), ("out", item[_ITEM["out"]]),
                    ("out2", item[_ITEM["out2"]]), ("cover_a", n_cover), ("n_lines", len(a)),
                    ("cover_b", n_cover + len(a)), ("fan_channels", layer.fan_out_channels)):
        row[_LINE[name]] = v
    if line is not None:
        row[_LINE["axis"]], row[_LINE["s"]], row[_LINE["reverse"]] = int(line.axis == "x"), line.s, int(line.reverse)
    return row, [a, b]


def _shared_key(layer: Layer, op: int, tau: int, line: Line | None) -> tuple:
    """Entries with one key share a count: the tensor, the op, and tau or the scan's axis
    and reference distance (both directions of a scan read the same pairs)."""
    return layer.input, op, tau, None if line is None else (line.axis, line.s)


@functools.lru_cache(maxsize=64)
def _table(layout: tuple[tuple, ...]) -> _Table:
    """The :class:`_Table` of ``layout``: per entry ``(layer, shape, dtype, zp, op, tau, line)``."""
    items: list[list[int]] = []
    rows: list[list[int]] = []
    covers: list[np.ndarray] = []
    shared: dict[tuple, int] = {}
    sources: list[int] = []
    size = n_cover = 0
    for j, (layer, shape, dtype, zp, op, tau, line) in enumerate(layout):
        key = _shared_key(layer, op, tau, line)
        if key not in shared:
            shared[key] = len(items)
            items.append(_item(shape, dtype, zp, op, tau, line, len(sources), size))
            sources.append(j)
            size += (2 if op == PAIRS else 1) * int(np.prod(shape[:1] + shape[2:]))
        row, cov = _line_row(layer, shape, items[shared[key]], line, n_cover)
        rows.append(row)
        covers += cov
        n_cover += len(cov[0]) + len(cov[1])
    cov = np.concatenate(covers) if covers else np.zeros(1, np.int64)
    if cov.min() < 0 or cov.max() >= 2 ** 32:
        raise ValueError(f"batched counts: covers must lie in [0, 2**32), got [{cov.min()}, {cov.max()}]")
    arrays = (np.array(items, np.int64).reshape(-1, len(_ITEM)), np.array(rows, np.int64).reshape(-1, len(_LINE)),
              cov.astype(np.uint32),
              np.array([shared[_shared_key(layer, op, tau, line)] for layer, _, _, _, op, tau, line in layout],
                       np.intp))
    for a in arrays:
        a.flags.writeable = False
    width = max([r[_LINE["n_lines"]] for r in rows], default=0)
    return _Table(*arrays[:3], tuple(sources), arrays[3], size, width)


def count(entries: list[tuple[Layer, np.ndarray, int, int, int, Line | None]], F: int,
          threads: tuple[int, int], lines: bool) -> Layers:
    """Events, SOPs and errors of ``entries`` ``(layer, codes X (F, C, H, W), zero point,
    op, tau, line)``: op ``CONVENTIONAL`` (activation threshold tau), ``TEMPORAL``
    (lossless, from zeros) or ``PAIRS`` (a lossless line delta's scan ``line``). Entries
    on the same tensor (``layer.input``) with the same op and tau or scan share one count
    (and must hold the same codes). ``threads``: the kernel threads of the two calls
    (counts, lines)."""
    t = _table(tuple((layer, X.shape, X.dtype.name, zp, op, tau, line) for layer, X, zp, op, tau, line in entries))
    counts = np.zeros(max(t.size, 1), np.int32)
    errs = np.zeros((len(t.items), F, 3), np.int64)
    _kernels.stream_counts([entries[j][1] for j in t.sources], t.items, F, counts, errs, threads=threads[0])
    n = len(entries)
    events, sops = np.zeros((n, F), np.int64), np.zeros((n, F), np.int64)
    line_ev = line_sp = None
    if lines:
        line_ev, line_sp = np.zeros((n, F, t.width), np.int64), np.zeros((n, F, t.width), np.int64)
    _kernels.layer_lines(counts, t.rows, t.covers, events, sops, line_ev, line_sp, threads=threads[1])
    e = errs[t.item_of]
    return Layers(events, sops, e[..., 0], e[..., 1], e[..., 2], line_ev, line_sp)
