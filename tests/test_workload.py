"""Geometry of ``else_dse.workload`` checked by brute force against ``semantics.md``.

The reference and the kernels both take their fan-out from ``workload``; these
tests hold that one home of geometry to the definitions: enumeration of
(output row, kernel tap) pairs, and all-ones convolutions (explicit loops and
scipy) with stride, asymmetric padding, dilation and groups.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import signal

from else_dse.workload import GeometryError, Layer, cover, extended_rows, needed_lines, output_size

from reference import all_ones_conv_sops, layers_st

SETTINGS = settings(max_examples=80, deadline=None)


# ---- strategies -------------------------------------------------------------

@st.composite
def axis_geometry(draw):
    """(n_in, k, s, p_lo, p_hi, d) with a valid output size."""
    n = draw(st.integers(1, 12))
    k = draw(st.integers(1, 5))
    s = draw(st.integers(1, 5))
    d = draw(st.integers(1, 3))
    p_lo = draw(st.integers(0, 6))
    p_hi = draw(st.integers(0, 6))
    if n + p_lo + p_hi < d * (k - 1) + 1:
        p_hi += d * (k - 1) + 1 - (n + p_lo + p_hi)
    return n, k, s, p_lo, p_hi, d


def conv_layers(max_hw=7, ops=("conv", "depthwise")):
    return layers_st(max_hw=max_hw, ops=ops)


# ---- brute force definitions ------------------------------------------------

def brute_cover(k, s, p_lo, d, rows, lines):
    """``#{(r, i): r in rows, 0 <= i < k, r*s - p_lo + i*d == h}`` by enumeration."""
    out = []
    for h in lines:
        out.append(sum(1 for r in rows for i in range(k) if r * s - p_lo + i * d == h))
    return np.array(out, dtype=np.int64)


def brute_output_size(n, k, s, p_lo, p_hi, d):
    """Number of output rows r >= 0 whose taps all lie in [-p_lo, n + p_hi)."""
    return sum(1 for r in range(0, n + p_lo + p_hi + 1)
               if r * s - p_lo >= -p_lo and r * s - p_lo + (k - 1) * d < n + p_hi)


def scipy_all_ones_sops(E, layer: Layer, rows=None, cols=None):
    """All-ones grouped convolution via scipy.signal.correlate on a padded canvas, then
    strided sampling; summed over output channels, rows, columns."""
    C, Hl, Wl = E.shape
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel, layer.stride, layer.dilation
    t, b, l, r = layer.padding
    rows = range(layer.output_shape[1]) if rows is None else rows
    cols = range(layer.output_shape[2]) if cols is None else cols
    # canvas offset so that input row y sits at canvas row y + off_y for every row read
    off_y = max(0, -(rows.start * sh - t)) if len(rows) else 0
    off_x = max(0, -(cols.start * sw - l)) if len(cols) else 0
    need_h = off_y + max(Hl, (rows.stop - 1) * sh - t + (kh - 1) * dh + 1) if len(rows) else Hl
    need_w = off_x + max(Wl, (cols.stop - 1) * sw - l + (kw - 1) * dw + 1) if len(cols) else Wl
    canvas = np.zeros((C, need_h, need_w))
    canvas[:, off_y:off_y + Hl, off_x:off_x + Wl] = E != 0
    kern = np.zeros(((kh - 1) * dh + 1, (kw - 1) * dw + 1))
    kern[::dh, ::dw] = 1.0
    g = layer.groups
    cin_g, cout_g = C // g, layer.out_channels // g
    total = 0
    for grp in range(g):
        summed = canvas[grp * cin_g:(grp + 1) * cin_g].sum(axis=0)
        full = signal.correlate(summed, kern, mode="valid", method="direct")
        ys = [rr * sh - t + off_y for rr in rows]
        xs = [q * sw - l + off_x for q in cols]
        total += cout_g * int(round(full[np.ix_(ys, xs)].sum()))
    return total


# ---- tests --------------------------------------------------------------------

@SETTINGS
@given(axis_geometry())
def test_output_size_matches_enumeration(geom):
    n, k, s, p_lo, p_hi, d = geom
    assert output_size(n, k, s, p_lo, p_hi, d) == brute_output_size(n, k, s, p_lo, p_hi, d)
    assert output_size(n, k, s, p_lo, p_hi, d) == math.floor((n + p_lo + p_hi - d * (k - 1) - 1) / s) + 1


@SETTINGS
@given(axis_geometry())
def test_extended_rows_definition(geom):
    n, k, s, p_lo, p_hi, d = geom
    n_out = output_size(n, k, s, p_lo, p_hi, d)
    rows = extended_rows(n_out, k, s, p_lo, d)
    r_lo = min(0, math.ceil((p_lo - (k - 1) * d) / s))
    assert rows == range(r_lo, n_out)
    # the row before r_lo has its whole receptive field in the top padding ...
    assert (r_lo - 1) * s - p_lo + (k - 1) * d < 0
    # ... and if virtual rows exist, the first one already reads a real line (minimal)
    if r_lo < 0:
        assert r_lo * s - p_lo + (k - 1) * d >= 0


@SETTINGS
@given(axis_geometry(), st.booleans())
def test_cover_matches_enumeration(geom, extended):
    n, k, s, p_lo, p_hi, d = geom
    n_out = output_size(n, k, s, p_lo, p_hi, d)
    rows = extended_rows(n_out, k, s, p_lo, d) if extended else range(0, n_out)
    lines = range(0, n + p_hi + 3)
    got = cover(k, s, p_lo, d, rows, lines)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, brute_cover(k, s, p_lo, d, rows, lines))
    # conventional rows never read past the bottom padding
    if not extended:
        assert got[n + p_hi:].sum() == 0


@SETTINGS
@given(axis_geometry())
def test_needed_lines_span(geom):
    n, k, s, p_lo, p_hi, d = geom
    n_out = output_size(n, k, s, p_lo, p_hi, d)
    rows = extended_rows(n_out, k, s, p_lo, d)
    needed = {r * s - p_lo + i * d for r in rows for i in range(k)} - set(range(-10_000, 0))
    span = needed_lines(n, n_out, k, s, p_lo, d)
    assert span.start == 0
    if not needed:  # every tap of every row lies in the top padding (huge stride / padding)
        assert len(span) == 0
        return
    assert max(needed) == span.stop - 1
    # needed lines in the bottom padding stay inside it (taps never go past H + p_hi)
    assert max(needed) < n + p_hi


@SETTINGS
@given(conv_layers(ops=("conv", "depthwise", "fc")), st.sampled_from(["y", "x"]), st.booleans())
def test_layer_cover_and_lines(layer, axis, extended):
    got = layer.cover(axis, extended)
    lines = layer.lines(axis, extended)
    j = 0 if axis == "y" else 1
    n_in = layer.input_shape[1 + j]
    if layer.op == "fc":
        np.testing.assert_array_equal(got, np.ones(n_in, dtype=np.int64))
        return
    k, s, d = layer.kernel[j], layer.stride[j], layer.dilation[j]
    p_lo = layer.padding[2 * j]
    n_out = layer.output_shape[1 + j]
    rows = range(min(0, math.ceil((p_lo - (k - 1) * d) / s)), n_out) if extended else range(n_out)
    assert layer.rows(axis, extended) == rows
    h_max = (n_out - 1) * s - p_lo + (k - 1) * d
    assert lines == range(0, max(n_in, h_max + 1) if extended else n_in)
    np.testing.assert_array_equal(got, brute_cover(k, s, p_lo, d, rows, lines))


@SETTINGS
@given(conv_layers(), st.data())
def test_fan_out_equals_all_ones_convolution(layer, data):
    """sum(E * C_out/g * cover_y x cover_x) == all-ones grouped conv of E, summed (loops and scipy)."""
    C, H, W = layer.input_shape
    seed = data.draw(st.integers(0, 2**32 - 1))
    E = (np.random.default_rng(seed).random((C, H, W)) < 0.5).astype(np.int64)
    fan = layer.fan_out()
    assert fan.shape == (H, W) and fan.dtype == np.int64
    want = int((E * fan[None]).sum())
    loops = all_ones_conv_sops(E, layer.kernel, layer.stride, layer.padding[0], layer.padding[2],
                               layer.dilation, range(layer.output_shape[1]),
                               range(layer.output_shape[2]), layer.groups, layer.out_channels)
    assert want == loops
    assert want == scipy_all_ones_sops(E, layer)
    # the dense MAC count is the same sum over every position
    assert layer.dense_macs == all_ones_conv_sops(
        np.ones_like(E), layer.kernel, layer.stride, layer.padding[0], layer.padding[2],
        layer.dilation, range(layer.output_shape[1]), range(layer.output_shape[2]),
        layer.groups, layer.out_channels)


@SETTINGS
@given(conv_layers(), st.data())
def test_extended_cover_equals_all_ones_convolution(layer, data):
    """Line-delta fan-out over extended rows and bottom-padding lines == all-ones conv
    of an event map over the extended lines with the rows [r_lo, H_out)."""
    C, H, W = layer.input_shape
    L = len(layer.lines("y", extended=True))
    seed = data.draw(st.integers(0, 2**32 - 1))
    E = (np.random.default_rng(seed).random((C, L, W)) < 0.5).astype(np.int64)
    cy = layer.cover("y", extended=True)
    cx = layer.cover("x")
    want = int((E * np.outer(cy, cx)[None]).sum()) * layer.fan_out_channels
    rows = layer.rows("y", extended=True)
    got = all_ones_conv_sops(E, layer.kernel, layer.stride, layer.padding[0], layer.padding[2],
                             layer.dilation, rows, range(layer.output_shape[2]), layer.groups,
                             layer.out_channels)
    assert want == got
    assert want == scipy_all_ones_sops(E, layer, rows=rows)


def test_fc_fan_out_and_dense_macs():
    layer = Layer("f", "t", "fc", 2 * 3 * 4, 7, input_shape=(2, 3, 4))
    assert layer.output_shape == (7, 1, 1)
    np.testing.assert_array_equal(layer.fan_out(), np.full((3, 4), 7))
    assert layer.fan_out_channels == 7
    assert layer.dense_macs == 2 * 3 * 4 * 7
    assert layer.dense_events == 24


@SETTINGS
@given(conv_layers())
def test_swapped_and_flipped(layer):
    sw = layer.swapped()
    assert sw.swapped() == layer
    np.testing.assert_array_equal(sw.cover("y"), layer.cover("x"))
    np.testing.assert_array_equal(sw.cover("x", True), layer.cover("y", True))
    np.testing.assert_array_equal(sw.fan_out(), layer.fan_out().T)
    assert sw.dense_macs == layer.dense_macs
    fl = layer.flipped()
    assert fl.flipped() == layer
    assert fl.output_shape == layer.output_shape
    # the flipped layer's cover is that of a layer whose top padding is the old bottom one
    k, s, d = layer.kernel[0], layer.stride[0], layer.dilation[0]
    np.testing.assert_array_equal(
        fl.cover("y"), brute_cover(k, s, layer.padding[1], d, range(layer.output_shape[1]),
                                   range(layer.input_shape[1])))


def test_known_example():
    """Hand-worked: H=5, k=3, s=2, p=(1, 1), d=1 -> H_out=3, rows -1..2 extended."""
    layer = Layer("c", "t", "conv", 1, 1, kernel=3, stride=2, padding=(1, 1, 0, 0),
                  input_shape=(1, 5, 3))
    assert layer.output_shape == (1, 3, 1)
    # rows 0,1,2 read lines {-1,0,1}, {1,2,3}, {3,4,5}
    np.testing.assert_array_equal(layer.cover("y"), [1, 2, 1, 2, 1])
    # r_lo = min(0, ceil((1 - 2)/2)) = 0 ... ceil(-0.5) = 0 -> no virtual row
    assert layer.rows("y", True) == range(0, 3)
    # extended lines include the bottom padding line 5
    np.testing.assert_array_equal(layer.cover("y", True), [1, 2, 1, 2, 1, 1])
    layer2 = Layer("c", "t", "conv", 1, 1, kernel=3, stride=1, padding=(2, 0, 0, 0),
                   input_shape=(1, 4, 3))
    # p=2, k=3: r_lo = min(0, ceil((2-2)/1)) = 0; row -1 reads -3..-1 (all padding)
    assert layer2.rows("y", True) == range(0, 4)
    layer3 = Layer("c", "t", "conv", 1, 1, kernel=3, stride=1, padding=(0, 0, 0, 0),
                   input_shape=(1, 4, 3))
    # p=0: r_lo = ceil(-2) = -2: rows -2, -1 are virtual
    assert layer3.rows("y", True) == range(-2, 2)
    # row -2 reads -2..0, row -1 -1..1, row 0 0..2, row 1 1..3
    np.testing.assert_array_equal(layer3.cover("y", True), [3, 3, 2, 1])
    np.testing.assert_array_equal(layer3.cover("y"), [1, 2, 2, 1])


@pytest.mark.parametrize("kwargs, field", [
    (dict(kernel=0), "kernel"),
    (dict(stride=(1, 0)), "stride"),
    (dict(dilation=(0, 1)), "dilation"),
    (dict(padding=(0, -1, 0, 0)), "padding"),
    (dict(padding=(0, 0, 0)), "padding"),
    (dict(groups=0), "groups"),
    (dict(groups=3), "groups"),
    (dict(in_channels=3), "in_channels"),
    (dict(out_channels=0), "out_channels"),
    (dict(op="pool"), "op"),
    (dict(kernel=9), "kernel"),
    (dict(output_shape=(4, 3, 3)), "output_shape"),
    (dict(input="",), "input"),
])
def test_layer_validation_names_layer_and_field(kwargs, field):
    base = dict(name="conv7", input="t", op="conv", in_channels=2, out_channels=4, kernel=3,
                stride=1, padding=(1, 1, 1, 1), input_shape=(2, 4, 4))
    base.update(kwargs)
    with pytest.raises(GeometryError) as err:
        Layer(**base)
    msg = str(err.value)
    assert "conv7" in msg and field in msg, msg


def test_layer_validation_depthwise_and_fc():
    with pytest.raises(GeometryError, match=r"dw1.*groups"):
        Layer("dw1", "t", "depthwise", 4, 4, kernel=3, groups=2, padding=1, input_shape=(4, 5, 5))
    with pytest.raises(GeometryError, match=r"fc1.*in_channels"):
        Layer("fc1", "t", "fc", 10, 3, input_shape=(2, 2, 2))
    with pytest.raises(GeometryError, match=r"fc1.*kernel"):
        Layer("fc1", "t", "fc", 8, 3, kernel=3, input_shape=(2, 2, 2))
    with pytest.raises(GeometryError, match=r"fc1.*output_shape"):
        Layer("fc1", "t", "fc", 8, 3, input_shape=(2, 2, 2), output_shape=(3, 2, 1))
    with pytest.raises(ValueError, match=r"c1.*axis"):
        Layer("c1", "t", "conv", 1, 1, input_shape=(1, 2, 2)).cover("z")


@SETTINGS
@given(conv_layers(ops=("conv", "depthwise", "fc")))
def test_dict_round_trip(layer):
    assert Layer.from_dict(layer.to_dict()) == layer
    assert hash(Layer.from_dict(layer.to_dict())) == hash(layer)
