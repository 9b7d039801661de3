"""Closed-loop replay (``else_dse.record.replay``).

The plan step alone (:class:`Deployed`: quantize with pinned scales,
reconstruct through the kernels with temporal state, dequantize) frame by
frame against one pass of the kernels and ``count_events``; then the whole
replay on real runtimes.
"""

from __future__ import annotations

import numpy as np
import pytest

from else_dse import Layer, Recording
from else_dse import schemes as S
from else_dse.events import count_events, reconstruct
from else_dse.record.replay import Deployed
from else_dse.recording import dequantize_codes


def _two_consumers():
    """One tensor read by two layers of different strides, then an fc on another."""
    layers = [Layer("a", "t", "conv", 2, 3, kernel=3, stride=1, padding=(1, 1, 1, 1), input_shape=(2, 7, 6)),
              Layer("b", "t", "conv", 2, 4, kernel=3, stride=2, padding=(0, 1, 0, 1), input_shape=(2, 7, 6)),
              Layer("f", "u", "fc", 12, 2, input_shape=(3, 2, 2))]
    rng = np.random.default_rng(3)
    x = {"t": np.cumsum(rng.standard_normal((5, 2, 7, 6)), axis=2).astype(np.float32),
         "u": np.maximum(rng.standard_normal((5, 3, 2, 2)), 0).astype(np.float32)}
    return layers, x


@pytest.mark.parametrize("plan", [
    S.Plan({"b": S.LineDelta(axis="x", threshold=2, loop="open"), "f": S.Conventional(tau=1)},
           default=S.LineDelta(threshold=3)),
    S.Plan({"f": S.TemporalDelta(threshold=1)}, default=S.TemporalDelta(threshold=2, loop="open", tau=1)),
    S.Plan({"a": S.Conventional(tau=2), "b": S.Dense(tau=1)}, default=S.TemporalDelta(threshold=4)),
])
def test_deployed_frame_by_frame_equals_one_pass(plan):
    """Each consumer gets its own reconstruction; temporal state carried in order;
    the recorded codes are the sender's X; counts equal count_events on them."""
    layers, x = _two_consumers()
    pinned = Recording.from_arrays(layers, x).quantize(bits=8)
    schemes = plan.resolve(layers)
    dep = Deployed(layers, schemes, pinned)
    fed = {la.name: [] for la in layers}
    for f in range(5):
        for i, la in enumerate(layers):
            fed[la.name].append(dep(i, la, x[la.input][f]))
        dep.next_frame()
    sent = dep.recording(pinned)
    for t in ("t", "u"):  # the inputs are exact here, so the codes are the float run's
        np.testing.assert_array_equal(sent.tensor(t), pinned.tensor(t))
    for i, la in enumerate(layers):
        whole = reconstruct(pinned.tensor(la.input), la, schemes[i], zero_point=pinned.zero_point(la.input))
        want = dequantize_codes(whole.values, pinned.scale(la.input))
        np.testing.assert_array_equal(np.stack(fed[la.name]), want, err_msg=la.name)
        np.testing.assert_array_equal(dep.events[i], whole.events)
        np.testing.assert_array_equal(dep.sops[i], whole.sops)
    ds = count_events(sent, plan)
    np.testing.assert_array_equal(ds["events"].values, dep.events)
    np.testing.assert_array_equal(ds["sops"].values, dep.sops)


def test_two_consumers_of_different_strides_get_their_own_reconstruction():
    """One tensor, one line-delta scheme, strides 1 and 2: the lines are sent against
    the line 1 resp. 2 above, so the two layers compute on different arrays."""
    layers, x = _two_consumers()
    pinned = Recording.from_arrays(layers, x).quantize(bits=8)
    scheme = S.LineDelta(threshold=3)
    dep = Deployed(layers, S.Plan({"f": S.Conventional()}, default=scheme).resolve(layers), pinned)
    a, b = dep(0, layers[0], x["t"][0]), dep(1, layers[1], x["t"][0])
    assert not np.array_equal(a, b)
    for layer, got in ((layers[0], a), (layers[1], b)):
        r = reconstruct(pinned.tensor("t")[:1], layer, scheme, zero_point=pinned.zero_point("t"))
        np.testing.assert_array_equal(got, dequantize_codes(r.values[0], pinned.scale("t")))


def test_deployed_says_which_layer_was_not_fed():
    layers, x = _two_consumers()
    pinned = Recording.from_arrays(layers, x).quantize(bits=8)
    dep = Deployed(layers, S.Plan({}, default=S.Conventional()).resolve(layers), pinned)
    dep(0, layers[0], x["t"][0])
    with pytest.raises(RuntimeError, match=r"\['b', 'f'\]"):
        dep.next_frame()
