"""Small hand-checked cases of count_events / event_curve, and API / validation tests.

The exhaustive comparison against the numpy reference lives in
tests/test_kernels_*.py; here every expected number is worked out by hand
(see the comments) or is an API property.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings, strategies as st

import else_dse as ed
from else_dse import _kernels
from else_dse.events import curve_values, layers_of


def qrec(layers, arrays, bits=8):
    """A QuantizedRecording whose signed codes are exactly ``arrays`` (scale 1)."""
    rec = ed.Recording.from_arrays(layers, {k: np.asarray(v, np.float32) for k, v in arrays.items()})
    zp = 2 ** (bits - 1)
    ds = rec.data.copy()
    for v in list(ds.data_vars):
        X = np.asarray(arrays[ds[v].attrs["tensor"]], np.int64)
        ds[v] = xr.Variable(ds[v].dims, (X + zp).astype(np.uint8 if bits <= 8 else np.uint16),
                            attrs={**ds[v].attrs, "scale": 1.0, "zero_point": zp})
    ds.attrs.update({"bits": bits, "calibration": "max"})
    q = ed.QuantizedRecording(rec.layers, ds)
    for k, X in arrays.items():
        np.testing.assert_array_equal(q.signed(k), X)
    return q


def column(values):
    """A (frame=1, C=1, H=len, W=1) tensor."""
    return np.asarray(values, np.int64).reshape(1, 1, -1, 1)


def conv1(h, w=1, **kw):
    kw.setdefault("kernel", 1)
    return ed.Layer("c", "t", "conv", 1, 1, input_shape=(1, h, w), **kw)


# ---- hand-checked counts ---------------------------------------------------------

@pytest.fixture
def rows_equal():
    # 1 -> 4 channels, 3x3, padding 1 on a 4x4 input whose rows are all [0, 1, 2, 3]
    layer = ed.Layer("c1", "t", "conv", 1, 4, kernel=3, padding=1, input_shape=(1, 4, 4))
    X = np.tile(np.arange(4), (1, 1, 4, 1))
    return layer, qrec([layer], {"t": X})


def test_conventional_and_dense_by_hand(rows_equal):
    layer, q = rows_equal
    conv = ed.count_events(q, ed.Conventional())
    # 3 non-zeros per row, 4 rows; cover_y = [2,3,3,2], cover_x of x=1,2,3 = 3+3+2 = 8
    assert conv["events"].item() == 12
    assert conv["sops"].item() == (2 + 3 + 3 + 2) * 8 * 4
    dense = ed.count_events(q, ed.Dense())
    assert dense["events"].item() == 16
    assert dense["sops"].item() == dense["dense_macs"].item() == 10 * 10 * 4 == layer.dense_macs
    assert dense["max_error"].item() == dense["rel_error"].item() == 0.0


def test_stats_dataset_refuses_a_row_without_one_value_per_frame(rows_equal):
    from else_dse.events import LayerStats, stats_dataset

    _, q = rows_equal
    good = LayerStats(np.array([3]), np.array([9]), np.array([0.0]), np.array([0.0]))
    assert stats_dataset(q, ed.Conventional(), [good])["sops"].values.tolist() == [[9]]
    bad = dataclasses.replace(good, sops=np.array([9, 9]))
    with pytest.raises(ValueError, match=r"layer 'c1': sops has shape \(2,\), expected \(1,\)"):
        stats_dataset(q, ed.Conventional(), [bad])


def test_line_delta_by_hand(rows_equal):
    _, q = rows_equal
    ds = ed.count_events(q, ed.LineDelta(axis="y"), lines=True)
    # extended rows [-1, 4): needed lines 0..4 with extended cover [3, 3, 3, 2, 1];
    # line 0 is sent against zeros (3 events), lines 1-3 equal the line above (0),
    # line 4 is bottom padding: its delta -X_3 has 3 events.
    assert ds["events"].item() == 6
    assert ds["line_events"].values[0, 0].tolist() == [3, 0, 0, 0, 3]
    # SOPs: cover_x of the events = 8, times cover_y_ext (3 and 1), times C_out = 4
    assert ds["line_sops"].values[0, 0].tolist() == [96, 0, 0, 0, 32]
    assert ds["sops"].item() == 128
    assert ds["max_error"].item() == 0.0
    # along x every line differs from the one before: no saving there
    dx = ed.count_events(q, ed.LineDelta(axis="x"))
    # columns [0,1,2,3] (4 rows each) + padding column 4 (-3): 0 + 4 + 4 + 4 + 4
    assert dx["events"].item() == 16


def test_line_delta_stride_references_line_s_above():
    # k=1, s=2: output rows read lines 0 and 2 only; line 2 is sent against line 0
    layer = conv1(4, stride=(2, 1))
    q = qrec([layer], {"t": column([5, 7, 5, 9])})
    ds = ed.count_events(q, ed.LineDelta(), lines=True)
    assert ds["line_events"].values[0, 0].tolist() == [1, 0, 0, 0]  # line 2 == line 0
    assert ds["events"].item() == 1 and ds["sops"].item() == 1
    q2 = qrec([layer], {"t": column([5, 7, 6, 9])})
    assert ed.count_events(q2, ed.LineDelta(), lines=True)["line_events"].values.tolist() == [[[1, 0, 1, 0]]]
    # unread lines (1, 3) carry no error either: error over the needed lines only
    assert ed.count_events(q2, ed.LineDelta(threshold=1))["max_error"].item() == 1.0


def test_closed_and_open_loop_by_hand():
    # a ramp down one column, theta = 1
    q = qrec([conv1(6)], {"t": column([0, 1, 2, 3, 4, 5])})
    closed = ed.count_events(q, ed.LineDelta(threshold=1), lines=True)
    # R: 0, 0 (D=1 suppressed), 2 (D=2 sent), 2 (D=1), 4 (D=2 sent), 4 (D=1)
    assert closed["line_events"].values[0, 0].tolist() == [0, 0, 1, 0, 1, 0]
    assert closed["max_error"].item() == 1.0
    assert closed["rel_error"].item() == pytest.approx(np.sqrt(1 + 1 + 1) / np.sqrt(55))
    opened = ed.count_events(q, ed.LineDelta(threshold=1, loop="open"))
    # every D = X_h - X_{h-1} = 1 is suppressed: nothing is sent, the error grows to 5
    assert opened["events"].item() == 0
    assert opened["max_error"].item() == 5.0
    assert opened["rel_error"].item() == pytest.approx(1.0)
    lossless = [ed.count_events(q, ed.LineDelta(loop=lp))["events"].item() for lp in ("closed", "open")]
    assert lossless == [5, 5]  # theta = 0: both loops send every step


def test_temporal_delta_by_hand():
    layer = ed.Layer("c", "t", "conv", 1, 2, kernel=3, padding=1, input_shape=(1, 1, 1))
    X = np.array([0, 1, 2, 3, 3]).reshape(5, 1, 1, 1)
    q = qrec([layer], {"t": X})
    ds = ed.count_events(q, ed.TemporalDelta(threshold=1))
    # R over frames: 0, 0 (D=1), 2 (D=2 sent), 2 (D=1), 2 (D=1)
    assert ds["events"].values[0].tolist() == [0, 0, 1, 0, 0]
    assert ds["sops"].values[0].tolist() == [0, 0, 2, 0, 0]  # fan-out 1*1*C_out
    assert ds["max_error"].values[0].tolist() == [0, 1, 0, 1, 1]
    d0 = ed.count_events(q, ed.TemporalDelta())
    assert d0["events"].values[0].tolist() == [0, 1, 1, 1, 0]


def test_activation_threshold_error_against_raw_codes():
    layer = ed.Layer("c", "t", "conv", 1, 1, input_shape=(1, 1, 3))
    q = qrec([layer], {"t": np.array([1, 3, -2]).reshape(1, 1, 1, 3)})
    ds = ed.count_events(q, ed.Conventional(tau=2))
    assert ds["events"].item() == 1
    assert ds["max_error"].item() == 2.0
    assert ds["rel_error"].item() == pytest.approx(np.sqrt(1 + 4) / np.sqrt(1 + 9 + 4))
    # tau applies before the line delta too; theta = 0 closed loop -> error of tau only
    ld = ed.count_events(q, ed.LineDelta(axis="x", tau=2))
    assert ld["max_error"].item() == 2.0
    assert ld["events"].item() == 2  # 3 sent at x=1, then -3 at x=2


def test_stride_larger_than_kernel_counts_unread_elements_conventionally():
    layer = conv1(5, stride=(3, 1))  # reads rows 0 and 3 only
    q = qrec([layer], {"t": column([1, 1, 1, 1, 1])})
    ds = ed.count_events(q, ed.Conventional(), lines=True)
    assert ds["events"].item() == 5  # nnz(X), as semantics.md defines
    assert ds["line_sops"].values[0, 0].tolist() == [1, 0, 0, 1, 0]
    assert ed.count_events(q, ed.LineDelta())["events"].item() == 1  # line 3 == line 0


# ---- invariants cheap enough to pin here ------------------------------------------

def random_case(seed=0, frames=3):
    rng = np.random.default_rng(seed)
    layers = [
        ed.Layer("a", "t", "conv", 3, 6, kernel=(3, 2), stride=(2, 1), padding=(2, 0, 1, 3),
                 dilation=(1, 2), groups=3, input_shape=(3, 7, 6)),
        ed.Layer("b", "t", "depthwise", 3, 3, kernel=3, stride=2, padding=(0, 1, 1, 0), groups=3,
                 input_shape=(3, 7, 6)),
        ed.Layer("f", "t", "fc", 3 * 7 * 6, 5, input_shape=(3, 7, 6)),
    ]
    X = rng.integers(-6, 7, size=(frames, 3, 7, 6)) * (rng.random((frames, 3, 7, 6)) < 0.6)
    return layers, X, qrec(layers, {"t": X})


def test_axis_x_is_axis_y_on_swapped_tensor_and_reverse_is_flipped():
    layers, X, q = random_case()
    conv_layers = layers[:2]
    qc = q.select_layers(["a", "b"])
    sw = qrec([lay.swapped() for lay in conv_layers], {"t": X.transpose(0, 1, 3, 2)})
    fl = qrec([lay.flipped() for lay in conv_layers], {"t": X[:, :, ::-1, :]})
    for theta, loop in ((0, "closed"), (2, "closed"), (2, "open")):
        x = ed.count_events(qc, ed.LineDelta(axis="x", threshold=theta, loop=loop))
        y = ed.count_events(sw, ed.LineDelta(axis="y", threshold=theta, loop=loop))
        r = ed.count_events(qc, ed.LineDelta(direction="reverse", threshold=theta, loop=loop))
        f = ed.count_events(fl, ed.LineDelta(threshold=theta, loop=loop))
        for var in ("events", "sops", "max_error", "rel_error"):
            np.testing.assert_array_equal(x[var].values, y[var].values)
            np.testing.assert_array_equal(r[var].values, f[var].values)


def test_closed_loop_error_bounded_and_lossless_at_zero():
    _, _, q = random_case(1)
    plan = ed.Plan({"a": ed.LineDelta(threshold=3), "b": ed.LineDelta(axis="x", threshold=3)},
                   default=ed.TemporalDelta(threshold=3))
    ds = ed.count_events(q, plan)
    assert (ds["max_error"] <= 3).all()
    zero = ed.count_events(q, ed.Plan({"a": ed.LineDelta(), "b": ed.LineDelta(axis="x")},
                                      default=ed.TemporalDelta()))
    assert (zero["max_error"] == 0).all() and (zero["rel_error"] == 0).all()
    conv = ed.count_events(q, ed.Conventional())
    # conventional counts do not depend on frame order
    rev = ed.count_events(q.select_frames([2, 1, 0]), ed.Conventional())
    np.testing.assert_array_equal(conv["events"].values[:, ::-1], rev["events"].values)


def test_layers_sharing_a_tensor():
    layers, X, q = random_case(2)
    ds = ed.count_events(q, ed.Conventional())
    nnz = np.count_nonzero(X.reshape(X.shape[0], -1), axis=1)
    for name in ("a", "b", "f"):
        np.testing.assert_array_equal(ds["events"].sel(layer=name).values, nnz)
    # fc: every element has fan-out C_out
    np.testing.assert_array_equal(ds["sops"].sel(layer="f").values, nnz * 5)
    b = layers[1]
    want = [(np.count_nonzero(X[f], axis=0) * b.fan_out()).sum() for f in range(X.shape[0])]
    np.testing.assert_array_equal(ds["sops"].sel(layer="b").values, want)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32])
def test_kernel_accepts_every_code_type(dtype):
    rng = np.random.default_rng(3)
    X = (rng.integers(0, 5, size=(2, 3, 4, 5)) * (rng.random((2, 3, 4, 5)) < 0.5)).astype(dtype)
    count = np.zeros((2, 20), np.int32)
    out = [np.zeros(2, np.int64) for _ in range(3)]
    _kernels.conventional(X.reshape(2, 3, 20), 1, count, *out)
    np.testing.assert_array_equal(count.reshape(2, 4, 5), (np.abs(X.astype(int)) > 1).sum(axis=1))
    np.testing.assert_array_equal(out[2], (X.astype(np.int64) ** 2).reshape(2, -1).sum(axis=1))


def test_sixteen_bit_codes():
    layer = ed.Layer("c", "t", "conv", 2, 2, kernel=3, padding=1, input_shape=(2, 5, 5))
    rng = np.random.default_rng(4)
    x = np.maximum(rng.normal(size=(2, 2, 5, 5)), 0).astype(np.float32)
    q = ed.Recording.from_arrays([layer], {"t": x}).quantize(bits=16)
    assert q.signed("t").dtype == np.int32
    ds = ed.count_events(q, ed.LineDelta(threshold=100))
    assert (ds["max_error"] <= 100).all()
    np.testing.assert_array_equal(ed.count_events(q, ed.Conventional())["events"].values[0],
                                  np.count_nonzero(q.signed("t").reshape(2, -1), axis=1))


# ---- event_curve ------------------------------------------------------------------

@pytest.mark.parametrize("scheme", [
    ed.LineDelta(loop="closed"), ed.LineDelta(axis="x", loop="open", tau=1),
    ed.LineDelta(direction="reverse"), ed.TemporalDelta(), ed.TemporalDelta(loop="open", tau=1),
    ed.Conventional(),
])
def test_event_curve_equals_count_events(scheme):
    _, _, q = random_case(5, frames=4)
    q = q.select_layers(["a", "b"])
    thresholds = [0, 1, 2, 3, 5, 9]
    curve = ed.event_curve(q, "a", scheme, thresholds)
    assert dict(curve.sizes) == {"threshold": 6, "frame": 4}
    for t in thresholds:
        one = (ed.Conventional(tau=t) if isinstance(scheme, ed.Conventional)
               else dataclasses.replace(scheme, threshold=t))
        ds = ed.count_events(q, one).sel(layer="a")
        for var in ("events", "sops", "max_error"):
            np.testing.assert_array_equal(curve[var].sel(threshold=t).values, ds[var].values, err_msg=var)
        np.testing.assert_allclose(curve["rel_error"].sel(threshold=t).values, ds["rel_error"].values,
                                   rtol=1e-12)
    assert (np.diff(curve["events"].sum("frame").values) <= 0).all() or isinstance(scheme, ed.TemporalDelta)


@pytest.mark.parametrize("scheme", [
    ed.LineDelta(loop="open"), ed.LineDelta(axis="x", direction="reverse", loop="open", tau=2),
    ed.LineDelta(loop="closed", tau=1), ed.TemporalDelta(loop="open"),
    ed.TemporalDelta(loop="open", tau=1), ed.TemporalDelta(), ed.Conventional(),
])
def test_event_curve_without_error(scheme):
    """error=False: the same events and SOPs (open loop: histogram only), NaN errors;
    thresholds unsorted and beyond any |D| (2 * 255 for 8-bit codes)."""
    _, _, q = random_case(7, frames=3)
    q = q.select_layers(["a", "b"])
    thresholds = [9, 0, 2**31 - 1, 1, 511, 510, 3]
    full = ed.event_curve(q, "a", scheme, thresholds)
    fast = ed.event_curve(q, "a", scheme, thresholds, error=False)
    for var in ("events", "sops"):
        np.testing.assert_array_equal(fast[var].values, full[var].values, err_msg=var)
    for var, a in curve_values(q, "a", scheme, thresholds, error=False).items():   # NaN errors too
        np.testing.assert_array_equal(a, fast[var].values, err_msg=var)
    assert np.isnan(fast["max_error"].values).all() and np.isnan(fast["rel_error"].values).all()
    assert not np.isnan(full["max_error"].values).any()
    big = full.sel(threshold=2**31 - 1)
    assert (big["events"].values == 0).all() and (big["sops"].values == 0).all()
    one = (ed.Conventional(tau=1) if isinstance(scheme, ed.Conventional)
           else dataclasses.replace(scheme, threshold=1))
    ds = ed.count_events(q, one).sel(layer="a")
    np.testing.assert_array_equal(fast["events"].sel(threshold=1).values, ds["events"].values)
    np.testing.assert_array_equal(fast["sops"].sel(threshold=1).values, ds["sops"].values)
    with pytest.raises(TypeError, match="error must be a bool"):
        ed.event_curve(q, "a", scheme, [0], error="no")


def test_event_curve_validation():
    layers, _, q = random_case()
    with pytest.raises(ValueError, match="unknown layer 'nope'.*'a'"):
        ed.event_curve(q, "nope", ed.LineDelta(), [0])
    with pytest.raises(ValueError, match="layer 'f'.*fc"):
        ed.event_curve(q, "f", ed.LineDelta(), [0])
    with pytest.raises(ValueError, match="LineDelta, TemporalDelta or Conventional"):
        ed.event_curve(q, "a", ed.Dense(), [0])
    with pytest.raises(ValueError, match="ints >= 0"):
        ed.event_curve(q, "a", ed.LineDelta(), [0, -1])
    with pytest.raises(ValueError, match="distinct"):
        ed.event_curve(q, "a", ed.LineDelta(), [1, 1])
    with pytest.raises(ValueError, match="non-empty"):
        ed.event_curve(q, "a", ed.LineDelta(), [])


# ---- dataset layout ---------------------------------------------------------------

def test_dataset_layout_and_attrs():
    layers, X, q = random_case()
    plan = ed.Plan({"a": ed.LineDelta(axis="x", threshold=2, tau=1), "f": ed.Dense()},
                   default=ed.TemporalDelta(threshold=1, loop="open"))
    ds = ed.count_events(q, plan, lines=True)
    assert ds["events"].dims == ("layer", "frame")
    assert list(ds["layer"].values) == ["a", "b", "f"]
    for v in ("events", "sops", "dense_events", "dense_macs", "line_events", "line_sops"):
        assert ds[v].dtype == np.int64, v
    for v in ("max_error", "rel_error"):
        assert ds[v].dtype == np.float64, v
    assert list(ds["scheme"].values) == ["line_delta", "temporal_delta", "dense"]
    assert list(ds["axis"].values) == ["x", "", ""]
    assert list(ds["threshold"].values) == [2, 1, 0]
    assert list(ds["tau"].values) == [1, 0, 0]
    assert list(ds["op"].values) == ["conv", "depthwise", "fc"]
    assert ds.attrs["bits"] == 8 and ds.attrs["calibration"] == "max"
    assert ds.attrs["plan"] == repr(plan)
    assert [d["name"] for d in json.loads(ds.attrs["layers"])] == ["a", "b", "f"]
    assert layers_of(ds) == tuple(layers)
    assert layers_of(ds.sel(layer=["f", "a"])) == (layers[2], layers[0])
    # lines: axis x of "a" scans the extended columns; others use the input rows (7)
    n_a = len(layers[0].swapped().cover("y", extended=True))
    assert ds.sizes["line"] == max(n_a, 7)
    np.testing.assert_array_equal(ds["line_events"].sum("line"), ds["events"])
    np.testing.assert_array_equal(ds["line_sops"].sum("line"), ds["sops"])
    assert not ds["line_events"].sel(layer="b").values[:, 7:].any()
    np.testing.assert_array_equal(ds["dense_macs"].sel(layer="f"), 3 * 7 * 6 * 5)
    assert "line" not in ed.count_events(q, ed.Conventional()).dims


# ---- schemes: validation, hashing, strings ----------------------------------------

def test_scheme_strings_kinds_and_hashing():
    assert str(ed.LineDelta(threshold=1)) == "LineDelta(y, forward, theta=1, closed, tau=0)"
    assert str(ed.TemporalDelta(2, "open", 1)) == "TemporalDelta(theta=2, open, tau=1)"
    assert str(ed.Conventional(tau=3)) == "Conventional(tau=3)"
    assert [s.kind for s in (ed.Dense(), ed.Conventional(), ed.LineDelta(), ed.TemporalDelta())] == [
        "dense", "conventional", "line_delta", "temporal_delta"]
    assert ed.Dense().tau == 0 and str(ed.Dense(tau=2)) == "Dense(tau=2)"
    with pytest.raises(ValueError, match=r"Dense: tau must be an int >= 0"):
        ed.Dense(tau=-1)
    assert len({ed.LineDelta(), ed.LineDelta(), ed.LineDelta(threshold=np.int64(0)), ed.Dense()}) == 2
    p1 = ed.Plan({"a": ed.LineDelta(), "b": ed.TemporalDelta()}, default=ed.Dense())
    p2 = ed.Plan({"b": ed.TemporalDelta(), "a": ed.LineDelta()}, default=ed.Dense())
    assert p1 == p2 and hash(p1) == hash(p2) and len({p1, p2}) == 1
    assert p1.scheme_for("a") == ed.LineDelta() and p1.scheme_for("zzz") == ed.Dense()
    assert ed.Plan({}).default == ed.Conventional()
    assert eval(repr(p1), {**vars(ed)}) == p1
    with pytest.raises(dataclasses.FrozenInstanceError):
        ed.LineDelta().threshold = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        p1.schemes["c"] = ed.Dense()  # type: ignore[index]


@pytest.mark.parametrize("make, match", [
    (lambda: ed.LineDelta(threshold=-1), r"LineDelta: threshold must be an int >= 0"),
    (lambda: ed.LineDelta(threshold=1.5), r"threshold must be an int"),
    (lambda: ed.LineDelta(threshold=True), r"threshold must be an int"),
    (lambda: ed.LineDelta(tau=-2), r"LineDelta: tau must be an int >= 0"),
    (lambda: ed.LineDelta(axis="z"), r"axis must be one of \('y', 'x'\), got 'z'"),
    (lambda: ed.LineDelta(direction="up"), r"direction must be one of \('forward', 'reverse'\)"),
    (lambda: ed.LineDelta(loop="half"), r"loop must be one of \('closed', 'open'\)"),
    (lambda: ed.TemporalDelta(threshold=-3), r"TemporalDelta: threshold must be an int >= 0"),
    (lambda: ed.TemporalDelta(loop="x"), r"TemporalDelta: loop must be one of"),
    (lambda: ed.Conventional(tau=0.5), r"Conventional: tau must be an int >= 0"),
    (lambda: ed.Plan({"a": "line"}), r"scheme for layer 'a' must be one of"),
    (lambda: ed.Plan({}, default=None), r"default must be one of"),
    (lambda: ed.Plan([("a", ed.Dense())]), r"schemes must be a mapping"),
])
def test_scheme_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_count_events_validation():
    layers, X, q = random_case()
    with pytest.raises(ValueError, match=r"layer 'f'.*line delta is not defined.*fc"):
        ed.count_events(q, ed.LineDelta())
    with pytest.raises(ValueError, match=r"layer 'f'"):
        ed.count_events(q, ed.Plan({"f": ed.LineDelta(axis="x")}))
    with pytest.raises(ValueError, match=r"unknown layer names \['zz'\]; valid layer names are \['a', 'b', 'f'\]"):
        ed.count_events(q, ed.Plan({"zz": ed.Dense()}))
    with pytest.raises(ValueError, match="scheme .* or a Plan"):
        ed.count_events(q, "line_delta")  # type: ignore[arg-type]
    raw = ed.Recording.from_arrays(layers, {"t": X.astype(np.float32)})
    with pytest.raises(TypeError, match=r"quantize"):
        ed.count_events(raw, ed.Conventional())
    with pytest.raises(TypeError, match="QuantizedRecording"):
        ed.count_events(X, ed.Conventional())  # type: ignore[arg-type]


def test_many_channels_and_long_lines_lossless_by_formula():
    # kernels process lines of many channels in chunks; k=3, s=1, p=1 needs lines 0..H
    # (line H is bottom padding), so lossless events = nnz(X_0) + sum nnz(X_h - X_{h-1}) + nnz(X_{H-1})
    rng = np.random.default_rng(7)
    C, H, W = 70, 40, 24
    layer = ed.Layer("d", "t", "depthwise", C, C, kernel=3, padding=1, groups=C, input_shape=(C, H, W))
    X = rng.integers(-2, 3, size=(2, C, H, W)) * (rng.random((2, C, H, W)) < 0.4)
    q = qrec([layer], {"t": X})

    def expected(A):  # A: (F, C, lines, positions)
        pad = np.zeros_like(A[:, :, :1])
        D = np.diff(np.concatenate([pad, A, pad], axis=2), axis=2)
        return np.count_nonzero(D.reshape(len(A), -1), axis=1)

    np.testing.assert_array_equal(ed.count_events(q, ed.LineDelta())["events"].values[0], expected(X))
    np.testing.assert_array_equal(ed.count_events(q, ed.LineDelta(axis="x"))["events"].values[0],
                                  expected(X.transpose(0, 1, 3, 2)))
    np.testing.assert_array_equal(ed.count_events(q, ed.LineDelta(direction="reverse"))["events"].values[0],
                                  expected(X[:, :, ::-1]))


def test_stateful_line_kernel_agrees_with_the_stateless_lossless_path():
    # count_events uses per-position pair counts for theta = tau = 0; the stateful
    # kernel (used for theta or tau > 0) must give the same lossless counts
    from else_dse.events import _line_geometry
    layers, X, q = random_case(8)
    codes = (X + 128).astype(np.uint8)
    for layer in layers[:2]:
        for scheme in (ed.LineDelta(), ed.LineDelta(axis="x", direction="reverse")):
            g, cover_line, cover_pos = _line_geometry(layer, scheme)
            F, L = X.shape[0], len(cover_line)
            le, ls = np.zeros((F, L), np.int64), np.zeros((F, L), np.int64)
            err = [np.zeros(F, np.int64) for _ in range(3)]
            _kernels.line_delta(codes, 0 if scheme.axis == "y" else 1, scheme.direction == "reverse",
                                g.stride[0], cover_line, cover_pos, 0, True, 0, le, ls, *err, zp=128)
            ds = ed.count_events(q.select_layers([layer.name]), scheme, lines=True)
            np.testing.assert_array_equal(le, ds["line_events"].values[0, :, :L])
            np.testing.assert_array_equal(ls * layer.fan_out_channels, ds["line_sops"].values[0, :, :L])


@pytest.mark.parametrize("bits", [8, 16])
def test_lossless_counts_over_more_channels_than_an_8bit_counter_holds(bits):
    # the lossless kernels count per position in uint8 counters over runs of 255
    # channels and tiles of 4096 positions: 300 channels that nearly all differ
    # everywhere, lines longer than a tile
    rng = np.random.default_rng(11)
    C, H, W = 300, 3, 1400
    layer = ed.Layer("d", "t", "depthwise", C, C, kernel=(2, 3), stride=(2, 1), padding=(1, 0, 1, 1),
                     groups=C, input_shape=(C, H, W))
    X = rng.integers(-100, 101, size=(2, C, H, W))
    q = qrec([layer], {"t": X}, bits=bits)
    assert ed.count_events(q, ed.Conventional())["events"].values[0].tolist() == \
        np.count_nonzero(X.reshape(2, -1), axis=1).tolist()
    temporal = ed.count_events(q, ed.TemporalDelta(), lines=True)
    D = np.diff(np.concatenate([np.zeros_like(X[:1]), X]), axis=0)
    np.testing.assert_array_equal(temporal["line_events"].values[0, :, :H],
                                  np.count_nonzero(D, axis=(1, 3)))
    np.testing.assert_array_equal(temporal["sops"].values[0],
                                  (np.count_nonzero(D, axis=1) * layer.fan_out()).sum(axis=(1, 2)))
    from else_dse.events import _line_geometry
    codes = np.ascontiguousarray((X + 2 ** (bits - 1)).astype(np.uint8 if bits <= 8 else np.uint16))
    for scheme in (ed.LineDelta(), ed.LineDelta(axis="x"), ed.LineDelta(direction="reverse"),
                   ed.LineDelta(axis="x", direction="reverse")):
        g, cover_line, cover_pos = _line_geometry(layer, scheme)
        L = len(cover_line)
        le, ls = np.zeros((2, L), np.int64), np.zeros((2, L), np.int64)
        err = [np.zeros(2, np.int64) for _ in range(3)]
        _kernels.line_delta(codes, 0 if scheme.axis == "y" else 1, scheme.direction == "reverse",
                            g.stride[0], cover_line, cover_pos, 0, True, 0, le, ls, *err,
                            zp=2 ** (bits - 1))
        ds = ed.count_events(q, scheme, lines=True)
        assert le.max() > 255
        np.testing.assert_array_equal(le, ds["line_events"].values[0, :, :L], err_msg=str(scheme))
        np.testing.assert_array_equal(ls * layer.fan_out_channels, ds["line_sops"].values[0, :, :L])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_open_loop_histogram_equals_the_recursion(data):
    """event_curve(error=False) in the open loop (events and SOPs from one
    histogram of |D|) equals the per-threshold recursion (error=True), which
    tests/test_kernels_curve.py holds to the numpy reference."""
    from reference import codes_st, layers_st, make_qrec
    layer = data.draw(layers_st(ops=("conv", "depthwise")))
    bits = data.draw(st.sampled_from([4, 8, 16]))
    n = data.draw(st.integers(1, 3))
    X = data.draw(codes_st((n,) + layer.input_shape, bits=min(bits, 9)))
    q = make_qrec([layer], {"t": X}, bits)
    loop_tau = dict(loop="open", tau=data.draw(st.sampled_from([0, 0, 1, 3])))
    scheme = data.draw(st.one_of(
        st.builds(ed.LineDelta, axis=st.sampled_from(["y", "x"]),
                  direction=st.sampled_from(["forward", "reverse"]), **{k: st.just(v) for k, v in loop_tau.items()}),
        st.just(ed.TemporalDelta(**loop_tau))))
    ths = data.draw(st.lists(st.integers(0, 1100), min_size=1, max_size=8, unique=True))
    full = ed.event_curve(q, "l", scheme, ths)
    fast = ed.event_curve(q, "l", scheme, ths, error=False)
    for var in ("events", "sops"):
        np.testing.assert_array_equal(fast[var].values, full[var].values, err_msg=var)


@pytest.mark.parametrize("theta,tau,loop", [
    (3, 0, "closed"), (3, 2, "open"), (200, 0, "open"),      # 16-bit state (8-bit codes)
    (12000, 0, "open"), (20000, 0, "closed"), (1, 40000, "closed"),  # bounds exceeded: 32-bit state
])
def test_temporal_lossy_state_width(theta, tau, loop):
    """Lossy temporal deltas on 8-bit codes run on 16-bit state when no value can
    leave int16 (open loop: |Y| grows by theta per frame); both paths equal the
    reference, also across a range of positions longer than one block."""
    import reference as ref
    rng = np.random.default_rng(3)
    layer = ed.Layer("c", "t", "conv", 5, 4, kernel=3, stride=2, padding=1, input_shape=(5, 41, 57))
    X = rng.integers(-128, 128, size=(4, 5, 41, 57)) * (rng.random((4, 5, 41, 57)) < 0.7)
    q = qrec([layer], {"t": X})
    scheme = ed.TemporalDelta(threshold=theta, loop=loop, tau=tau)
    got = ed.count_events(q, scheme).sel(layer="c")
    want = ref.reference_for(X, layer, scheme)
    np.testing.assert_array_equal(got["events"].values, want.events)
    np.testing.assert_array_equal(got["sops"].values, want.sops)
    np.testing.assert_array_equal(got["max_error"].values, want.max_error)
    np.testing.assert_allclose(got["rel_error"].values, want.rel_error, rtol=1e-12)
