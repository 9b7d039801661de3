"""``event_curve`` against the reference, threshold by threshold (and against
``count_events``), for line delta (both loops, axes, directions), temporal delta
and the activation threshold of conventional processing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import reference as ref
from else_dse import Layer
from else_dse import schemes as S
from else_dse.events import count_events, curve_values, event_curve
from reference import codes_st, layers_st, make_qrec

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

threshold_lists = st.lists(st.integers(0, 60), min_size=1, max_size=8, unique=True)


def base_scheme_st(op):
    loops = st.sampled_from(["closed", "open"])
    taus = st.sampled_from([0, 0, 1, 3])
    options = [st.builds(S.TemporalDelta, loop=loops, tau=taus), st.just(S.Conventional())]
    if op != "fc":
        options.append(st.builds(S.LineDelta, axis=st.sampled_from(["y", "x"]),
                                 direction=st.sampled_from(["forward", "reverse"]), loop=loops, tau=taus))
    return st.one_of(*options)


def with_threshold(scheme, t):
    if scheme.kind == "conventional":
        return dataclasses.replace(scheme, tau=t)
    return dataclasses.replace(scheme, threshold=t)


@SETTINGS
@given(st.data())
def test_event_curve_equals_reference_per_threshold(data):
    layer = data.draw(layers_st())
    other = data.draw(layers_st(name="other", tensor="t", shape=layer.input_shape))
    bits = data.draw(st.sampled_from([4, 8, 16]))
    n = data.draw(st.integers(1, 3))
    X = data.draw(codes_st((n,) + layer.input_shape, bits=min(bits, 9)))
    q = make_qrec([other, layer], {"t": X}, bits)
    scheme = data.draw(base_scheme_st(layer.op))
    ths = data.draw(threshold_lists)
    if data.draw(st.booleans()):
        ths = sorted(ths)
    curve = event_curve(q, "l", scheme, ths)
    assert curve.sizes["threshold"] == len(ths) and curve.sizes["frame"] == n
    values = curve_values(q, "l", scheme, ths)            # the search's arrays: the same values
    assert list(values) == ["events", "sops", "max_error", "rel_error"]
    for v, a in values.items():
        np.testing.assert_array_equal(a, curve[v].values, err_msg=v)
    np.testing.assert_array_equal(curve["threshold"].values, ths)
    for v in ("events", "sops"):
        assert curve[v].dtype == np.int64
    for i, t in enumerate(ths):
        s = with_threshold(scheme, t)
        r = ref.reference_for(X, layer, s)
        where = f"{s!r} on {layer.to_dict()}"
        got = curve.isel(threshold=i)
        np.testing.assert_array_equal(got["events"].values, r.events, err_msg="events " + where)
        np.testing.assert_array_equal(got["sops"].values, r.sops, err_msg="sops " + where)
        np.testing.assert_array_equal(got["max_error"].values, r.max_error, err_msg="max_error " + where)
        np.testing.assert_allclose(got["rel_error"].values, r.rel_error, rtol=1e-9, atol=1e-12,
                                   err_msg="rel_error " + where)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers_st(ops=("conv", "depthwise")), st.data())
def test_event_curve_equals_count_events(layer, data):
    X = data.draw(codes_st((2,) + layer.input_shape, bits=8))
    q = make_qrec([layer], {"t": X})
    scheme = data.draw(base_scheme_st(layer.op))
    ths = [0, 1, 2, 4, 8, 16]
    curve = event_curve(q, "l", scheme, ths)
    for i, t in enumerate(ths):
        ds = count_events(q, with_threshold(scheme, t)).isel(layer=0)
        for v in ("events", "sops", "max_error", "rel_error"):
            np.testing.assert_allclose(curve[v].values[i], ds[v].values, rtol=1e-12, err_msg=v)


def test_event_curve_monotone_open_loop_and_errors():
    """Open loop: events and SOPs never grow with the threshold (each |D| is fixed)."""
    layer = Layer("l", "t", "conv", 3, 4, kernel=3, stride=2, padding=(1, 1, 1, 1), input_shape=(3, 12, 10))
    rng = np.random.default_rng(5)
    X = np.cumsum(rng.integers(-3, 4, (3, 3, 12, 10)), axis=2).clip(-128, 127)
    q = make_qrec([layer], {"t": X})
    ths = list(range(0, 12))
    for scheme in (S.LineDelta(loop="open"), S.LineDelta(axis="x", direction="reverse", loop="open"),
                   S.TemporalDelta(loop="open"), S.Conventional()):
        c = event_curve(q, "l", scheme, ths)
        assert (np.diff(c["events"].values, axis=0) <= 0).all(), scheme
        assert (np.diff(c["sops"].values, axis=0) <= 0).all(), scheme
    closed = event_curve(q, "l", S.LineDelta(), ths)
    assert (closed["max_error"].values <= np.array(ths)[:, None]).all()
    assert (closed["max_error"].values[0] == 0).all()


def test_event_curve_errors():
    layers = [Layer("c", "t", "conv", 1, 1, input_shape=(1, 2, 2)),
              Layer("head", "t", "fc", 4, 2, input_shape=(1, 2, 2))]
    q = make_qrec(layers, {"t": np.ones((1, 1, 2, 2), int)})
    with pytest.raises(ValueError, match="head"):
        event_curve(q, "head", S.LineDelta(), [0, 1])
    with pytest.raises((KeyError, ValueError), match="nope"):
        event_curve(q, "nope", S.TemporalDelta(), [0])
    with pytest.raises(ValueError):
        event_curve(q, "c", S.TemporalDelta(), [-1])


@pytest.mark.parametrize("name", ["blazeface_carphone.nc", "poselandmark_stills.nc"])
def test_event_curve_on_shipped_layers(name):
    """event_curve == reference per threshold on real tensors (first, middle, last conv layer)."""
    from pathlib import Path

    from else_dse import open_recording

    path = Path(__file__).resolve().parent.parent / "data" / name
    assert path.exists(), f"{path} is missing: the shipped recordings are part of the repository (see data/README.md)"
    rec = open_recording(path)
    convs = [layer for layer in rec.layers if layer.op != "fc"]
    picked = [convs[0], convs[len(convs) // 2], convs[-1]]
    q = rec.select_layers([layer.name for layer in picked]).select_frames([0, 1]).quantize(bits=6)
    ths = [0, 1, 2, 3, 5, 8]
    for layer in picked:
        X = q.signed(layer.input)
        for scheme in (S.LineDelta(), S.LineDelta(axis="x", direction="reverse", loop="open", tau=1),
                       S.TemporalDelta(loop="open"), S.TemporalDelta(tau=1), S.Conventional()):
            curve = event_curve(q, layer.name, scheme, ths)
            for i, t in enumerate(ths):
                r = ref.reference_for(X, layer, with_threshold(scheme, t))
                got = curve.isel(threshold=i)
                where = f"{layer.name} {with_threshold(scheme, t)!r}"
                np.testing.assert_array_equal(got["events"].values, r.events, err_msg=where)
                np.testing.assert_array_equal(got["sops"].values, r.sops, err_msg=where)
                np.testing.assert_array_equal(got["max_error"].values, r.max_error, err_msg=where)
                np.testing.assert_allclose(got["rel_error"].values, r.rel_error, rtol=1e-9, err_msg=where)


def _temporal_curve(X, th, closed, tau, error, state=None):
    from else_dse import _kernels
    F, T = X.shape[0], len(th)
    out = [np.zeros((T, F), np.int64) for _ in range(4)]
    xsq, lut = np.zeros(F, np.int64), np.zeros(1, np.int32)
    hc, hs = np.zeros((F, T + 1), np.int64), np.zeros((F, T + 1), np.int64)
    fan = np.arange(1, X.shape[2] + 1, dtype=np.int64) % 5
    _kernels.temporal_delta_curve(X, fan, th, closed, tau, *out, xsq, lut, hc, hs, with_error=error,
                                  zp=3, state=state)
    return (*out, xsq)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32])
@pytest.mark.parametrize("closed,tau,error", [(True, 0, True), (True, 1, False), (False, 1, True),
                                              (False, 0, True)])
def test_temporal_curve_kernel_state_splits_frames_exactly(dtype, closed, tau, error):
    """The curve kernel run over frames in pieces, its state handed on, equals one run."""
    rng = np.random.default_rng(7)
    X = rng.integers(0, 40, size=(7, 3, 1500)).astype(dtype)     # > one block of positions
    th = np.array([0, 2, 5], np.int32)
    whole = _temporal_curve(X, th, closed, tau, error)
    state = np.zeros((3, 2, 3 * 1500), np.int32)
    parts = [_temporal_curve(np.ascontiguousarray(X[a:b]), th, closed, tau, error, state)
             for a, b in [(0, 2), (2, 3), (3, 7)]]
    for i, w in enumerate(whole):
        np.testing.assert_array_equal(np.concatenate([p[i] for p in parts], axis=-1), w)
    with pytest.raises(ValueError, match=r"state must have shape \(threshold, 2, C\*H\*W\)"):
        _temporal_curve(X, th, closed, tau, error, np.zeros((2, 2, 3 * 1500), np.int32))
