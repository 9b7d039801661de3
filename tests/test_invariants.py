"""The invariants at the end of ``semantics.md``, on the reference and on the kernels,
on random data and on every layer of every shipped recording.

Also hand-worked examples that pin the reference itself to the semantics.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import reference as ref
from else_dse import Layer
from else_dse import schemes as S
from else_dse.events import count_events
from else_dse.recording import open_recording
from reference import codes_st, layers_st, make_qrec

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DATA = Path(__file__).resolve().parent.parent / "data"
NAMED = ["blazeface_carphone.nc", "posedet_carphone.nc", "poselandmark_carphone.nc",
         "poselandmark_stills.nc"]
# the four named recordings (each must exist) and whatever else data/ ships
SHIPPED = sorted(set(NAMED) | {p.name for p in DATA.glob("*.nc")})


def col(values, **kw):
    """A (frame, C=1, H, W=1) column from a list of per-line values (per frame)."""
    a = np.asarray(values, dtype=np.int64)
    if a.ndim == 1:
        a = a[None]
    return a[:, None, :, None]


def conv1d(H, k=1, s=1, p=(0, 0), d=1, c_out=1):
    return Layer("c", "t", "conv", 1, c_out, kernel=(k, 1), stride=(s, 1), padding=(p[0], p[1], 0, 0),
                 dilation=(d, 1), input_shape=(1, H, 1))


# ---- hand-worked examples: the reference follows semantics.md ------------------

def test_hand_line_delta_identity_kernel():
    layer = conv1d(4)
    c = ref.line_delta(col([2, 2, 3, 0]), layer)
    assert c.events.tolist() == [3]          # D = 2, 0, 1, -3
    assert c.sops.tolist() == [3]
    assert c.line_events.tolist() == [[1, 0, 1, 1]]


def test_hand_line_delta_extended_rows_and_bottom_padding():
    # k=3, s=1, p=(1,1), H=3: H_out=3, r_lo=-1, needed {0,1,2,3}, line 3 is bottom padding
    layer = conv1d(3, k=3, p=(1, 1))
    c = ref.line_delta(col([1, 1, 1]), layer)
    assert c.events.tolist() == [2]          # D = 1, 0, 0, -1 (the padding line's delta is sent)
    assert c.line_events.tolist() == [[1, 0, 0, 1]]
    assert c.sops.tolist() == [3 + 1]        # extended cover: line 0 -> rows -1,0,1; line 3 -> row 2
    conv = ref.conventional(col([1, 1, 1]), layer)
    assert conv.events.tolist() == [3] and conv.sops.tolist() == [2 + 3 + 2]


def test_hand_line_delta_stride_skips_unneeded_lines():
    layer = conv1d(5, k=1, s=2)                  # rows read 0, 2, 4 only
    c = ref.line_delta(col([5, 7, 5, 9, 5]), layer)
    assert c.events.tolist() == [1]          # D_0 = 5, D_2 = 5 - 5, D_4 = 5 - 5
    assert ref.needed_lines(layer) == [0, 2, 4]
    assert c.max_error.tolist() == [0.0]


def test_hand_line_delta_stride_reference_is_s_lines_above():
    layer = conv1d(4, k=2, s=2)                  # rows 0,1 read 0,1 and 2,3; r_lo = min(0, ceil(-1/2)) = 0
    c = ref.line_delta(col([1, 2, 1, 5]), layer)
    # D_0 = 1, D_1 = 2, D_2 = 1 - 1 = 0, D_3 = 5 - 2 = 3
    assert c.line_events.tolist() == [[1, 1, 0, 1]]


def test_hand_line_delta_reverse():
    layer = conv1d(3, k=3, p=(2, 0))
    fwd = ref.line_delta(col([1, 2, 2]), layer)
    assert fwd.events.tolist() == [2]        # r_lo = 0, needed {0,1,2}: D = 1, 1, 0
    rev = ref.line_delta(col([1, 2, 2]), layer, direction="reverse")
    # flipped [2,2,1], padding (0,2): r_lo=-2, needed {0..4}: D = 2, 0, -1, -1, 0
    assert rev.line_events.tolist() == [[1, 0, 1, 1, 0]]
    assert rev.events.tolist() == [3]


def test_hand_threshold_closed_vs_open():
    layer = conv1d(4)
    X = col([0, 1, 2, 3])
    closed = ref.line_delta(X, layer, theta=1, loop="closed")
    assert closed.events.tolist() == [1]     # only D_2 = 2 goes out
    assert closed.max_error.tolist() == [1.0]
    assert closed.rel_error[0] == pytest.approx(np.sqrt(1 + 1) / np.sqrt(14))
    opened = ref.line_delta(X, layer, theta=1, loop="open")
    assert opened.events.tolist() == [0]     # every |X_h - X_{h-1}| = 1 is suppressed
    assert opened.max_error.tolist() == [3.0]
    assert opened.rel_error[0] == pytest.approx(1.0)
    t_closed = ref.temporal_delta(np.arange(4).reshape(4, 1, 1, 1), Layer(
        "c", "t", "conv", 1, 1, input_shape=(1, 1, 1)), theta=1)
    assert t_closed.events.tolist() == [0, 0, 1, 0]
    assert t_closed.max_error.tolist() == [0.0, 1.0, 0.0, 1.0]


def test_hand_tau():
    layer = conv1d(2)
    c = ref.conventional(col([1, 3]), layer, tau=1)
    assert c.events.tolist() == [1]
    assert c.max_error.tolist() == [1.0]
    assert c.rel_error[0] == pytest.approx(1 / np.sqrt(10))
    ld = ref.line_delta(col([1, 3]), layer, tau=1)
    assert ld.events.tolist() == [1] and ld.max_error.tolist() == [1.0]


def test_hand_padding_only_layer_has_no_events():
    # stride 5, top padding 6: both output rows read only the top padding
    layer = conv1d(1, k=1, s=5, p=(6, 0))
    assert layer.output_shape[1] == 2 and ref.needed_lines(layer) == []
    c = ref.line_delta(col([7]), layer)
    assert c.events.tolist() == [0] and c.sops.tolist() == [0] and c.max_error.tolist() == [0.0]
    conv = ref.conventional(col([7]), layer)
    assert conv.events.tolist() == [1] and conv.sops.tolist() == [0]


# ---- invariants -------------------------------------------------------------------

def _scan(X, layer, axis, direction):
    """Tensor and geometry as the forward-y scan sees them."""
    if axis == "x":
        X, layer = X.transpose(0, 1, 3, 2), layer.swapped()
    if direction == "reverse":
        X, layer = X[:, :, ::-1, :], layer.flipped()
    return np.ascontiguousarray(X), layer


def _events_bound(X, layer, axis, direction):
    """sum over needed lines h of nnz(X_h) + nnz(X_{h-s}) (lines outside [0, H) are zero)."""
    Xs, lay = _scan(X, layer, axis, direction)
    H, s = Xs.shape[2], lay.stride[0]
    nnz = lambda f, h: int(np.count_nonzero(Xs[f, :, h])) if 0 <= h < H else 0  # noqa: E731
    return np.array([sum(nnz(f, h) + nnz(f, h - s) for h in ref.needed_lines(lay))
                     for f in range(Xs.shape[0])])


def _sops_by_convolution(event_map, layer, axis, direction, extended):
    """Brute-force all-ones convolution of an event map (scan coordinates), summed."""
    _, lay = _scan(np.zeros((1,) + layer.input_shape, dtype=np.int64), layer, axis, direction)
    rows = lay.rows("y", extended=extended)
    return np.array([ref.all_ones_conv_sops(E, lay.kernel, lay.stride, lay.padding[0],
                                            lay.padding[2], lay.dilation, rows,
                                            range(lay.output_shape[2]), lay.groups,
                                            lay.out_channels) for E in event_map])


@st.composite
def case(draw, ops=("conv", "depthwise"), max_frames=3, max_hw=6):
    layer = draw(layers_st(ops=ops, max_hw=max_hw))
    n = draw(st.integers(1, max_frames))
    bits = draw(st.sampled_from([4, 8]))
    X = draw(codes_st((n,) + layer.input_shape, bits=bits))
    return layer, X, bits


scan_st = st.tuples(st.sampled_from(["y", "x"]), st.sampled_from(["forward", "reverse"]))


@SETTINGS
@given(case(), scan_st, st.sampled_from(["closed", "open"]), st.integers(0, 2))
def test_reference_theta0_lossless_and_bounded(c, scan, loop, tau):
    layer, X, _ = c
    axis, direction = scan
    r = ref.line_delta(X, layer, axis, direction, 0, loop, 0)
    assert not r.max_error.any() and not r.rel_error.any()
    assert (r.events <= _events_bound(X, layer, axis, direction)).all()
    # both loops agree at theta = 0, with any tau
    other = ref.line_delta(X, layer, axis, direction, 0, "open" if loop == "closed" else "closed", tau)
    same = ref.line_delta(X, layer, axis, direction, 0, loop, tau)
    np.testing.assert_array_equal(other.events, same.events)
    np.testing.assert_array_equal(other.max_error, same.max_error)
    t = ref.temporal_delta(X, layer, 0, loop)
    assert not t.max_error.any()


@SETTINGS
@given(case(), scan_st, st.integers(0, 6), st.integers(0, 3))
def test_reference_closed_loop_error_bound(c, scan, theta, tau):
    layer, X, _ = c
    r = ref.line_delta(X, layer, *scan, theta, "closed", 0)
    assert (r.max_error <= theta).all()
    r = ref.line_delta(X, layer, *scan, theta, "closed", tau)
    assert (r.max_error <= theta + tau).all()
    t = ref.temporal_delta(X, layer, theta, "closed")
    assert (t.max_error <= theta).all()


@SETTINGS
@given(case(), st.sampled_from(["forward", "reverse"]), st.integers(0, 3),
       st.sampled_from(["closed", "open"]))
def test_reference_axis_x_is_swapped_axis_y(c, direction, theta, loop):
    layer, X, _ = c
    a = ref.line_delta(X, layer, "x", direction, theta, loop)
    b = ref.line_delta(np.ascontiguousarray(X.transpose(0, 1, 3, 2)), layer.swapped(), "y",
                       direction, theta, loop)
    for f in ("events", "sops", "max_error", "rel_error", "line_events", "line_sops"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case(ops=("conv", "depthwise"), max_frames=2, max_hw=5), scan_st, st.integers(0, 3),
       st.sampled_from(["closed", "open"]), st.integers(0, 1))
def test_reference_sops_equal_all_ones_convolution(c, scan, theta, loop, tau):
    layer, X, _ = c
    r = ref.line_delta(X, layer, *scan, theta, loop, tau)
    np.testing.assert_array_equal(r.events, r.event_map.sum(axis=(1, 2, 3)))
    np.testing.assert_array_equal(r.sops, _sops_by_convolution(r.event_map, layer, *scan, True))
    for r in (ref.conventional(X, layer, tau), ref.temporal_delta(X, layer, theta, loop, tau),
              ref.dense(X, layer)):
        np.testing.assert_array_equal(r.events, r.event_map.sum(axis=(1, 2, 3)))
        np.testing.assert_array_equal(r.sops, _sops_by_convolution(r.event_map, layer, "y",
                                                                   "forward", False))


@SETTINGS
@given(case(ops=("conv", "depthwise", "fc"), max_frames=4), st.integers(0, 2), st.data())
def test_reference_frame_order(c, tau, data):
    layer, X, _ = c
    perm = data.draw(st.permutations(range(X.shape[0])))
    a, b = ref.conventional(X, layer, tau), ref.conventional(X[list(perm)], layer, tau)
    np.testing.assert_array_equal(a.events[list(perm)], b.events)
    np.testing.assert_array_equal(a.sops[list(perm)], b.sops)


def test_reference_temporal_depends_on_frame_order():
    layer = Layer("c", "t", "conv", 1, 2, kernel=2, input_shape=(1, 3, 3))
    A = np.arange(9).reshape(1, 1, 3, 3) - 4
    B = A + 1
    X = np.concatenate([A, A, B])
    fwd = ref.temporal_delta(X, layer)
    rev = ref.temporal_delta(X[::-1], layer)
    assert fwd.events.tolist() == [8, 0, 9]
    assert rev.events.tolist() == [8, 9, 0]
    assert fwd.events.sum() != rev.events.sum() or fwd.events.tolist() != rev.events[::-1].tolist()


# ---- the same invariants on the kernels ---------------------------------------------

def _counts(q, scheme, lines=False):
    return count_events(q, scheme, lines=lines).isel(layer=0)


@SETTINGS
@given(case(), scan_st, st.sampled_from(["closed", "open"]), st.integers(0, 3))
def test_kernels_theta0_lossless_and_bounded(c, scan, loop, tau):
    layer, X, bits = c
    q = make_qrec([layer], {"t": X}, bits)
    got = _counts(q, S.LineDelta(axis=scan[0], direction=scan[1], threshold=0, loop=loop))
    assert not got["max_error"].values.any() and not got["rel_error"].values.any()
    assert (got["events"].values <= _events_bound(X, layer, *scan)).all()
    a = _counts(q, S.LineDelta(axis=scan[0], direction=scan[1], threshold=0, loop="open", tau=tau))
    b = _counts(q, S.LineDelta(axis=scan[0], direction=scan[1], threshold=0, loop="closed", tau=tau))
    for v in ("events", "sops", "max_error", "rel_error"):
        np.testing.assert_array_equal(a[v].values, b[v].values)
    t = _counts(q, S.TemporalDelta(threshold=0, loop=loop))
    assert not t["max_error"].values.any()


@SETTINGS
@given(case(), scan_st, st.integers(0, 8), st.integers(0, 3))
def test_kernels_closed_loop_error_bound(c, scan, theta, tau):
    layer, X, bits = c
    q = make_qrec([layer], {"t": X}, bits)
    got = _counts(q, S.LineDelta(axis=scan[0], direction=scan[1], threshold=theta))
    assert (got["max_error"].values <= theta).all()
    got = _counts(q, S.LineDelta(axis=scan[0], direction=scan[1], threshold=theta, tau=tau))
    assert (got["max_error"].values <= theta + tau).all()
    got = _counts(q, S.TemporalDelta(threshold=theta))
    assert (got["max_error"].values <= theta).all()


@SETTINGS
@given(case(), st.sampled_from(["forward", "reverse"]), st.integers(0, 3),
       st.sampled_from(["closed", "open"]), st.integers(0, 1))
def test_kernels_axis_x_is_swapped_axis_y(c, direction, theta, loop, tau):
    layer, X, bits = c
    q = make_qrec([layer], {"t": X}, bits)
    qs = make_qrec([layer.swapped()], {"t": np.ascontiguousarray(X.transpose(0, 1, 3, 2))}, bits)
    a = _counts(q, S.LineDelta(axis="x", direction=direction, threshold=theta, loop=loop, tau=tau),
                lines=True)
    b = _counts(qs, S.LineDelta(axis="y", direction=direction, threshold=theta, loop=loop, tau=tau),
                lines=True)
    for v in ("events", "sops", "max_error", "rel_error"):
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
    for v in ("line_events", "line_sops"):
        n = min(a.sizes["line"], b.sizes["line"])
        np.testing.assert_array_equal(a[v].values[:, :n], b[v].values[:, :n], err_msg=v)
        assert not a[v].values[:, n:].any() and not b[v].values[:, n:].any()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case(max_frames=2, max_hw=5), scan_st, st.integers(0, 3),
       st.sampled_from(["closed", "open"]), st.integers(0, 1))
def test_kernels_sops_equal_all_ones_convolution(c, scan, theta, loop, tau):
    layer, X, bits = c
    q = make_qrec([layer], {"t": X}, bits)
    # conventional: the event map is the thresholded tensor itself (no reference involved)
    got = _counts(q, S.Conventional(tau=tau))
    E = ref.apply_tau(X, tau) != 0
    np.testing.assert_array_equal(got["events"].values, E.sum(axis=(1, 2, 3)))
    np.testing.assert_array_equal(got["sops"].values, _sops_by_convolution(E, layer, "y", "forward", False))
    # line delta: the event map of the reference, convolved, equals the kernel's SOPs
    got = _counts(q, S.LineDelta(axis=scan[0], direction=scan[1], threshold=theta, loop=loop, tau=tau))
    r = ref.line_delta(X, layer, *scan, theta, loop, tau)
    np.testing.assert_array_equal(got["events"].values, r.event_map.sum(axis=(1, 2, 3)))
    np.testing.assert_array_equal(got["sops"].values, _sops_by_convolution(r.event_map, layer, *scan, True))
    got = _counts(q, S.TemporalDelta(threshold=theta, loop=loop, tau=tau))
    r = ref.temporal_delta(X, layer, theta, loop, tau)
    np.testing.assert_array_equal(got["sops"].values, _sops_by_convolution(r.event_map, layer, "y", "forward", False))


@SETTINGS
@given(case(ops=("conv", "depthwise", "fc"), max_frames=4), st.integers(0, 2), st.data())
def test_kernels_frame_order(c, tau, data):
    layer, X, bits = c
    perm = list(data.draw(st.permutations(range(X.shape[0]))))
    q = make_qrec([layer], {"t": X}, bits)
    a = _counts(q, S.Conventional(tau=tau))
    b = _counts(q.select_frames(perm), S.Conventional(tau=tau))
    for v in ("events", "sops", "max_error", "rel_error"):
        np.testing.assert_array_equal(a[v].values[perm], b[v].values)


def test_kernels_temporal_depends_on_frame_order():
    layer = Layer("c", "t", "conv", 1, 2, kernel=2, input_shape=(1, 3, 3))
    A = np.arange(9).reshape(1, 1, 3, 3) - 4
    X = np.concatenate([A, A, A + 1])
    q = make_qrec([layer], {"t": X})
    fwd = _counts(q, S.TemporalDelta())["events"].values
    rev = _counts(q.select_frames([2, 1, 0]), S.TemporalDelta())["events"].values
    assert fwd.tolist() == [8, 0, 9] and rev.tolist() == [8, 9, 0]


# ---- shipped recordings ------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _shipped_frames(name):
    """The first two frames of a shipped recording (opened once per session)."""
    rec = open_recording(DATA / name)
    return rec.select_frames([0, 1] if rec.n_frames > 1 else [0])


def _shipped(name):
    path = DATA / name
    assert path.exists(), f"{path} is missing: the shipped recordings are part of the repository (see data/README.md)"
    return _shipped_frames(name)


def _shipped_plans(q):
    """Schemes covering every kind, axis, direction, loop and threshold; fc layers fall back."""
    fc = {layer.name: S.Conventional(tau=1) for layer in q.layers if layer.op == "fc"}
    line = [S.LineDelta(axis="y"), S.LineDelta(axis="x", direction="reverse", threshold=2, loop="open", tau=1),
            S.LineDelta(axis="y", direction="reverse", threshold=3), S.LineDelta(axis="x", threshold=1, tau=2)]
    return ([S.Dense(), S.Conventional(tau=2), S.TemporalDelta(threshold=2),
             S.TemporalDelta(threshold=1, loop="open", tau=1)]
            + [S.Plan(fc, default=s) for s in line])


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_kernels_equal_reference_every_layer(name):
    """Every layer, every scheme kind / axis / direction / loop, 8 bits; temporal delta on
    frames 0 and 1, the spatial schemes (frame-independent) on frame 0."""
    q2 = _shipped(name).quantize(bits=8)
    q1 = q2.select_frames([0])
    for scheme in _shipped_plans(q2):
        q = q2 if isinstance(scheme, S.TemporalDelta) else q1
        ds = count_events(q, scheme)
        ref.assert_matches_reference(ds, q, scheme)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_invariants(name):
    q2 = _shipped(name).quantize(bits=6)
    q = q2.select_frames([0])
    conv_layers = [layer for layer in q.layers if layer.op != "fc"]
    fc = {layer.name: S.Conventional() for layer in q.layers if layer.op == "fc"}
    for axis, direction in (("y", "forward"), ("x", "reverse")):
        ds = count_events(q, S.Plan(fc, default=S.LineDelta(axis=axis, direction=direction)))
        for layer in conv_layers:
            got = ds.sel(layer=layer.name)
            X = q.signed(layer.input)
            assert not got["max_error"].values.any(), layer.name
            assert (got["events"].values <= _events_bound(X, layer, axis, direction)).all(), layer.name
        for theta in (1, 3):
            ds = count_events(q, S.Plan(fc, default=S.LineDelta(axis=axis, direction=direction,
                                                                 threshold=theta)))
            assert (ds["max_error"].sel(layer=[l.name for l in conv_layers]).values <= theta).all()
    # temporal delta: lossless at 0, closed loop bounded by theta
    assert not count_events(q2, S.TemporalDelta())["max_error"].values.any()
    assert (count_events(q2, S.TemporalDelta(threshold=2))["max_error"].values <= 2).all()
    # conventional counts do not depend on frame order
    if q2.n_frames > 1:
        a = count_events(q2, S.Conventional(tau=1))
        b = count_events(q2.select_frames([1, 0]), S.Conventional(tau=1))
        np.testing.assert_array_equal(a["events"].values[:, ::-1], b["events"].values)
        np.testing.assert_array_equal(a["sops"].values[:, ::-1], b["sops"].values)
    # axis x equals axis y on the swapped geometry, on a sample of layers
    step = max(1, len(conv_layers) // 6)
    for layer in conv_layers[::step]:
        X = q.signed(layer.input)
        qs = make_qrec([layer.swapped()], {layer.input: np.ascontiguousarray(X.transpose(0, 1, 3, 2))}, 8)
        qx = make_qrec([layer], {layer.input: X}, 8)
        a = count_events(qx, S.LineDelta(axis="x", threshold=1))
        b = count_events(qs, S.LineDelta(axis="y", threshold=1))
        for v in ("events", "sops", "max_error", "rel_error"):
            np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=f"{layer.name} {v}")


# ---- the telescoping the line-delta semantics rests on -------------------------------

def _conv_row(A, W, lay, r, lines_of):
    """Output row r of a grouped convolution reading lines through ``lines_of(h)``; also
    the number of MACs that touched a non-zero input."""
    C = A.shape[0]
    co = lay.out_channels
    cin_g, cout_g = C // lay.groups, co // lay.groups
    (kh, kw), (sh, sw), (dh, dw) = lay.kernel, lay.stride, lay.dilation
    top, left = lay.padding[0], lay.padding[2]
    out = np.zeros((co, lay.output_shape[2]), dtype=np.int64)
    macs = 0
    for o in range(co):
        g = o // cout_g
        for q in range(lay.output_shape[2]):
            for i in range(kh):
                line = lines_of(r * sh - top + i * dh)
                for j in range(kw):
                    x = q * sw - left + j * dw
                    if not 0 <= x < line.shape[1]:
                        continue
                    for cc in range(cin_g):
                        v = line[g * cin_g + cc, x]
                        out[o, q] += W[o, cc, i, j] * v
                        macs += int(v != 0)
    return out, macs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case(max_frames=1, max_hw=5), scan_st, st.integers(0, 2**32 - 1))
def test_telescoped_line_deltas_reproduce_the_convolution(c, scan, seed):
    """Z_r = Z_{r-1} + sum_i W_i (*) D_{r*s - p + i*d} over the extended rows [r_lo, H_out),
    starting from 0, equals the direct convolution on every real row, and the MACs that
    touch a non-zero delta are exactly the reference's SOPs (theta = 0)."""
    layer, X, _ = c
    Xs, lay = _scan(X, layer, *scan)
    A = Xs[0]
    C, H, Wd = A.shape
    s = lay.stride[0]
    W = np.random.default_rng(seed).integers(-3, 4, (lay.out_channels, C // lay.groups) + lay.kernel)
    zero = np.zeros((C, Wd), dtype=np.int64)
    x_line = lambda h: A[:, h].astype(np.int64) if 0 <= h < H else zero  # noqa: E731
    needed = set(ref.needed_lines(lay))
    def d_line(h):
        if h < 0:
            return zero
        assert h in needed, f"row reads line {h} which is not sent"
        return x_line(h) - x_line(h - s)
    Z = np.zeros((lay.out_channels, lay.output_shape[2]), dtype=np.int64)
    sops = 0
    for r in lay.rows("y", extended=True):
        dz, macs = _conv_row(A, W, lay, r, d_line)
        Z = Z + dz
        sops += macs
        if r >= 0:
            direct, _ = _conv_row(A, W, lay, r, x_line)
            np.testing.assert_array_equal(Z, direct, err_msg=f"row {r}")
    r_ = ref.line_delta(X[:1], layer, *scan)
    assert sops == r_.sops[0]
