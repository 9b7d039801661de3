"""``events.reconstruct`` (the kernels' reconstruction mode) against the numpy reference.

Every scheme, axis, direction, loop, theta and tau; stride, dilation, asymmetric
padding, groups, odd shapes; 4-, 8- and 16-bit codes in every dtype the kernels
take; temporal state carried across frames, one by one or in chunks; and the
kernels' counts in this mode equal ``count_events`` and the reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import reference as ref
from else_dse import Layer
from else_dse import schemes as S
from else_dse.events import Reconstruction, TemporalState, count_events, reconstruct
from reference import codes_st, layers_st, make_qrec

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

thresholds = st.sampled_from([0, 0, 1, 2, 3, 5, 9, 40, 200])
taus = st.sampled_from([0, 0, 1, 2, 4, 30])
loops = st.sampled_from(["closed", "open"])


def scheme_st(op: str):
    options = [st.builds(S.Dense, tau=taus), st.builds(S.Conventional, tau=taus),
               st.builds(S.TemporalDelta, threshold=thresholds, loop=loops, tau=taus)]
    if op != "fc":
        options.append(st.builds(S.LineDelta, axis=st.sampled_from(["y", "x"]),
                                 direction=st.sampled_from(["forward", "reverse"]),
                                 threshold=thresholds, loop=loops, tau=taus))
    return st.one_of(*options)


def stored(X: np.ndarray, bits: int, dtype: str) -> tuple[np.ndarray, int]:
    """Codes of signed ``X`` as a recording stores them (or signed) and their zero point."""
    if dtype == "unsigned":
        zp = 2 ** (bits - 1)
        return (X + zp).astype(np.uint8 if bits <= 8 else np.uint16), zp
    if dtype == "int8" and bits <= 8:
        return X.astype(np.int8), 0
    if dtype == "int64":  # not a kernel dtype: converted on the way in
        return X.astype(np.int64) + 3, 3
    return X.astype(np.int16 if bits <= 15 else np.int32), 0


@st.composite
def cases(draw, ops=("conv", "depthwise", "fc"), max_hw=7):
    layer = draw(layers_st(ops=ops, max_hw=max_hw))
    bits = draw(st.sampled_from([4, 8, 8, 16]))
    n = draw(st.integers(1, 4))
    X = draw(codes_st((n,) + layer.input_shape, bits=bits))
    dtype = draw(st.sampled_from(["unsigned", "unsigned", "int8", "signed", "int64"]))
    return layer, X, bits, dtype, draw(scheme_st(layer.op))


def assert_reconstruction(got: Reconstruction, want: ref.Counts, where: str) -> None:
    assert got.values.dtype == np.int32 and got.values.flags.c_contiguous, where
    np.testing.assert_array_equal(got.values, want.recon, err_msg="values: " + where)
    np.testing.assert_array_equal(got.events, want.events, err_msg="events: " + where)
    np.testing.assert_array_equal(got.sops, want.sops, err_msg="sops: " + where)


@SETTINGS
@given(cases())
def test_reconstruction_matches_reference(case):
    layer, X, bits, dtype, scheme = case
    codes, zp = stored(X, bits, dtype)
    got = reconstruct(codes, layer, scheme, zero_point=zp)
    want = ref.reference_for(X, layer, scheme)
    where = f"{layer.to_dict()}, {scheme!r}, {bits} bits, {codes.dtype}"
    assert_reconstruction(got, want, where)
    if isinstance(scheme, S.TemporalDelta):
        np.testing.assert_array_equal(got.state.sender, want.state[0].reshape(layer.input_shape))
        np.testing.assert_array_equal(got.state.receiver, want.state[1].reshape(layer.input_shape))
    else:
        assert got.state is None


@SETTINGS
@given(cases(ops=("conv", "depthwise")), st.sampled_from(["y", "x"]),
       st.sampled_from(["forward", "reverse"]), loops, thresholds, taus)
def test_line_delta_reconstruction_every_setting(case, axis, direction, loop, theta, tau):
    layer, X, bits, dtype, _ = case
    scheme = S.LineDelta(axis=axis, direction=direction, threshold=theta, loop=loop, tau=tau)
    codes, zp = stored(X, bits, dtype)
    got = reconstruct(codes, layer, scheme, zero_point=zp)
    assert_reconstruction(got, ref.reference_for(X, layer, scheme), f"{layer.to_dict()}, {scheme!r}")
    if loop == "closed":  # the semantics' invariant on every line (unsent lines keep X)
        assert np.abs(X - got.values).max(initial=0) <= theta + tau
    if theta == tau == 0:
        np.testing.assert_array_equal(got.values, X)


@SETTINGS
@given(cases(), st.data())
def test_counts_in_reconstruction_mode_equal_count_events(case, data):
    """The mode that writes R does not change what the kernels count."""
    layer, X, bits, _, scheme = case
    q = make_qrec([layer], {"t": X}, bits)
    ds = count_events(q, scheme)
    got = reconstruct(q.tensor("t"), layer, scheme, zero_point=q.zero_point("t"))
    np.testing.assert_array_equal(got.events, ds["events"].values[0])
    np.testing.assert_array_equal(got.sops, ds["sops"].values[0])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers_st(max_hw=9), st.sampled_from([4, 8, 16]), st.integers(2, 7), thresholds, loops, taus,
       st.data())
def test_temporal_state_across_chunks(layer, bits, n, theta, loop, tau, data):
    """Frames run in chunks with the state carried give the results of one pass."""
    X = data.draw(codes_st((n,) + layer.input_shape, bits=bits))
    codes, zp = stored(X, bits, data.draw(st.sampled_from(["unsigned", "signed"])))
    scheme = S.TemporalDelta(threshold=theta, loop=loop, tau=tau)
    whole = reconstruct(codes, layer, scheme, zero_point=zp)
    cuts = sorted(data.draw(st.sets(st.integers(1, n - 1), max_size=n - 1)))
    state, parts = None, []
    for a, b in zip([0, *cuts], [*cuts, n]):
        part = reconstruct(codes[a:b], layer, scheme, zero_point=zp, state=state)
        state = part.state
        parts.append(part)
    for field in ("values", "events", "sops"):
        np.testing.assert_array_equal(np.concatenate([getattr(p, field) for p in parts]),
                                      getattr(whole, field), err_msg=field)
    np.testing.assert_array_equal(state.sender, whole.state.sender)
    np.testing.assert_array_equal(state.receiver, whole.state.receiver)
    if loop == "closed":
        np.testing.assert_array_equal(state.sender, state.receiver)


@pytest.mark.parametrize("loop", ["closed", "open"])
@pytest.mark.parametrize("big", [0, 300, 20000, 2**30])
def test_temporal_state_from_outside(loop, big):
    """Any given state (also one no 16-bit lane can hold) continues as the reference does."""
    layer = Layer("c", "t", "conv", 3, 2, kernel=3, padding=1, input_shape=(3, 5, 4))
    rng = np.random.default_rng(big)
    X = rng.integers(-128, 128, (3, 3, 5, 4))
    sender = rng.integers(-big - 1, big + 1, layer.input_shape)
    receiver = rng.integers(-big - 1, big + 1, layer.input_shape) if loop == "open" else sender
    scheme = S.TemporalDelta(threshold=2, loop=loop, tau=1)
    got = reconstruct((X + 128).astype(np.uint8), layer, scheme, zero_point=128,
                      state=TemporalState(sender, receiver))
    want = ref.temporal_delta(X, layer, 2, loop, 1, state=(sender, receiver))
    assert_reconstruction(got, want, f"state up to {big}")
    np.testing.assert_array_equal(got.state.sender, want.state[0])
    np.testing.assert_array_equal(got.state.receiver, want.state[1])


def test_reconstruction_values_are_fresh_and_state_is_read_only():
    layer = Layer("c", "t", "conv", 1, 1, input_shape=(1, 2, 2))
    codes = np.full((2, 1, 2, 2), 7, np.uint8)
    r = reconstruct(codes, layer, S.TemporalDelta(threshold=1), zero_point=3)
    assert not r.state.sender.flags.writeable
    np.testing.assert_array_equal(r.values, 4)
    assert r.events.tolist() == [4, 0]
    start = TemporalState.start((1, 2, 2))
    again = reconstruct(codes, layer, S.TemporalDelta(threshold=1), zero_point=3, state=start)
    assert not start.sender.any()  # the given state is not overwritten
    np.testing.assert_array_equal(again.values, r.values)


@pytest.mark.parametrize("call, match", [
    (lambda L: reconstruct(np.zeros((1, 1, 3, 2), np.uint8), L, S.Conventional()), "codes must be"),
    (lambda L: reconstruct(np.zeros((1, 1, 2, 2), np.float32), L, S.Conventional()), "integers"),
    (lambda L: reconstruct(np.zeros((1, 1, 2, 2), np.uint8), L, "conventional"), "scheme must be"),
    (lambda L: reconstruct(np.zeros((1, 1, 2, 2), np.uint8), L, S.LineDelta(),
                           state=TemporalState.start((1, 2, 2))), "state is for TemporalDelta"),
    (lambda L: reconstruct(np.zeros((1, 1, 2, 2), np.uint8), L, S.TemporalDelta(),
                           state=TemporalState.start((1, 2, 3))), "state has shape"),
    (lambda L: reconstruct(np.zeros((1, 1, 2, 2), np.uint8), L, S.TemporalDelta(),
                           state=TemporalState(np.zeros((1, 2, 2)), np.ones((1, 2, 2)))), "Y = R"),
])
def test_errors_name_the_layer(call, match):
    layer = Layer("conv_7", "t", "conv", 1, 1, input_shape=(1, 2, 2))
    with pytest.raises((ValueError, TypeError), match=match):
        call(layer)


def test_line_delta_on_fc_is_an_error():
    layer = Layer("head", "t", "fc", 4, 2, input_shape=(4, 1, 1))
    with pytest.raises(ValueError, match="head"):
        reconstruct(np.zeros((1, 4, 1, 1), np.uint8), layer, S.LineDelta())
