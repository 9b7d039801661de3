"""The counts of every layer of a recording in three kernel calls.

Conventional counting and the lossless deltas (line delta with ``theta = tau = 0``,
temporal delta with ``theta = tau = 0`` and no carried state) read every code once and
keep no state; the lossy deltas carry a reference along lines or frames. :func:`count`
runs them for many layers at once: one ``_kernels.stream_counts`` call over every
streaming (tensor, frame), one ``_kernels.delta_counts`` call over every lossy line-delta
(tensor, frame) and lossy temporal tensor (largest first), then one
``_kernels.layer_lines`` call over every (layer, frame) that turns per-position counts
into per-line events and SOPs, all on OpenMP threads with the GIL released. Layers
reading one tensor share its counts (one item per tensor and kind of count), as in
:func:`else_dse.events.count_events`' per-layer path, which gives the same integers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from . import _kernels
from .workload import Layer

__all__ = ["Line", "Layers", "count", "position_lines"]

_ITEM = {name: j for j, name in enumerate(_kernels.ITEM_COLUMNS)}
_LINE = {name: j for j, name in enumerate(_kernels.LINE_COLUMNS)}
_DELTA = {name: j for j, name in enumerate(_kernels.DELTA_COLUMNS)}
CONVENTIONAL, TEMPORAL, PAIRS = 0, 1, 2   # stream_counts' ops
LINE_DELTA, TEMPORAL_DELTA = 3, 4         # delta_counts' ops (0 and 1 there)


@dataclass(frozen=True)
class Line:
    """A line delta's scan of one layer: axis (``"y"``/``"x"``), reference
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
    ``deltas`` and ``units`` (delta_counts rows and units), ``rows`` (layer_lines rows, of the
    entries ``row_of``), ``covers`` (uint32) and ``delta_covers`` (int64), ``sources`` and
    ``delta_sources`` (the entry whose codes each item reads), ``item_of`` (each entry's
    stream or delta item), ``line_of`` (the entries whose lines come from delta_counts),
    ``size`` (int32 counts), ``width`` (the most lines of a layer) and ``delta_width``;
    ``line_fch`` (the fan-out channels of ``line_of``, (k, 1, 1)), ``stream_of`` and
    ``delta_of`` (the entries of stream and of delta items)."""

    items: np.ndarray
    deltas: np.ndarray
    units: np.ndarray
    rows: np.ndarray
    row_of: np.ndarray
    covers: np.ndarray
    delta_covers: np.ndarray
    sources: tuple[int, ...]
    delta_sources: tuple[int, ...]
    item_of: np.ndarray
    line_of: np.ndarray
    size: int
    width: int
    delta_width: int
    line_fch: np.ndarray
    stream_of: np.ndarray
    delta_of: np.ndarray


def _item(shape: tuple[int, ...], dtype: np.dtype, zp: int, op: int, arg: int, line: Line | None,
          code: int, out: int) -> list[int]:
    """One ``stream_counts`` row for codes of ``shape`` (F, C, H, W)."""
    F, C, H, W = shape
    N = H * W
    k, lo, hi = arg, N, N
    if op == PAIRS and line is not None:
        k = line.s * W if line.axis == "y" else line.s
        lo, hi = (line.s * W, max(0, N - line.s * W)) if line.axis == "y" else (N, N)
    row = [0] * len(_ITEM)
    for name, v in (("codes", code), ("kind", _kernels.CODE_KINDS[dtype.name]), ("zp", zp), ("C", C), ("N", N),
                    ("op", op), ("arg", k), ("nz_lo", lo), ("nz_hi", hi), ("out", out),
                    ("out2", out + F * N if op == PAIRS else out)):
        row[_ITEM[name]] = v
    return row


def _delta_item(shape: tuple[int, ...], dtype: np.dtype, zp: int, op: int, tau: int, line: Line | None,
                theta: int, closed: bool, code: int, n_cover: int, out: int) -> list[int]:
    """One ``delta_counts`` row for codes of ``shape`` (F, C, H, W): a lossy line delta's
    scan ``line`` (covers at ``n_cover``), or a temporal delta (counts at ``out``)."""
    _, C, H, W = shape
    row = [0] * len(_DELTA)
    for name, v in (("codes", code), ("kind", _kernels.CODE_KINDS[dtype.name]), ("zp", zp), ("C", C), ("H", H),
                    ("W", W), ("op", int(op == TEMPORAL_DELTA)), ("theta", theta), ("closed", int(closed)),
                    ("tau", tau), ("out", out), ("s", 1)):
        row[_DELTA[name]] = v
    if line is not None:
        for name, v in (("axis", int(line.axis == "x")), ("reverse", int(line.reverse)), ("s", line.s),
                        ("cover_line", n_cover), ("n_lines", len(line.cover_line)),
                        ("cover_pos", n_cover + len(line.cover_line))):
            row[_DELTA[name]] = v
    return row


def _line_row(layer: Layer, shape: tuple[int, ...], out: int, out2: int, line: Line | None,
              n_cover: int) -> tuple[list[int], list[np.ndarray]]:
    """One ``layer_lines`` row of ``layer`` over the counts at ``out`` (and ``out2``), and its
    covers."""
    _, _, H, W = shape
    a, b = (line.cover_line, line.cover_pos) if line is not None else _covers(layer)
    row = [0] * len(_LINE)
    for name, v in (("mode", int(line is not None)), ("H", H), ("W", W), ("out", out),
                    ("out2", out2), ("cover_a", n_cover), ("n_lines", len(a)),
                    ("cover_b", n_cover + len(a)), ("fan_channels", layer.fan_out_channels)):
        row[_LINE[name]] = v
    if line is not None:
        row[_LINE["axis"]], row[_LINE["s"]], row[_LINE["reverse"]] = int(line.axis == "x"), line.s, int(line.reverse)
    return row, [a, b]


def _shared_key(layer: Layer, op: int, tau: int, line: Line | None, theta: int, closed: bool) -> tuple:
    """Entries with one key share a count: the tensor, the op, tau, and the scan's axis and
    reference distance (both directions of a lossless scan read the same pairs); a lossy
    delta also its threshold and loop, and a lossy scan its direction and covers (the lines
    it skips)."""
    if op < LINE_DELTA:
        return layer.input, op, tau, None if line is None else (line.axis, line.s)
    scan = None if line is None else (line.axis, line.s, line.reverse, line.cover_line.tobytes(),
                                      line.cover_pos.tobytes())
    return layer.input, op, tau, theta, closed, scan


class _Builder:
    """The growing rows of a :class:`_Table` (see :func:`_table`)."""

    def __init__(self) -> None:
        self.items: list[list[int]] = []
        self.deltas: list[list[int]] = []
        self.rows: list[list[int]] = []
        self.row_of: list[int] = []
        self.covers: list[np.ndarray] = []
        self.delta_covers: list[np.ndarray] = []
        self.shared: dict[tuple, int] = {}
        self.sources: list[int] = []
        self.delta_sources: list[int] = []
        self.item_of: list[int] = []
        self.line_of: list[int] = []
        self.size = self.n_cover = self.n_dcover = 0

    def add(self, j: int, layer: Layer, shape: tuple[int, ...], dtype: np.dtype, zp: int, op: int, tau: int,
            line: Line | None, theta: int, closed: bool) -> None:
        key = _shared_key(layer, op, tau, line, theta, closed)
        plane = int(np.prod(shape[:1] + shape[2:]))          # F * H * W
        if key not in self.shared:
            if op < LINE_DELTA:
                self.shared[key] = len(self.items)
                self.items.append(_item(shape, dtype, zp, op, tau, line, len(self.sources), self.size))
                self.sources.append(j)
                self.size += (2 if op == PAIRS else 1) * plane
            else:
                self.shared[key] = len(self.deltas)
                self.deltas.append(_delta_item(shape, dtype, zp, op, tau, line, theta, closed,
                                               len(self.delta_sources), self.n_dcover, self.size))
                self.delta_sources.append(j)
                if op == TEMPORAL_DELTA:
                    self.size += plane
                else:
                    self.delta_covers += [line.cover_line, line.cover_pos]  # type: ignore[union-attr]
                    self.n_dcover += len(line.cover_line) + len(line.cover_pos)  # type: ignore[union-attr]
        k = self.shared[key]
        self.item_of.append(k)
        if op == LINE_DELTA:
            self.line_of.append(j)
            return
        if op == TEMPORAL_DELTA:
            out = out2 = self.deltas[k][_DELTA["out"]]
        else:
            out, out2 = self.items[k][_ITEM["out"]], self.items[k][_ITEM["out2"]]
        row, cov = _line_row(layer, shape, out, out2, line if op == PAIRS else None, self.n_cover)
        self.rows.append(row)
        self.row_of.append(j)
        self.covers += cov
        self.n_cover += len(cov[0]) + len(cov[1])

    def units(self, F: int) -> np.ndarray:
        """delta_counts' units, the largest first: (item, frame) of a line delta, (item, -1)
        of a temporal delta's every frame."""
        units = []
        for k, d in enumerate(self.deltas):
            work = d[_DELTA["C"]] * d[_DELTA["H"]] * d[_DELTA["W"]]
            if d[_DELTA["op"]] == 1:
                units.append((F * work, k, -1))
            else:
                units += [(work, k, f) for f in range(F)]
        units.sort(key=lambda u: -u[0])
        return np.array([u[1:] for u in units], np.int64).reshape(-1, 2)


def _uint32_covers(covers: list[np.ndarray]) -> np.ndarray:
    """``layer_lines``' covers: ``covers`` concatenated as uint32 (checked to fit)."""
    cov = np.concatenate(covers) if covers else np.zeros(1, np.int64)
    if cov.min() < 0 or cov.max() >= 2 ** 32:
        raise ValueError(f"batched counts: covers must lie in [0, 2**32), got [{cov.min()}, {cov.max()}]")
    return cov.astype(np.uint32)


def _frozen(*arrays: np.ndarray) -> list[np.ndarray]:
    for a in arrays:
        a.flags.writeable = False
    return list(arrays)


@functools.lru_cache(maxsize=64)
def _table(layout: tuple[tuple, ...], F: int) -> _Table:
    """The :class:`_Table` of ``layout``: per entry ``(layer, shape, dtype (np.dtype), zp, op,
    tau, line, theta, closed)``."""
    b = _Builder()
    for j, entry in enumerate(layout):
        b.add(j, *entry)
    cov = _uint32_covers(b.covers)
    dcov = np.concatenate(b.delta_covers).astype(np.int64) if b.delta_covers else np.zeros(1, np.int64)
    arrays = _frozen(np.array(b.items, np.int64).reshape(-1, len(_ITEM)),
                     np.array(b.deltas, np.int64).reshape(-1, len(_DELTA)), b.units(F),
                     np.array(b.rows, np.int64).reshape(-1, len(_LINE)), np.array(b.row_of, np.intp),
                     cov, dcov)
    width = max([r[_LINE["n_lines"]] for r in b.rows], default=0)
    delta_width = max([d[_DELTA["n_lines"]] for d in b.deltas], default=0)
    ops = np.array([entry[4] for entry in layout], np.int64)
    fch = np.array([layout[j][0].fan_out_channels for j in b.line_of], np.int64).reshape(-1, 1, 1)
    return _Table(*arrays, tuple(b.sources), tuple(b.delta_sources),
                  *_frozen(np.array(b.item_of, np.intp), np.array(b.line_of, np.intp)), b.size, width, delta_width,
                  *_frozen(fch, np.flatnonzero(ops < LINE_DELTA), np.flatnonzero(ops >= LINE_DELTA)))


def _counts_buffer(size: int) -> np.ndarray:
    """The per-position counts of a batch (int32), uninitialized: every kernel unit zeroes the
    counts it fills (a zeroed array of the pose landmark network's 1.8 M counts cost about 1 ms
    a call)."""
    return np.empty(max(size, 1), np.int32)


def count(entries: list[tuple[Layer, np.ndarray, int, int, int, Line | None, int, bool]], F: int,
          threads: tuple[int, int, int], lines: bool) -> Layers:
    """Events, SOPs and errors of ``entries`` ``(layer, codes X (F, C, H, W), zero point,
    op, tau, line, theta, closed)``: op ``CONVENTIONAL`` (activation threshold tau),
    ``TEMPORAL`` (lossless, from zeros), ``PAIRS`` (a lossless line delta's scan ``line``),
    ``LINE_DELTA`` (a line delta's scan ``line`` with threshold ``theta``, activation
    threshold ``tau``, closed or open loop) or ``TEMPORAL_DELTA`` (the same over frames,
    from zeros). Entries on the same tensor (``layer.input``) with the same op and
    parameters share one count (and must hold the same codes). ``threads``: the kernel
    threads of the three calls (streaming counts, lossy deltas, lines)."""
    t = _table(tuple((layer, X.shape, X.dtype, zp, op, tau, line, theta, closed)   # dtype.name costs 3 us
                     for layer, X, zp, op, tau, line, theta, closed in entries), F)
    counts = _counts_buffer(t.size)
    errs = np.zeros((len(t.items), F, 3), np.int64)
    derrs = np.zeros((len(t.deltas), F, 3), np.int64)
    dle, dls = (np.zeros((len(t.deltas), F, max(t.delta_width, 1)), np.int64) for _ in range(2))
    if len(t.items):
        _kernels.stream_counts([entries[j][1] for j in t.sources], t.items, F, counts, errs, threads=threads[0])
    if len(t.deltas):
        _kernels.delta_counts([entries[j][1] for j in t.delta_sources], t.deltas, t.units, F, t.delta_covers,
                              counts, dle, dls, derrs, threads=threads[1])
    n = len(entries)
    events, sops = np.zeros((n, F), np.int64), np.zeros((n, F), np.int64)
    width = max(t.width, t.delta_width)
    line_ev = line_sp = None
    if lines:
        line_ev, line_sp = np.zeros((n, F, width), np.int64), np.zeros((n, F, width), np.int64)
    if len(t.rows):
        ev, sp = np.zeros((len(t.rows), F), np.int64), np.zeros((len(t.rows), F), np.int64)
        lev = lsp = None
        if lines:
            lev, lsp = np.zeros((len(t.rows), F, max(t.width, 1)), np.int64), np.zeros((len(t.rows), F, max(t.width, 1)), np.int64)
        _kernels.layer_lines(counts, t.rows, t.covers, ev, sp, lev, lsp, threads=threads[2])
        events[t.row_of], sops[t.row_of] = ev, sp
        if lines:
            line_ev[t.row_of, :, : t.width], line_sp[t.row_of, :, : t.width] = lev[..., : t.width], lsp[..., : t.width]  # type: ignore[index]
    if len(t.line_of):
        k = t.item_of[t.line_of]
        le, ls = dle[k, :, : t.delta_width], dls[k, :, : t.delta_width] * t.line_fch
        events[t.line_of], sops[t.line_of] = le.sum(axis=2), ls.sum(axis=2)
        if lines:
            line_ev[t.line_of, :, : t.delta_width], line_sp[t.line_of, :, : t.delta_width] = le, ls  # type: ignore[index]
    e = np.zeros((n, F, 3), np.int64)
    e[t.stream_of], e[t.delta_of] = errs[t.item_of[t.stream_of]], derrs[t.item_of[t.delta_of]]
    return Layers(events, sops, e[..., 0], e[..., 1], e[..., 2], line_ev, line_sp)


def position_lines(layer: Layer, count: np.ndarray) -> tuple[np.ndarray, ...]:
    """Events and SOPs ``(F,)`` and per-row line events and SOPs ``(F, H)`` of ``layer`` from
    per-position counts ``count`` ``(F, H, W)`` int32 of its input (``layer_lines``' mode 0,
    as in :func:`count`)."""
    F, H, W = count.shape
    row, cov = _line_row(layer, (F, 0, H, W), 0, 0, None, 0)
    ev, sp = np.zeros((1, F), np.int64), np.zeros((1, F), np.int64)
    le, ls = np.zeros((1, F, H), np.int64), np.zeros((1, F, H), np.int64)
    if F:
        _kernels.layer_lines(np.ascontiguousarray(count, np.int32).reshape(-1), np.array([row], np.int64),
                             _uint32_covers(cov), ev, sp, le, ls)
    return ev[0], sp[0], le[0], ls[0]
