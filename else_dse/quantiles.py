"""Exact percentiles of the tensors of a chunked recording, as ``numpy.percentile`` gives them.

``numpy.percentile(x, q)`` (method ``"linear"``) interpolates between two order
statistics of ``x``: ranks ``j = floor(v)`` and ``j + 1`` (clipped to ``n - 1``),
``v = (n - 1) * q / 100``, with weight ``g = v - j``, as ``a + (b - a) * g`` (or
``b - (b - a) * (1 - g)`` when ``g >= 0.5``) in the tensor's float type. Those
order statistics are found here exactly, chunk by chunk, by radix selection on
the order-preserving bit pattern of each value (16 bits per pass: two passes over
the recording for float32), so memory is bounded by one chunk. Each pass runs
through :func:`else_dse.stream.run`, on a ``dask.distributed`` cluster when a
client is active. Non-finite values must have been rejected before.
"""

from __future__ import annotations

import functools
from typing import Mapping, Sequence

import numpy as np
import xarray as xr

from . import stream

__all__ = ["chunked_percentiles", "percentile_ranks"]

_DIGIT = 16
_UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def percentile_ranks(n: int, q: float) -> tuple[int, int, float]:
    """``(j, k, g)``: the ranks ``numpy.percentile`` interpolates between, and the weight."""
    v = float((n - 1) * np.true_divide(q, 100))
    j = int(np.floor(v))
    k = min(j + 1, n - 1)
    return min(j, n - 1), k, v - j


def _keys(x: np.ndarray) -> np.ndarray:
    """Unsigned integers ordered as the float values ``x`` are (-0.0 just below +0.0)."""
    u = _UINT[x.dtype.itemsize]
    bits = np.ascontiguousarray(x).ravel().view(u)
    top = u(1) << u(8 * x.dtype.itemsize - 1)
    return np.where(bits & top, ~bits, bits | top)


def _value(key: int, dtype: np.dtype) -> np.generic:
    """The float of an order-preserving key (inverse of :func:`_keys`)."""
    u = _UINT[dtype.itemsize]
    top = u(1) << u(8 * dtype.itemsize - 1)
    k = u(key)
    bits = (k ^ top) if k & top else ~k
    return np.array([bits], u).view(dtype)[0]


def _histograms(targets: Mapping[str, tuple[int, ...]], shift: int, part: xr.Dataset,
                skip: int) -> dict[tuple[str, int], np.ndarray]:
    """Counts of the next 16-bit digit of the values of each variable whose higher bits
    equal one of its prefixes (``{var: prefixes}``; ``shift``: bits below the digit)."""
    out = {}
    for v, prefixes in targets.items():
        keys = _keys(part[v].values)
        up = keys >> keys.dtype.type(shift + _DIGIT) if shift + _DIGIT < 8 * keys.itemsize else None
        for p in prefixes:
            sel = keys if up is None else keys[up == keys.dtype.type(p)]
            digit = ((sel >> sel.dtype.type(shift)) & sel.dtype.type(0xFFFF)).astype(np.int64)
            out[(v, p)] = np.bincount(digit, minlength=1 << _DIGIT)
    return out


def _order_statistics(ds: xr.Dataset, ranks: Mapping[str, Sequence[int]], desc: str
                      ) -> dict[str, list[int]]:
    """The keys of the values of rank ``ranks[var]`` (0-based, in sorted order) of each variable."""
    width = {v: 8 * ds[v].dtype.itemsize for v in ranks}
    state = {v: [[0, r] for r in rs] for v, rs in ranks.items()}   # [prefix, rank within it]
    for step in range(max(width.values()) // _DIGIT):
        live = {v: tuple(sorted({p for p, _ in state[v]})) for v in ranks if step < width[v] // _DIGIT}
        if not live:
            break
        shifts = {w: w - _DIGIT * (step + 1) for w in set(width.values())}
        hists: dict[tuple[str, int], np.ndarray] = {}
        for w, shift in shifts.items():
            group = {v: p for v, p in live.items() if width[v] == w}
            if not group:
                continue
            task = functools.partial(_histograms, group, shift)
            for got in stream.run(ds[list(group)], task, f"{desc} (pass {step + 1})"):
                for key, h in got.items():
                    hists[key] = hists[key] + h if key in hists else h
        for v in live:
            for target in state[v]:
                cum = np.cumsum(hists[(v, target[0])])
                d = int(np.searchsorted(cum, target[1], side="right"))
                target[1] -= int(cum[d - 1]) if d else 0
                target[0] = (target[0] << _DIGIT) | d
    return {v: [p for p, _ in state[v]] for v in ranks}


def _lerp(a: np.generic, b: np.generic, g: float, dtype: np.dtype) -> float:
    """numpy's linear interpolation of two order statistics, in the tensor's float type."""
    t = np.dtype(dtype).type
    d = t(b) - t(a)
    return float(t(b) - d * t(1 - g)) if g >= 0.5 else float(t(a) + d * t(g))


def chunked_percentiles(ds: xr.Dataset, qs: Sequence[float], desc: str) -> dict[str, list[float]]:
    """``{variable: [numpy.percentile(values, q) for q in qs]}`` of every data variable of a
    chunked dataset, exactly, in ``bits / 16`` streaming passes."""
    names = list(ds.data_vars)
    plans = {v: [percentile_ranks(int(ds[v].size), q) for q in qs] for v in names}
    ranks = {v: sorted({r for j, k, _ in plans[v] for r in (j, k)}) for v in names}
    found = _order_statistics(ds, ranks, desc)
    out = {}
    for v in names:
        dtype = ds[v].dtype
        value = {r: _value(key, dtype) for r, key in zip(ranks[v], found[v])}
        out[v] = [_lerp(value[j], value[k], g, dtype) for j, k, g in plans[v]]
    return out
