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

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import xarray as xr
from hypothesis import strategies as st

from else_dse.recording import QuantizedRecording, Recording
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
    "make_qrec",
    "layers_st",
    "codes_st",
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
    event_map: np.ndarray    # (frame, C, lines, W) bool, in scan coordinates for line delta
    # what the consumer computes on, (frame, C, H, W) int64 in tensor coordinates:
    # X after tau (conventional, dense); R / Y of every needed line, X on lines
    # no row reads (line delta); R / Y after each frame (temporal delta)
    recon: np.ndarray | None = None
    state: tuple[np.ndarray, np.ndarray] | None = None  # temporal: (sender R, receiver Y) after the last frame


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


def dense(X: np.ndarray, layer: Layer, tau: int = 0) -> Counts:
    """Every input element is an event; SOPs are the dense MACs; the error is that of
    the activation threshold ``tau`` (what is sent is X with |X| <= tau zeroed)."""
    X = _check(X, layer)
    if tau:
        thresholded = conventional(X, layer, tau)
        full = dense(X, layer)
        return Counts(full.events, full.sops, thresholded.max_error, thresholded.rel_error,
                      full.line_events, full.line_sops, full.event_map, thresholded.recon)
    n, c, h, w = X.shape
    fan = layer.fan_out()  # (H, W)
    line_events = np.full((n, h), c * w, dtype=np.int64)
    line_sops = np.tile(c * fan.sum(axis=1), (n, 1)).astype(np.int64)
    return Counts(np.full(n, c * h * w, dtype=np.int64),
                  np.full(n, layer.dense_macs, dtype=np.int64),
                  np.zeros(n), np.zeros(n), line_events, line_sops, np.ones(X.shape, dtype=bool), X)


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
                  line_events, line_sops, nz, Xt)


def temporal_delta(X: np.ndarray, layer: Layer, theta: int = 0, loop: str = "closed",
                   tau: int = 0, state: tuple[np.ndarray, np.ndarray] | None = None) -> Counts:
    """Delta against the previous frame (frame 0 against zeros, or against ``state``
    = (sender R, receiver Y) where an earlier run stopped), conventional fan-out."""
    assert loop in ("closed", "open")
    X = _check(X, layer)
    Xt = apply_tau(X, tau)
    fan = layer.fan_out()
    n = X.shape[0]
    sender_ref = np.zeros(X.shape[1:], dtype=np.int64)    # R of the previous frame (sender)
    received = np.zeros(X.shape[1:], dtype=np.int64)      # what the consumer has accumulated
    if state is not None:
        sender_ref, received = (np.array(a, dtype=np.int64).reshape(X.shape[1:]) for a in state)
    ev, sp, me, re, le, ls, maps, recon = [], [], [], [], [], [], [], []
    for f in range(n):
        D = Xt[f] - sender_ref
        Dt = np.where(np.abs(D) > theta, D, 0)
        received = received + Dt
        sender_ref = received.copy() if loop == "closed" else Xt[f].copy()
        nz = Dt != 0
        maps.append(nz)
        le.append(nz.sum(axis=(0, 2)))
        ls.append((nz * fan[None]).sum(axis=(0, 2)))
        ev.append(int(nz.sum()))
        sp.append(int((nz * fan[None]).sum()))
        m, r = errors(X[f], received)
        me.append(m)
        re.append(r)
        recon.append(received.copy())
    return Counts(np.array(ev, dtype=np.int64), np.array(sp, dtype=np.int64), np.array(me),
                  np.array(re), np.array(le, dtype=np.int64).reshape(n, -1),
                  np.array(ls, dtype=np.int64).reshape(n, -1), np.array(maps, dtype=bool),
                  np.array(recon, dtype=np.int64).reshape(X.shape), (sender_ref, received))


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
    maps = np.zeros((n, c, L, W), dtype=bool)
    recon = Xorig.astype(np.int64).copy()  # lines no row reads keep X
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
            if h < H:
                recon[f, :, h, :] = received[h]
            maps[f, :, h, :] = nz
            le[f, h] = int(nz.sum())
            ls[f, h] = int((nz * cover_x[None, :]).sum()) * int(cover_y[h]) * fan_c
        ev[f] = le[f].sum()
        sp[f] = ls[f].sum()
        if needed:
            Xs = np.stack([line(Xorig, h) for h in needed])
            Rs = np.stack([received[h] for h in needed])
            me[f], re[f] = errors(Xs, Rs)
    return Counts(ev, sp, me, re, le, ls, maps, recon)


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
    counts = _line_delta_y(apply_tau(X, tau), X, layer, theta, loop)
    recon = counts.recon
    if direction == "reverse":
        recon = recon[:, :, ::-1, :]
    if axis == "x":
        recon = recon.transpose(0, 1, 3, 2)
    return dataclasses.replace(counts, recon=np.ascontiguousarray(recon))


def reference_for(X: np.ndarray, layer: Layer, scheme: Any,
                  state: tuple[np.ndarray, np.ndarray] | None = None) -> Counts:
    """Dispatch on a scheme object of ``else_dse.schemes`` (by its public fields);
    ``state`` (sender R, receiver Y) continues a temporal delta."""
    kind = scheme.kind
    if kind == "dense":
        return dense(X, layer, tau=scheme.tau)
    if kind == "conventional":
        return conventional(X, layer, tau=scheme.tau)
    if kind == "line_delta":
        return line_delta(X, layer, scheme.axis, scheme.direction, scheme.threshold,
                          scheme.loop, scheme.tau)
    if kind == "temporal_delta":
        return temporal_delta(X, layer, scheme.threshold, scheme.loop, scheme.tau, state)
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


# ---- test data: recordings with controlled codes and random geometry ----------

def make_qrec(layers: Sequence[Layer], signed: Mapping[str, np.ndarray], bits: int = 8,
              frame_labels: Sequence[str] | None = None) -> QuantizedRecording:
    """A QuantizedRecording whose ``signed(t)`` is exactly ``signed[t]``.

    Built through the public path (``Recording.from_arrays`` validates geometry),
    then the float values are replaced by codes ``X + zero_point`` with
    ``zero_point = 2**(bits-1)`` and ``scale = 1``.
    """
    rec = Recording.from_arrays(layers, {t: np.asarray(a, dtype=np.float32) for t, a in signed.items()},
                                frame_labels=frame_labels)
    zp = 2 ** (bits - 1)
    ds = rec.data.copy()
    for v in list(ds.data_vars):
        X = np.asarray(signed[ds[v].attrs["tensor"]], dtype=np.int64)
        codes = X + zp
        assert codes.min() >= 0 and codes.max() <= 2 ** bits - 1, "codes out of range"
        dtype = np.uint8 if bits <= 8 else np.uint16
        ds[v] = xr.Variable(ds[v].dims, codes.astype(dtype),
                            attrs={**ds[v].attrs, "scale": 1.0, "zero_point": zp})
    ds.attrs.update({"bits": int(bits), "calibration": "max"})
    q = QuantizedRecording(rec.layers, ds)
    for t, X in signed.items():
        np.testing.assert_array_equal(q.signed(t), X)
    return q


@st.composite
def layers_st(draw, max_hw: int = 7, ops: Sequence[str] = ("conv", "depthwise", "fc"),
              name: str = "l", tensor: str = "t", shape: tuple[int, int, int] | None = None,
              max_c: int = 4) -> Layer:
    """A random valid layer: odd shapes (1 allowed), stride > kernel, dilation,
    asymmetric padding (also larger than the kernel), grouped / depthwise, fc."""
    op = draw(st.sampled_from(list(ops)))
    if shape is None:
        C, H, W = draw(st.integers(1, max_c)), draw(st.integers(1, max_hw)), draw(st.integers(1, max_hw))
    else:
        C, H, W = shape
    if op == "fc":
        return Layer(name, tensor, "fc", C * H * W, draw(st.integers(1, 5)), input_shape=(C, H, W))
    if op == "depthwise":
        g = C
    else:
        g = draw(st.sampled_from([x for x in range(1, C + 1) if C % x == 0]))
    c_out = g * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dh, dw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    t, b, l, r = (draw(st.integers(0, 4)) for _ in range(4))
    if H + t + b < dh * (kh - 1) + 1:
        b += dh * (kh - 1) + 1 - (H + t + b)
    if W + l + r < dw * (kw - 1) + 1:
        r += dw * (kw - 1) + 1 - (W + l + r)
    return Layer(name, tensor, op, C, c_out, kernel=(kh, kw), stride=(sh, sw), padding=(t, b, l, r),
                 dilation=(dh, dw), groups=g, input_shape=(C, H, W))


@st.composite
def codes_st(draw, shape: tuple[int, ...], bits: int = 8, sparsity: float | None = None) -> np.ndarray:
    """Signed codes in the ``bits`` range, sparse (many zeros) and often small."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    kind = draw(st.sampled_from(["small", "full", "smooth"]))
    if kind == "small":
        X = rng.integers(-3, 4, size=shape)
    elif kind == "full":
        X = rng.integers(lo, hi + 1, size=shape)
    else:  # smooth along y and x plus noise: line deltas are small but non-zero
        base = rng.integers(-4, 5, size=shape[:2] + (1, 1))
        X = base + rng.integers(-1, 2, size=shape)
    p_zero = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0])) if sparsity is None else sparsity
    X = np.where(rng.random(shape) < p_zero, 0, X)
    return np.clip(X, lo, hi).astype(np.int64)


# ---- holding count_events to the reference -------------------------------------

def scheme_of(scheme_or_plan: Any, layer_name: str) -> Any:
    """The scheme a plan (or a bare scheme) assigns to a layer."""
    if hasattr(scheme_or_plan, "scheme_for"):
        return scheme_or_plan.scheme_for(layer_name)
    return scheme_or_plan


def assert_matches_reference(ds: xr.Dataset, q: QuantizedRecording, scheme_or_plan: Any,
                             lines: bool = False, layer_names: Sequence[str] | None = None) -> None:
    """Assert that a ``count_events`` Dataset equals the reference, layer by layer."""
    assert tuple(ds["layer"].values) == tuple(layer.name for layer in q.layers)
    assert ds.sizes["frame"] == q.n_frames
    for var in ("events", "sops", "dense_events", "dense_macs"):
        assert ds[var].dtype == np.int64, (var, ds[var].dtype)
    for var in ("max_error", "rel_error"):
        assert ds[var].dtype == np.float64, (var, ds[var].dtype)
    assert int(ds.attrs["bits"]) == q.bits
    assert ds.attrs["calibration"] == q.calibration
    for layer in q.layers:
        if layer_names is not None and layer.name not in layer_names:
            continue
        scheme = scheme_of(scheme_or_plan, layer.name)
        ref = reference_for(q.signed(layer.input), layer, scheme)
        got = ds.sel(layer=layer.name)
        where = f"layer {layer.name!r} ({layer.op}, {layer.to_dict()}), scheme {scheme!r}"
        np.testing.assert_array_equal(got["events"].values, ref.events, err_msg="events: " + where)
        np.testing.assert_array_equal(got["sops"].values, ref.sops, err_msg="sops: " + where)
        np.testing.assert_array_equal(got["dense_events"].values, layer.dense_events, err_msg=where)
        np.testing.assert_array_equal(got["dense_macs"].values, layer.dense_macs, err_msg=where)
        np.testing.assert_array_equal(got["max_error"].values, ref.max_error,
                                      err_msg="max_error: " + where)
        np.testing.assert_allclose(got["rel_error"].values, ref.rel_error, rtol=1e-9, atol=1e-12,
                                   err_msg="rel_error: " + where)
        assert str(got["scheme"].values) == scheme.kind, where
        assert str(got["axis"].values) == (scheme.axis if scheme.kind == "line_delta" else ""), where
        assert int(got["threshold"].values) == getattr(scheme, "threshold", 0), where
        assert int(got["tau"].values) == getattr(scheme, "tau", 0), where
        assert str(got["op"].values) == layer.op, where
        if lines:
            for var, want in (("line_events", ref.line_events), ("line_sops", ref.line_sops)):
                arr = got[var].values  # (frame, line)
                assert arr.dtype == np.int64, var
                n = want.shape[1]
                assert arr.shape[1] >= n, f"{var}: {arr.shape[1]} lines < {n}: {where}"
                np.testing.assert_array_equal(arr[:, :n], want, err_msg=f"{var}: {where}")
                assert not arr[:, n:].any(), f"{var}: non-zero beyond line {n}: {where}"
                np.testing.assert_array_equal(arr.sum(axis=1), got["events" if var == "line_events"
                                                                   else "sops"].values, err_msg=where)
