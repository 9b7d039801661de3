"""``count_events`` (Cython kernels) against the numpy reference of ``tests/reference.py``.

Property tests over odd shapes (H or W = 1, C = 1), stride larger than the
kernel, dilation, asymmetric padding larger than the kernel, depthwise, grouped
and fc layers, every scheme, both loops, axes and directions, thresholds theta
and tau, 4-bit, 8-bit (full int8 range) and 16-bit codes, several frames,
several layers per tensor, plans and per-line counts.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import reference as ref
from else_dse import Layer, Recording
from else_dse import schemes as S
from else_dse.events import count_events, event_curve, layers_of
from reference import codes_st, layers_st, make_qrec

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

thresholds = st.sampled_from([0, 0, 1, 2, 3, 5, 9, 40, 200])
taus = st.sampled_from([0, 0, 1, 2, 4, 30])


def scheme_st(op: str):
    loops = st.sampled_from(["closed", "open"])
    options = [
        st.builds(S.Dense, tau=taus),
        st.builds(S.Conventional, tau=taus),
        st.builds(S.TemporalDelta, threshold=thresholds, loop=loops, tau=taus),
    ]
    if op != "fc":
        options.append(st.builds(S.LineDelta, axis=st.sampled_from(["y", "x"]),
                                 direction=st.sampled_from(["forward", "reverse"]),
                                 threshold=thresholds, loop=loops, tau=taus))
    return st.one_of(*options)


@st.composite
def single(draw, ops=("conv", "depthwise", "fc"), max_hw=7):
    layer = draw(layers_st(ops=ops, max_hw=max_hw))
    bits = draw(st.sampled_from([4, 8, 8, 16]))
    n = draw(st.integers(1, 4))
    X = draw(codes_st((n,) + layer.input_shape, bits=min(bits, 10)))
    scheme = draw(scheme_st(layer.op))
    return layer, X, bits, scheme


@SETTINGS
@given(single(), st.booleans())
def test_single_layer_every_scheme(case, lines):
    layer, X, bits, scheme = case
    q = make_qrec([layer], {"t": X}, bits)
    ds = count_events(q, scheme, lines=lines)
    ref.assert_matches_reference(ds, q, scheme, lines=lines)


@SETTINGS
@given(single(ops=("conv", "depthwise")), st.sampled_from(["y", "x"]),
       st.sampled_from(["forward", "reverse"]), st.sampled_from(["closed", "open"]), thresholds, taus)
def test_line_delta_all_settings(case, axis, direction, loop, theta, tau):
    layer, X, bits, _ = case
    q = make_qrec([layer], {"t": X}, bits)
    scheme = S.LineDelta(axis=axis, direction=direction, threshold=theta, loop=loop, tau=tau)
    ref.assert_matches_reference(count_events(q, scheme, lines=True), q, scheme, lines=True)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_plan_over_shared_and_separate_tensors(data):
    """Several layers (one tensor read by two layers, an fc on another), a plan with
    a scheme per layer and a default, frames > 1."""
    a = data.draw(layers_st(ops=("conv", "depthwise"), name="a1", tensor="ta"))
    b = data.draw(layers_st(ops=("conv", "depthwise"), name="a2", tensor="ta", shape=a.input_shape))
    c = data.draw(layers_st(ops=("fc", "conv"), name="f", tensor="tb"))
    layers = [a, c, b]
    n = data.draw(st.integers(1, 3))
    bits = data.draw(st.sampled_from([4, 8]))
    arrays = {"ta": data.draw(codes_st((n,) + a.input_shape, bits)),
              "tb": data.draw(codes_st((n,) + c.input_shape, bits))}
    q = make_qrec(layers, arrays, bits)
    chosen = {}
    for layer in layers:
        if data.draw(st.booleans()):
            chosen[layer.name] = data.draw(scheme_st(layer.op))
    default = data.draw(scheme_st("fc"))  # valid for every layer
    plan = S.Plan(chosen, default=default)
    ds = count_events(q, plan, lines=True)
    ref.assert_matches_reference(ds, q, plan, lines=True)
    assert ds.attrs["plan"] == repr(plan)
    assert layers_of(ds) == tuple(layers)
    assert [layer.name for layer in (Layer.from_dict(d) for d in json.loads(ds.attrs["layers"]))] == \
        ["a1", "f", "a2"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers_st(), st.sampled_from([2, 3, 4, 6, 8, 12, 16]), st.integers(1, 3), st.integers(0, 2**32 - 1),
       st.data())
def test_through_real_quantization(layer, bits, n, seed, data):
    """Floats -> Recording.quantize -> kernels == reference on q.signed (the public path)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n,) + layer.input_shape) * 3
    if data.draw(st.booleans()):
        x = np.maximum(x, 0)  # post-ReLU: non-negative, sparse
    q = Recording.from_arrays([layer], {"t": x.astype(np.float32)}).quantize(bits=bits)
    scheme = data.draw(scheme_st(layer.op))
    ref.assert_matches_reference(count_events(q, scheme), q, scheme)


@pytest.mark.parametrize("bits", [8, 16])
def test_extreme_codes(bits):
    """Full-range codes alternating sign: the largest deltas (2 * 2**(bits-1) - 1)."""
    layer = Layer("c", "t", "conv", 2, 6, kernel=3, stride=(1, 2), padding=(0, 2, 1, 0), dilation=(2, 1),
                  groups=2, input_shape=(2, 7, 5))
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    X = np.where((np.indices((3, 2, 7, 5)).sum(axis=0) % 2) == 0, lo, hi).astype(np.int64)
    X[1] = -X[1] - 1
    q = make_qrec([layer], {"t": X}, bits)
    for scheme in (S.Conventional(), S.LineDelta(), S.LineDelta(axis="x", direction="reverse", threshold=100),
                   S.LineDelta(threshold=2 ** bits - 2, loop="open"), S.TemporalDelta(),
                   S.TemporalDelta(threshold=2 ** (bits - 1), loop="open"), S.Conventional(tau=hi - 1)):
        ref.assert_matches_reference(count_events(q, scheme, lines=True), q, scheme, lines=True)


def _drift(n: int) -> np.ndarray:
    """A sequence whose open-loop delta (theta = 100) drifts from the input by 100 every two
    steps: up by 100 (not sent), down by 101 (sent)."""
    x = np.zeros(n, np.int64)
    for i in range(1, n):
        x[i] = x[i - 1] + 100 if i % 2 else x[i - 1] - 101
    return x


def test_open_loop_drift_beyond_the_fused_error_sums():
    """|X - Y| of an open loop grows past 1448 over frames (temporal) and lines (line delta): the
    AVX2 kernels then sum (X - Y)^2 in int64 (a block of 1024 such errors, or a line's int32
    lanes left unflushed, would wrap), so the error still equals the reference's exactly."""
    F, C, H, W = 36, 16, 8, 8
    t = np.broadcast_to(_drift(F)[:, None, None, None], (F, C, H, W)).copy()
    t[:, :, ::2, 1::3] += 1               # not every position alike
    q = make_qrec([Layer("t", "t", "conv", C, 4, kernel=3, padding=1, input_shape=(C, H, W))], {"t": t})
    scheme = S.TemporalDelta(threshold=100, loop="open")
    ds = count_events(q, scheme)
    ref.assert_matches_reference(ds, q, scheme)
    assert float(ds["max_error"].max()) > 1448
    L, W = 48, 4200       # lines of 4200 errors near 2400: 525 vectors of pairs per int32 lane
    y = np.broadcast_to(_drift(L)[None, None, :, None], (2, 2, L, W)).copy()
    y[1] = -y[1]
    q = make_qrec([Layer("y", "y", "conv", 2, 4, kernel=3, padding=1, input_shape=(2, L, W))], {"y": y})
    for scheme in (S.LineDelta(threshold=100, loop="open"), S.LineDelta(threshold=100, loop="open", tau=3)):
        ds = count_events(q, scheme)
        ref.assert_matches_reference(ds, q, scheme)
        assert float(ds["max_error"].max()) > 1448
        curve = event_curve(q, "y", scheme, [0, 100, 101])     # the curve kernel's lines: the same
        for i, t in enumerate([0, 100, 101]):
            one = count_events(q, dataclasses.replace(scheme, threshold=t))
            for v in ("events", "sops", "max_error", "rel_error"):
                np.testing.assert_array_equal(curve[v].values[i], one[v].values[0], err_msg=f"{v} {t}")


def test_degenerate_geometries():
    """H = W = 1, C = 1, a layer reading only padding, stride > kernel, 1x1 fc."""
    layers = [
        Layer("one", "t1", "conv", 1, 1, input_shape=(1, 1, 1)),
        Layer("pad_only", "t1", "conv", 1, 2, kernel=1, stride=5, padding=(6, 0, 0, 0), input_shape=(1, 1, 1)),
        Layer("fc11", "t1", "fc", 1, 3, input_shape=(1, 1, 1)),
        Layer("skip", "t2", "conv", 1, 1, kernel=1, stride=3, input_shape=(1, 7, 7)),
        Layer("tall", "t3", "depthwise", 3, 3, kernel=(3, 1), padding=(4, 4, 0, 0), groups=3,
              input_shape=(3, 9, 1)),
    ]
    rng = np.random.default_rng(7)
    arrays = {"t1": rng.integers(-5, 6, (3, 1, 1, 1)), "t2": rng.integers(-5, 6, (3, 1, 7, 7)),
              "t3": rng.integers(-2, 3, (3, 3, 9, 1))}
    q = make_qrec(layers, arrays)
    fc = {"fc11": S.TemporalDelta(threshold=1)}
    for default in (S.LineDelta(), S.LineDelta(axis="x", direction="reverse", threshold=1, loop="open"),
                    S.LineDelta(axis="y", direction="reverse", threshold=2, tau=1)):
        plan = S.Plan(fc, default=default)
        ref.assert_matches_reference(count_events(q, plan, lines=True), q, plan, lines=True)
    for scheme in (S.Dense(), S.Conventional(tau=1), S.TemporalDelta(threshold=2, loop="open")):
        ref.assert_matches_reference(count_events(q, scheme, lines=True), q, scheme, lines=True)


def test_line_delta_on_fc_is_an_error_naming_the_layer():
    layers = [Layer("c", "t", "conv", 1, 1, input_shape=(1, 2, 2)),
              Layer("head", "u", "fc", 4, 2, input_shape=(1, 2, 2))]
    q = make_qrec(layers, {"t": np.ones((1, 1, 2, 2), int), "u": np.ones((1, 1, 2, 2), int)})
    with pytest.raises(ValueError, match="head"):
        count_events(q, S.LineDelta())
    with pytest.raises(ValueError, match="head"):
        count_events(q, S.Plan({"c": S.Conventional()}, default=S.LineDelta(axis="x")))


@pytest.mark.parametrize("make", [
    lambda: S.LineDelta(threshold=-1), lambda: S.LineDelta(axis="z"), lambda: S.LineDelta(direction="up"),
    lambda: S.LineDelta(loop="half"), lambda: S.LineDelta(tau=-2), lambda: S.TemporalDelta(threshold=-1),
    lambda: S.TemporalDelta(loop="x"), lambda: S.Conventional(tau=-1),
])
def test_scheme_validation(make):
    with pytest.raises(ValueError):
        make()


def test_schemes_are_hashable_values():
    assert S.LineDelta(axis="x", threshold=2) == S.LineDelta(axis="x", threshold=2)
    assert len({S.LineDelta(), S.LineDelta(), S.TemporalDelta(), S.Conventional(), S.Dense()}) == 4
    plan = S.Plan({"a": S.LineDelta()}, default=S.Conventional(tau=1))
    assert hash(plan) == hash(S.Plan({"a": S.LineDelta()}, default=S.Conventional(tau=1)))
    assert plan.scheme_for("a") == S.LineDelta() and plan.scheme_for("b") == S.Conventional(tau=1)
    assert {s.kind for s in (S.Dense(), S.Conventional(), S.LineDelta(), S.TemporalDelta())} == \
        {"dense", "conventional", "line_delta", "temporal_delta"}


def test_kernels_handle_frames_independently_for_spatial_schemes():
    """Line delta and conventional of frame f do not depend on the other frames."""
    layer = Layer("c", "t", "conv", 2, 2, kernel=3, stride=2, padding=(1, 2, 0, 1), input_shape=(2, 6, 5))
    X = np.random.default_rng(11).integers(-9, 10, (4, 2, 6, 5))
    q = make_qrec([layer], {"t": X})
    for scheme in (S.LineDelta(threshold=2), S.LineDelta(axis="x", loop="open", threshold=3),
                   S.Conventional(tau=3)):
        whole = count_events(q, scheme)
        for f in range(4):
            one = count_events(make_qrec([layer], {"t": X[f:f + 1]}), scheme)
            for v in ("events", "sops", "max_error", "rel_error"):
                assert whole[v].values[0, f] == one[v].values[0, 0]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_long_columns(data):
    """Tall or wide tensors (up to 48 lines): open-loop error grows down long columns."""
    C = data.draw(st.integers(1, 2))
    H, W = data.draw(st.sampled_from([(48, 3), (3, 48), (31, 17), (1, 40), (40, 1)]))
    layer = data.draw(layers_st(ops=("conv", "depthwise"), shape=(C, H, W)))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    X = np.cumsum(rng.integers(-2, 3, (2, C, H, W)), axis=data.draw(st.sampled_from([2, 3]))).clip(-128, 127)
    q = make_qrec([layer], {"t": X})
    scheme = S.LineDelta(axis=data.draw(st.sampled_from(["y", "x"])),
                         direction=data.draw(st.sampled_from(["forward", "reverse"])),
                         threshold=data.draw(st.integers(0, 3)), loop=data.draw(st.sampled_from(["closed", "open"])),
                         tau=data.draw(st.integers(0, 2)))
    ref.assert_matches_reference(count_events(q, scheme, lines=True), q, scheme, lines=True)


def test_api_errors():
    layer = Layer("c", "t", "conv", 1, 1, input_shape=(1, 2, 2))
    rec = Recording.from_arrays([layer], {"t": np.ones((1, 1, 2, 2))})
    with pytest.raises(TypeError, match="quantize"):
        count_events(rec, S.Conventional())
    q = rec.quantize()
    with pytest.raises(ValueError, match="zz"):
        count_events(q, S.Plan({"zz": S.Conventional()}, default=S.Dense()))
    with pytest.raises((TypeError, ValueError)):
        count_events(q, "conventional")


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
@pytest.mark.parametrize("bits", [4, 8, 16])
def test_counts_of_a_reopened_quantized_recording(tmp_path, suffix, bits):
    """Codes read back from disk (stored dtype, attrs scale / zero_point) count the same."""
    from else_dse import open_recording

    layers = [Layer("c", "t", "conv", 2, 4, kernel=3, stride=2, padding=(1, 0, 2, 1), groups=2,
                    input_shape=(2, 9, 7)),
              Layer("f", "u", "fc", 12, 3, input_shape=(3, 2, 2))]
    rng = np.random.default_rng(bits)
    arrays = {"t": rng.standard_normal((3, 2, 9, 7)).astype(np.float32),
              "u": np.maximum(rng.standard_normal((3, 3, 2, 2)), 0).astype(np.float32)}
    q = Recording.from_arrays(layers, arrays).quantize(bits=bits)
    back = open_recording(q.save(tmp_path / f"q{suffix}"))
    plan = S.Plan({"f": S.TemporalDelta(threshold=1)}, default=S.LineDelta(axis="x", threshold=1, loop="open"))
    for scheme in (plan, S.Conventional(tau=1), S.TemporalDelta(threshold=2)):
        a, b = count_events(q, scheme, lines=True), count_events(back, scheme, lines=True)
        for v in ("events", "sops", "max_error", "rel_error", "line_events", "line_sops"):
            np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
        ref.assert_matches_reference(b, back, scheme, lines=True)
