"""Recordings: validation, save/open round trips (NetCDF and zarr), bad files and
quantization exactness (``semantics.md``, Tensors and quantization)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from hypothesis import assume, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from else_dse import GeometryError, Layer, QuantizedRecording, Recording, RecordingError, open_recording
from else_dse.recording import quantize_array

SETTINGS = settings(max_examples=80, deadline=None)


def net():
    """Three layers over two tensors; two layers share tensor 'a'."""
    return [
        Layer("conv1", "a", "conv", 3, 4, kernel=3, stride=2, padding=(0, 1, 1, 0), input_shape=(3, 6, 5)),
        Layer("dw1", "a", "depthwise", 3, 3, kernel=(3, 1), padding=(1, 1, 0, 0), dilation=(2, 1),
              groups=3, input_shape=(3, 6, 5)),
        Layer("fc1", "b/in:0", "fc", 2 * 2 * 3, 5, input_shape=(2, 2, 3)),
    ]


def arrays(n=3, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return {"a": (rng.standard_normal((n, 3, 6, 5)) * 2).astype(dtype),
            "b/in:0": np.maximum(rng.standard_normal((n, 2, 2, 3)), 0).astype(dtype)}


def assert_same_recording(a: Recording, b: Recording):
    assert type(a) is type(b)
    assert a.layers == b.layers
    assert a.tensors == b.tensors
    assert a.n_frames == b.n_frames
    for t in a.tensors:
        x, y = a.tensor(t), b.tensor(t)
        assert x.dtype == y.dtype, (t, x.dtype, y.dtype)
        np.testing.assert_array_equal(x, y)
    assert set(a.attrs) == set(b.attrs)
    for k, v in a.attrs.items():
        assert np.all(np.asarray(b.attrs[k]) == np.asarray(v)), k
    if "frame_label" in a.data.coords:
        assert list(b.data["frame_label"].values) == list(a.data["frame_label"].values)
    else:
        assert "frame_label" not in b.data.coords
    if isinstance(a, QuantizedRecording):
        assert (a.bits, a.calibration) == (b.bits, b.calibration)
        for t in a.tensors:
            assert a.scale(t) == b.scale(t) and a.zero_point(t) == b.zero_point(t)
            np.testing.assert_array_equal(a.signed(t), b.signed(t))
            assert a.signed(t).dtype == b.signed(t).dtype


# ---- round trips ---------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.uint8, np.int16])
def test_round_trip(tmp_path, suffix, dtype):
    arrs = arrays(dtype=np.float32)
    if np.issubdtype(dtype, np.integer):
        arrs = {k: np.clip(np.rint(v * 10), 0 if dtype == np.uint8 else -100, 100).astype(dtype)
                for k, v in arrs.items()}
    else:
        arrs = {k: v.astype(dtype) for k, v in arrs.items()}
    rec = Recording.from_arrays(net(), arrs, attrs={"model": "toy", "fps": 30, "scale": 0.25},
                                frame_labels=["f0", "frame 1", "ü2"])
    path = rec.save(tmp_path / f"r{suffix}")
    back = open_recording(path)
    assert_same_recording(rec, back)
    assert back.layer("dw1").dilation == (2, 1) and back.layer("conv1").padding == (0, 1, 1, 0)
    assert back.tensor("a").dtype == dtype


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
@pytest.mark.parametrize("bits, calibration", [(8, "max"), (4, "percentile"), (16, "max")])
def test_quantized_round_trip(tmp_path, suffix, bits, calibration):
    q = Recording.from_arrays(net(), arrays()).quantize(bits=bits, calibration=calibration)
    back = open_recording(q.save(tmp_path / f"q{suffix}"))
    assert isinstance(back, QuantizedRecording)
    assert_same_recording(q, back)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_round_trip_without_labels_or_attrs_one_frame(tmp_path, suffix):
    rec = Recording.from_arrays(net()[:1], {"a": arrays(n=1)["a"]})
    back = open_recording(rec.save(tmp_path / f"r{suffix}"))
    assert_same_recording(rec, back)
    assert back.attrs == {}


def test_saved_layers_attribute_is_the_geometry(tmp_path):
    rec = Recording.from_arrays(net(), arrays())
    rec.save(tmp_path / "r.nc")
    with xr.open_dataset(tmp_path / "r.nc", engine="h5netcdf") as ds:
        layers = [Layer.from_dict(d) for d in json.loads(ds.attrs["layers"])]
    assert tuple(layers) == rec.layers


def test_access_and_selection():
    rec = Recording.from_arrays(net(), arrays(n=4), frame_labels=list("abcd"))
    assert rec.tensors == ("a", "b/in:0")
    assert rec.n_frames == 4
    assert rec.layer("fc1").op == "fc"
    with pytest.raises(KeyError, match="nope"):
        rec.layer("nope")
    with pytest.raises(KeyError, match="nope"):
        rec.tensor("nope")
    sub = rec.select_frames([3, 1])
    np.testing.assert_array_equal(sub.tensor("a"), rec.tensor("a")[[3, 1]])
    assert list(sub.data["frame_label"].values) == ["d", "b"]
    one = rec.select_layers(["fc1"])
    assert [layer.name for layer in one.layers] == ["fc1"] and one.tensors == ("b/in:0",)
    with pytest.raises(KeyError, match="zz"):
        rec.select_layers(["zz"])


def test_sample_frames_keeps_first_and_last_evenly_spaced():
    rec = Recording.from_arrays(net(), arrays(n=7), frame_labels=list("abcdefg"))
    three = rec.sample_frames(3)
    assert list(three.data["frame_label"].values) == ["a", "d", "g"]
    np.testing.assert_array_equal(three.tensor("a"), rec.tensor("a")[[0, 3, 6]])
    assert list(rec.sample_frames(2).data["frame_label"].values) == ["a", "g"]
    assert list(rec.sample_frames(1).data["frame_label"].values) == ["a"]
    assert rec.sample_frames(0) is rec and rec.sample_frames(7) is rec and rec.sample_frames(9) is rec
    q = rec.quantize(bits=8).sample_frames(3)
    assert isinstance(q, QuantizedRecording) and q.n_frames == 3
    for bad in (-1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="sample_frames: k must be an int"):
            rec.sample_frames(bad)


# ---- validation ---------------------------------------------------------------

def _err(exc_type, fn, *names):
    with pytest.raises(exc_type) as err:
        fn()
    msg = str(err.value)
    for n in names:
        assert n in msg, f"{n!r} not in message {msg!r}"
    return msg


def test_layer_errors_name_layer_and_field():
    _err(GeometryError, lambda: Layer("c9", "a", "conv", 3, 4, kernel=3, input_shape=(3, 6, 5),
                                      output_shape=(4, 6, 5)), "c9", "output_shape")
    _err(GeometryError, lambda: Layer("c9", "a", "conv", 2, 4, input_shape=(3, 6, 5)), "c9", "in_channels")
    _err(GeometryError, lambda: Layer("c9", "a", "conv", 3, 4, groups=2, input_shape=(3, 6, 5)),
         "c9", "groups")
    _err(GeometryError, lambda: Layer("c9", "a", "conv", 4, 6, groups=4, input_shape=(4, 6, 5)),
         "c9", "groups")
    _err(GeometryError, lambda: Layer("c9", "a", "conv", 3, 4, kernel=8, input_shape=(3, 6, 5)),
         "c9", "kernel")
    _err(GeometryError, lambda: Layer("f9", "a", "fc", 3, 4, input_shape=(3, 6, 5)), "f9", "in_channels")
    _err(GeometryError, lambda: Layer("c9", "a", "bn", 3, 4, input_shape=(3, 6, 5)), "c9", "op")


def test_from_arrays_errors_name_layer_or_tensor_and_field():
    layers = net()
    good = arrays()
    _err(RecordingError, lambda: Recording.from_arrays(layers, {"a": good["a"]}), "fc1", "b/in:0")
    bad = dict(good, a=good["a"][:, :, :4])
    _err(RecordingError, lambda: Recording.from_arrays(layers, bad), "conv1", "input_shape")
    bad = dict(good, a=good["a"][:, :2])
    _err(RecordingError, lambda: Recording.from_arrays(layers, bad), "conv1", "input_shape")
    nan = good["a"].copy()
    nan[1, 0, 2, 2] = np.nan
    _err(RecordingError, lambda: Recording.from_arrays(layers, dict(good, a=nan)), "'a'", "finite")
    inf = good["b/in:0"].copy()
    inf[0, 0, 0, 0] = -np.inf
    _err(RecordingError, lambda: Recording.from_arrays(layers, dict(good, **{"b/in:0": inf})),
         "b/in:0", "finite")
    _err(RecordingError, lambda: Recording.from_arrays(layers, dict(good, a=good["a"][0])), "'a'", "4-D")
    _err(RecordingError, lambda: Recording.from_arrays(layers, dict(good, a=good["a"][None])), "'a'", "4-D")
    _err(RecordingError, lambda: Recording.from_arrays(layers, dict(good, a=good["a"][:2])), "frames")
    _err(RecordingError, lambda: Recording.from_arrays(layers, dict(good, extra=good["a"])), "extra")
    _err(RecordingError, lambda: Recording.from_arrays(layers, dict(good, a=good["a"].astype(complex))),
         "'a'", "dtype")
    _err(RecordingError, lambda: Recording.from_arrays([], good), "layer")
    dup = [layers[0], layers[0]]
    _err(GeometryError, lambda: Recording.from_arrays(dup, {"a": good["a"]}), "conv1", "twice")
    _err(RecordingError, lambda: Recording.from_arrays(layers, good, frame_labels=["x"]), "frame_labels")


# ---- bad files ------------------------------------------------------------------

def test_missing_file(tmp_path):
    _err(RecordingError, lambda: open_recording(tmp_path / "none.nc"), "none.nc", "no such")
    _err(RecordingError, lambda: open_recording(tmp_path / "none.zarr"), "none.zarr", "no such")


def test_unknown_format(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("a,b\n")
    _err(RecordingError, lambda: open_recording(p), "r.csv", "format")
    rec = Recording.from_arrays(net(), arrays())
    _err(RecordingError, lambda: rec.save(tmp_path / "r.h6"), "r.h6", "format")


def test_garbage_files(tmp_path):
    p = tmp_path / "g.nc"
    p.write_bytes(np.random.default_rng(1).bytes(4096))
    _err(RecordingError, lambda: open_recording(p), "g.nc")
    z = tmp_path / "g.zarr"
    z.mkdir()
    (z / "zarr.json").write_text("{not json")
    _err(RecordingError, lambda: open_recording(z), "g.zarr")


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_not_a_recording(tmp_path, suffix):
    ds = xr.Dataset({"v": (("a", "b"), np.ones((2, 3)))})
    p = tmp_path / f"x{suffix}"
    if suffix == ".nc":
        ds.to_netcdf(p, engine="h5netcdf")
    else:
        ds.to_zarr(p, zarr_format=3, consolidated=False)
    _err(RecordingError, lambda: open_recording(p), f"x{suffix}", "layers")


def test_bad_geometry_in_file(tmp_path):
    rec = Recording.from_arrays(net(), arrays())
    ds = rec.data.copy()
    layers = json.loads(ds.attrs["layers"])
    layers[0]["stride"] = [0, 1]
    ds.attrs["layers"] = json.dumps(layers)
    p = tmp_path / "bad.nc"
    Recording(rec.layers, ds).save(p)
    _err(RecordingError, lambda: open_recording(p), "bad.nc", "conv1", "stride")


# ---- quantization -------------------------------------------------------------------

# subnormal inputs are excluded: x = 5e-324 makes scale underflow to 0 (ZeroDivisionError);
# recorded activations are never subnormal-only, see the report.
floats = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, allow_subnormal=False, width=64)


@SETTINGS
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=6), elements=floats),
       st.integers(2, 16))
def test_quantize_array_exactness(x, bits):
    codes, scale, zp = quantize_array(x, bits)
    levels = 2 ** bits - 1
    assert codes.shape == x.shape
    assert codes.dtype == (np.uint8 if bits <= 8 else np.uint16)
    assert codes.min(initial=0) >= 0 and codes.max(initial=0) <= levels
    assert 0 <= zp <= levels and isinstance(zp, int)
    if not np.any(x):
        assert (codes == 0).all() and scale == 1.0 and zp == 0
        return
    assert scale > 0
    lo, hi = min(0.0, x.min()), max(0.0, x.max())
    if hi > lo:
        assert scale == pytest.approx((hi - lo) / levels, rel=1e-12)
    # 0.0 maps to the zero point
    c0, _, _ = quantize_array(np.append(x.ravel(), 0.0), bits)
    assert int(c0[-1]) == zp
    # dequantized values are within half a step of every value inside [lo, hi]
    deq = (codes.astype(np.float64) - zp) * scale
    inside = (x >= lo) & (x <= hi)
    assert np.all(np.abs(deq - x)[inside] <= scale / 2 * (1 + 1e-9) + 1e-12 * np.abs(x[inside]))


@SETTINGS
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4),
                                        st.integers(1, 4)),
                  elements=st.floats(-50, 50, width=32)),
       st.sampled_from([4, 8]), st.floats(90, 100))
def test_quantize_array_percentile(x, bits, pct):
    codes, scale, zp = quantize_array(x, bits, "percentile", pct)
    levels = 2 ** bits - 1
    assert codes.min() >= 0 and codes.max() <= levels
    if not np.any(x):
        assert (codes == 0).all() and zp == 0
        return
    lo = min(0.0, float(np.percentile(x, 100 - pct)))
    hi = max(0.0, float(np.percentile(x, pct)))
    if hi <= lo:  # sparser than the percentile: the full range is kept
        lo, hi = min(0.0, float(x.min())), max(0.0, float(x.max()))
    if hi > lo:
        assert scale == pytest.approx((hi - lo) / levels, rel=1e-9)
        deq = (codes.astype(np.float64) - zp) * scale
        x64 = x.astype(np.float64)
        inside = (x64 >= lo) & (x64 <= hi)
        assert np.all(np.abs(deq - x64)[inside] <= scale / 2 * (1 + 1e-9))
        # values beyond the clipped range saturate
        assert (codes[x64 > hi + scale] == levels).all()
        assert (codes[x64 < lo - scale] == 0).all()


def test_percentile_100_is_max():
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 4))
    a = quantize_array(x, 8, "max")
    b = quantize_array(x, 8, "percentile", 100.0)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:] == b[1:]


def test_quantize_hand_example():
    # lo = -1, hi = 2.0, 2 bits: scale = 1, zp = 1; codes = clip(round(x) + 1, 0, 3)
    x = np.array([-1.0, -0.4, 0.0, 0.5, 1.5, 2.0])
    codes, scale, zp = quantize_array(x, 2)
    assert scale == 1.0 and zp == 1
    assert codes.tolist() == [0, 1, 1, 1, 3, 3]  # round half to even: 0.5 -> 0, 1.5 -> 2


def test_quantize_edge_tensors():
    codes, scale, zp = quantize_array(np.zeros((2, 1, 3, 3)), 8)
    assert not codes.any() and scale == 1.0 and zp == 0
    codes, scale, zp = quantize_array(np.full((1, 1, 2, 2), -3.0), 8)   # constant negative
    assert zp == 255 and (codes == 0).all() and scale == pytest.approx(3 / 255)
    codes, scale, zp = quantize_array(np.full((1, 1, 2, 2), 2.0), 8)    # constant positive
    assert zp == 0 and (codes == 255).all()
    for bad in (1, 17, 8.0):
        with pytest.raises(ValueError, match="bits"):
            quantize_array(np.ones(3), bad)
    with pytest.raises(ValueError, match="calibration"):
        quantize_array(np.ones(3), 8, "mean")
    with pytest.raises(ValueError, match="percentile"):
        quantize_array(np.ones(3), 8, "percentile", 20.0)


@pytest.mark.parametrize("bits", [2, 4, 8, 12, 16])
def test_recording_quantize_per_tensor_over_all_frames(bits):
    arrs = arrays(n=3)
    arrs["b/in:0"][:] = 0.0  # an all-zero tensor: no events, no scale needed
    q = Recording.from_arrays(net(), arrs).quantize(bits=bits)
    assert isinstance(q, QuantizedRecording) and q.bits == bits and q.calibration == "max"
    for t, x in arrs.items():
        codes, scale, zp = quantize_array(x, bits)
        np.testing.assert_array_equal(q.tensor(t), codes)
        assert q.scale(t) == scale and q.zero_point(t) == zp
        X = q.signed(t)
        assert X.dtype == (np.int16 if bits <= 15 else np.int32) and X.flags.c_contiguous
        np.testing.assert_array_equal(X, codes.astype(np.int64) - zp)
        assert np.abs(q.dequantize(t) - x).max() <= scale / 2 * (1 + 1e-6) + 1e-6
    assert not q.signed("b/in:0").any()
    # one tensor over all frames: frame subsets quantize differently, the whole is one scale
    q0 = Recording.from_arrays(net(), arrs).select_frames([0]).quantize(bits=bits)
    assert q0.scale("a") <= q.scale("a")
    with pytest.raises(RecordingError, match="already quantized"):
        q.quantize()
    with pytest.raises(RecordingError):
        QuantizedRecording.from_arrays(net(), arrs)


def test_int8_extremes_map_to_signed_codes():
    # values -128..127 with 8 bits: scale 1, zero point 128, X = value exactly
    x = np.arange(-128, 128, dtype=np.float32).reshape(1, 1, 16, 16)
    layer = Layer("c", "t", "conv", 1, 1, input_shape=(1, 16, 16))
    q = Recording.from_arrays([layer], {"t": x}).quantize(bits=8)
    assert q.scale("t") == 1.0 and q.zero_point("t") == 128
    np.testing.assert_array_equal(q.signed("t"), x.astype(np.int16))


# ---- regressions: sparse percentile calibration, all-negative tensors (0.0 keeps its code) ----

def test_percentile_on_sparse_tensor():
    x = np.zeros((1, 1, 100, 1000))
    x[0, 0, 0, :5] = 1.0  # 5 non-zeros in 100000: the 99.99th percentile is 0
    codes, scale, zp = quantize_array(x, 8, "percentile")  # default percentile 99.99
    assert scale > 0 and 0 <= zp <= 255
    assert (codes[x == 0] == zp).all()


def test_all_negative_tensor_keeps_zero_representable():
    codes, scale, zp = quantize_array(np.array([-3.0, -1.0]), 8)
    assert 0 <= zp <= 255
    c0, _, _ = quantize_array(np.array([-3.0, -1.0, 0.0]), 8)
    assert int(c0[-1]) == zp
