"""CF-packed storage of recordings: codes exact at the stored width, zeros exact, error <= scale/2."""

from __future__ import annotations

import numpy as np
import pytest

import else_dse as ed
from else_dse.record.store import check_packed, save_packed
from else_dse.recording import quantize_array


def _rec(rng):
    a = rng.normal(size=(3, 2, 6, 7)).astype(np.float32)  # signed: zero point inside the range
    a[:, :, 2] = 0.0
    r = np.maximum(rng.normal(size=(3, 4, 3, 4)), 0).astype(np.float32)  # ReLU-like: zero point 0
    z = np.zeros((3, 1, 2, 2), np.float32)  # all zero
    layers = [ed.Layer("c1", "a", "conv", 2, 4, kernel=3, stride=2, padding=(1, 2, 0, 1), input_shape=(2, 6, 7)),
              ed.Layer("d1", "r", "depthwise", 4, 4, kernel=3, padding=1, groups=4, input_shape=(4, 3, 4)),
              ed.Layer("f1", "z", "fc", 4, 3, input_shape=(1, 2, 2))]
    return ed.Recording.from_arrays(layers, {"a": a, "r": r, "z": z}, attrs={"source": "test"},
                                    frame_labels=["f0", "f1", "f2"])


@pytest.mark.parametrize("bits", [4, 8, 12])
def test_round_trip(tmp_path, bits):
    rec = _rec(np.random.default_rng(bits))
    path = save_packed(rec, tmp_path / "p.nc", bits=bits)
    check_packed(rec, path, bits=bits)
    back = ed.open_recording(path)
    assert type(back) is ed.Recording and back.layers == rec.layers
    assert back.attrs["source"] == "test" and list(back.data.frame_label.values) == ["f0", "f1", "f2"]
    for t in rec.tensors:
        codes, scale, zp = quantize_array(rec.tensor(t), bits)
        x = back.tensor(t)
        assert x.dtype == np.float32
        np.testing.assert_array_equal(x == 0, codes == zp)
        # float32 decoding code * scale_factor + add_offset: a few ulp of the largest magnitude
        grid = (codes.astype(np.float64) - zp) * scale
        np.testing.assert_allclose(x, grid, rtol=0, atol=4 * np.finfo(np.float32).eps * max(1e-30, np.abs(grid).max()))
    q = back.quantize(bits)
    np.testing.assert_array_equal(q.tensor("a"), quantize_array(rec.tensor("a"), bits)[0])


def test_check_packed_detects_a_different_recording(tmp_path):
    rec = _rec(np.random.default_rng(0))
    path = save_packed(rec, tmp_path / "p.nc")
    other = _rec(np.random.default_rng(1))
    with pytest.raises(AssertionError, match="codes differ|zeros"):
        check_packed(other, path)


def test_bad_arguments(tmp_path):
    rec = _rec(np.random.default_rng(0))
    with pytest.raises(ValueError, match="NetCDF only"):
        save_packed(rec, tmp_path / "p.zarr")
    with pytest.raises(ValueError, match="bits"):
        save_packed(rec, tmp_path / "p.nc", bits=1)
