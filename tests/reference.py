"""Plain numpy reference of the event semantics (``shared/design/semantics.md``).

Clarity over speed: every quantity is computed line by line (or frame by frame)
exactly as the semantics document writes it, so the Cython kernels can be held
to it. Geometry (extended row range, cover) comes from ``else_dse.workload``,
whose math ``tests/test_workload.py`` checks independently by brute force.

All functions take a signed code array ``X`` of shape ``(frame, C, H, W)``
(``X = code - zero_point``) and a :class:`~else_dse.workload.Layer` and return
a :class:`Counts` with one entry per frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from else_dse.workload import Layer, extended_rows

__all__ = [
    "Counts",
    "apply_tau",
    "conventional",
    "dense",
    "line_delta",
    "temporal_delta",
    "needed_lines",
    "errors",
    "reference_for",
    "all_ones_conv_sops",
]


@dataclass(frozen=True)
class Counts:
    """Per-frame statistics of one layer under one scheme.

    ``line_events`` / ``line_sops`` have shape ``(frame, n_lines)``: for line
    delta the lines along the scan axis in scan coordinates (index ``h`` of the
    flipped / swapped tensor, extended range ``[0, L)`` including bottom-padding
    lines); for the other schemes the input rows ``y`` in ``[0, H)``.
    """

    events: np.ndarray      # (frame,) int64
    sops: np.ndarray        # (frame,) int64
    max_error: np.ndarray   # (frame,) float64, code steps
    rel_error: np.ndarray   # (frame,) float64
    line_events: np.ndarray  # (frame, line) int64
    line_sops: np.ndarray    # (frame, line) int64


def apply_tau(X: np.ndarray, tau: int) -> np.ndarray:
    """Activation threshold: ``X = 0`` wherever ``|X| <= tau`` (int64 copy)."""
    X = np.asarray(X, dtype=np.int64)
    return np.where(np.abs(X) <= tau, 0, X)


def errors(X: np.ndarray, R: np.ndarray) -> tuple[float, float]:
    """``max|X - R|`` and ``||X - R|| / ||X||`` (0 when both norms are 0)."""
    diff = np.asarray(X, dtype=np.float64) - np.asarray(R, dtype=np.float64)
    max_err = float(np.abs(diff).max()) if diff.size else 0.0
    num = float(np.sqrt((diff ** 2).sum()))
    den = float(np.sqrt((np.asarray(X, dtype=np.float64) ** 2).sum()))
    if num == 0.0:
        return max_err, 0.0
    if den == 0.0:  # cannot happen under the semantics (X = 0 sends nothing); be loud
        return max_err, float("inf")
    return max_err, num / den


def _check(X: np.ndarray, layer: Layer) -> np.ndarray:
    X = np.asarray(X)
    assert X.ndim == 4 and X.shape[1:] == layer.input_shape, (X.shape, layer.input_shape)
    assert np.issubdtype(X.dtype, np.integer)
    return X.astype(np.int64)


def dense(X: np.ndarray, layer: Layer) -> Counts:
    """Every input element is an event; SOPs are the dense MACs; no error."""
    X = _check(X, layer)
    n, c, h, w = X.shape
    fan = layer.fan_out()  # (H, W)
    line_events = np.full((n, h), c * w, dtype=np.int64)
    line_sops = np.tile(c * fan.sum(axis=1), (n, 1)).astype(np.int64)
    return Counts(np.full(n, c * h * w, dtype=np.int64),
                  np.full(n, layer.dense_macs, dtype=np.int64),
                  np.zeros(n), np.zeros(n), line_events, line_sops)


def conventional(X: np.ndarray, layer: Layer, tau: int = 0) -> Counts:
    """Zero skipping: events = nnz(X) after the activation threshold."""
    X = _check(X, layer)
    Xt = apply_tau(X, tau)
    fan = layer.fan_out()  # (H, W), includes C_out / g
    nz = Xt != 0  # (frame, C, H, W)
    line_events = nz.sum(axis=(1, 3)).astype(np.int64)
    line_sops = (nz * fan[None, None]).sum(axis=(1, 3)).astype(np.int64)
    err = [errors(X[f], Xt[f]) for f in range(X.shape[0])]
    return Counts(line_events.sum(axis=1), line_sops.sum(axis=1),
                  np.array([e[0] for e in err]), np.array([e[1] for e in err]),
                  line_events, line_sops)


def temporal_delta(X: np.ndarray, layer: Layer, theta: int = 0, loop: str = "closed",
                   tau: int = 0) -> Counts:
    """Delta against the previous frame (frame 0 against zeros), conventional fan-out."""
    assert loop in ("closed", "open")
    X = _check(X, layer)
    Xt = apply_tau(X, tau)
    fan = layer.fan_out()
    n = X.shape[0]
    sender_ref = np.zeros(X.shape[1:], dtype=np.int64)    # R of the previous frame (sender)
    received = np.zeros(X.shape[1:], dtype=np.int64)      # what the consumer has accumulated
    ev, sp, me, re, le, ls = [], [], [], [], [], []
    for f in range(n):
        D = Xt[f] - sender_ref
        Dt = np.where(np.abs(D) > theta, D, 0)
        received = received + Dt
        sender_ref = received.copy() if loop == "closed" else Xt[f].copy()
        nz = Dt != 0
        le.append(nz.sum(axis=(0, 2)))
        ls.append((nz * fan[None]).sum(axis=(0, 2)))
        ev.append(int(nz.sum()))
        sp.append(int((nz * fan[None]).sum()))
        m, r = errors(X[f], received)
        me.append(m)
        re.append(r)
    return Counts(np.array(ev, dtype=np.int64), np.array(sp, dtype=np.int64), np.array(me),
                  np.array(re), np.array(le, dtype=np.int64).reshape(n, -1),
                  np.array(ls, dtype=np.int64).reshape(n, -1))


def needed_lines(layer: Layer) -> list[int]:
    """``{ r*s - p + i*d >= 0 : r in [r_lo, H_out), 0 <= i < k }`` along y, sorted."""
    k, s, p, d = layer.kernel[0], layer.stride[0], layer.padding[0], layer.dilation[0]
    rows = extended_rows(layer.output_shape[1], k, s, p, d)
    return sorted({r * s - p + i * d for r in rows for i in range(k) if r * s - p + i * d >= 0})


def _line_delta_y(X: np.ndarray, Xorig: np.ndarray, layer: Layer, theta: int, loop: str) -> Counts:
    """Forward line delta along y of ``X`` (frame, C, H, W); ``Xorig`` is X before tau."""
    n, c, H, W = X.shape
    s = layer.stride[0]
    needed = needed_lines(layer)
    cover_y = layer.cover("y", extended=True)  # over lines [0, L)
    cover_x = layer.cover("x")                 # conventional along x, length W
    L = len(cover_y)
    assert all(h < L for h in needed)
    assert all(cover_y[h] > 0 for h in needed)
    assert all(cover_y[h] == 0 for h in range(L) if h not in set(needed))
    fan_c = layer.fan_out_channels
    zero = np.zeros((c, W), dtype=np.int64)

    ev = np.zeros(n, dtype=np.int64)
    sp = np.zeros(n, dtype=np.int64)
    le = np.zeros((n, L), dtype=np.int64)
    ls = np.zeros((n, L), dtype=np.int64)
    me = np.zeros(n)
    re = np.zeros(n)
    for f in range(n):
        line = lambda A, h: A[f, :, h, :] if h < H else zero  # noqa: E731 - padding lines are 0
        sender_ref: dict[int, np.ndarray] = {}  # R_h as the sender keeps it
        received: dict[int, np.ndarray] = {}    # R_h as the consumer reconstructs it
        for h in needed:
            if h - s >= 0:
                assert h - s in sender_ref, f"reference line {h - s} of needed line {h} not sent"
            prev_s = sender_ref.get(h - s, zero)
            prev_r = received.get(h - s, zero)
            D = line(X, h) - prev_s
            Dt = np.where(np.abs(D) > theta, D, 0)
            received[h] = prev_r + Dt
            sender_ref[h] = received[h] if loop == "closed" else line(X, h)
            nz = Dt != 0
            le[f, h] = int(nz.sum())
            ls[f, h] = int((nz * cover_x[None, :]).sum()) * int(cover_y[h]) * fan_c
        ev[f] = le[f].sum()
        sp[f] = ls[f].sum()
        if needed:
            Xs = np.stack([line(Xorig, h) for h in needed])
            Rs = np.stack([received[h] for h in needed])
            me[f], re[f] = errors(Xs, Rs)
    return Counts(ev, sp, me, re, le, ls)


def line_delta(X: np.ndarray, layer: Layer, axis: str = "y", direction: str = "forward",
               theta: int = 0, loop: str = "closed", tau: int = 0) -> Counts:
    """ELSE line delta: axis x = y on the swapped tensor/geometry; reverse = forward on
    the flipped tensor with the padding flipped."""
    assert axis in ("y", "x") and direction in ("forward", "reverse") and loop in ("closed", "open")
    if layer.op == "fc":
        raise ValueError(f"layer {layer.name!r}: line delta is not defined for an fc layer")
    X = _check(X, layer)
    if axis == "x":
        X = X.transpose(0, 1, 3, 2)
        layer = layer.swapped()
    if direction == "reverse":
        X = X[:, :, ::-1, :]
        layer = layer.flipped()
    X = np.ascontiguousarray(X)
    return _line_delta_y(apply_tau(X, tau), X, layer, theta, loop)


def reference_for(X: np.ndarray, layer: Layer, scheme: Any) -> Counts:
    """Dispatch on a scheme object of ``else_dse.schemes`` (by its public fields)."""
    kind = scheme.kind
    if kind == "dense":
        return dense(X, layer)
    if kind == "conventional":
        return conventional(X, layer, tau=scheme.tau)
    if kind == "line_delta":
        return line_delta(X, layer, scheme.axis, scheme.direction, scheme.threshold,
                          scheme.loop, scheme.tau)
    if kind == "temporal_delta":
        return temporal_delta(X, layer, scheme.threshold, scheme.loop, scheme.tau)
    raise ValueError(f"unknown scheme kind {kind!r}")


def all_ones_conv_sops(E: np.ndarray, k: tuple[int, int], s: tuple[int, int],
                       pad_top: int, pad_left: int, d: tuple[int, int],
                       rows: range, cols: range, groups: int, c_out: int) -> int:
    """Brute-force grouped convolution of a 0/1 event map ``E`` (C, Hl, Wl) with an
    all-ones kernel, summed over every output (o, r, q) in ``c_out x rows x cols``.

    Output ``(o, r, q)`` reads input ``(c, r*s_y - pad_top + i*d_y, q*s_x - pad_left + j*d_x)``
    for every ``c`` in the group of ``o`` and every tap ``(i, j)``; positions outside ``E``
    are zero. This is the number of multiply-accumulates touching an event.
    """
    C, Hl, Wl = E.shape
    cin_g, cout_g = C // groups, c_out // groups
    total = 0
    for o in range(c_out):
        g = o // cout_g
        chans = range(g * cin_g, (g + 1) * cin_g)
        for r in rows:
            for q in cols:
                acc = 0
                for i in range(k[0]):
                    y = r * s[0] - pad_top + i * d[0]
                    if not 0 <= y < Hl:
                        continue
                    for j in range(k[1]):
                        x = q * s[1] - pad_left + j * d[1]
                        if not 0 <= x < Wl:
                            continue
                        for ch in chans:
                            acc += int(E[ch, y, x] != 0) * 1  # all-ones weight
                total += acc
    return total
