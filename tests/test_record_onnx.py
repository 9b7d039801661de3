"""ONNX recorder on a small model built with onnx.helper: geometry and arrays against numpy."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the record extra (onnx) is not installed")
pytest.importorskip("onnxruntime", reason="the record extra (onnxruntime) is not installed")
from onnx import helper  # noqa: E402

from else_dse import open_recording  # noqa: E402
from onnx_build import save_model  # noqa: E402
from else_dse.record import RecorderError, record  # noqa: E402

H, W = 9, 11


def conv_ref(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride, pads, dil, groups) -> np.ndarray:
    """Plain numpy grouped convolution; ``x`` (C,H,W), ``pads`` (top, bottom, left, right)."""
    c, h, wd = x.shape
    co, cig, kh, kw = w.shape
    t, bo, le, r = pads
    xp = np.zeros((c, h + t + bo, wd + le + r), np.float64)
    xp[:, t:t + h, le:le + wd] = x
    ho = (h + t + bo - dil[0] * (kh - 1) - 1) // stride[0] + 1
    wo = (wd + le + r - dil[1] * (kw - 1) - 1) // stride[1] + 1
    out = np.zeros((co, ho, wo))
    per = co // groups
    for o in range(co):
        g = o // per
        for i in range(kh):
            for j in range(kw):
                patch = xp[g * cig:(g + 1) * cig,
                           i * dil[0]: i * dil[0] + stride[0] * (ho - 1) + 1: stride[0],
                           j * dil[1]: j * dil[1] + stride[1] * (wo - 1) + 1: stride[1]]
                out[o] += np.tensordot(w[o, :, i, j], patch, axes=(0, 0))
        out[o] += b[o]
    return out


def build(tmp_path, rng):
    """x(3,9,11) -> conv A (asym pads, stride, dilation) -> relu -> conv B (groups=2)
    -> depthwise (multiplier 2, SAME_UPPER, stride 2) -> relu -> flatten -> Gemm(transB) -> MatMul."""
    wa = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    wb = rng.normal(size=(6, 2, 1, 3)).astype(np.float32)
    wd = rng.normal(size=(12, 1, 3, 3)).astype(np.float32)
    ba, bb, bd = (rng.normal(size=n).astype(np.float32) for n in (4, 6, 12))
    nodes = [
        helper.make_node("Conv", ["x", "wa", "ba"], ["a"], pads=[1, 0, 2, 1], strides=[2, 1],
                         dilations=[1, 2], name="convA"),
        helper.make_node("Relu", ["a"], ["ar"]),
        helper.make_node("Conv", ["ar", "wb", "bb"], ["b"], group=2, pads=[0, 1, 0, 1], name="convB"),
        helper.make_node("Conv", ["b", "wd", "bd"], ["d"], group=6, auto_pad="SAME_UPPER", strides=[2, 2],
                         name="dw"),
        helper.make_node("Relu", ["d"], ["dr"]),
        helper.make_node("Flatten", ["dr"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["g"], transB=1, name="fc1"),
        helper.make_node("MatMul", ["g", "wm"], ["m"], name="fc2"),
    ]
    # shapes: a (4, 5, 10)  b (6, 5, 10)  d (12, 3, 5)  f 180
    wg = rng.normal(size=(7, 180)).astype(np.float32)
    bg = rng.normal(size=7).astype(np.float32)
    wm = rng.normal(size=(7, 5)).astype(np.float32)
    w = dict(wa=wa, ba=ba, wb=wb, bb=bb, wd=wd, bd=bd, wg=wg, bg=bg, wm=wm)
    path = save_model(tmp_path, "small", nodes, w, ["m"], [1, 3, H, W], {"m": [1, 5]}, check=True)
    return path, w


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    rng = np.random.default_rng(0)
    path, w = build(tmp_path_factory.mktemp("onnx"), rng)
    frames = [rng.normal(size=(H, W, 3)).astype(np.float32) for _ in range(3)]
    return path, w, frames, record(path, frames, progress_bar=False)


def test_geometry(small):
    _, _, _, rec = small
    by = {layer.name: layer for layer in rec.layers}
    assert [layer.op for layer in rec.layers] == ["conv", "conv", "depthwise", "fc", "fc"]
    a, b, d, g, m = rec.layers
    assert (a.input, a.kernel, a.stride, a.dilation, a.padding, a.groups) == ("x", (3, 2), (2, 1), (1, 2), (1, 2, 0, 1), 1)
    assert a.input_shape == (3, H, W) and a.output_shape == (4, 5, 10)
    assert (b.input, b.groups, b.padding, b.output_shape) == ("ar", 2, (0, 0, 1, 1), (6, 5, 10))
    # SAME_UPPER on 5x10, k=3, s=2: out 3x5, pad_total = (3-1)*2+3-5 = 2 -> (1, 1) and
    # (5-1)*2+3-10 = 1 -> (0, 1): the odd pixel goes after (right)
    assert (d.input, d.groups, d.out_channels, d.stride, d.padding) == ("b", 6, 12, (2, 2), (1, 1, 0, 1))
    assert d.output_shape == (12, 3, 5)
    assert (g.input, g.in_channels, g.out_channels, g.input_shape) == ("f", 180, 7, (180, 1, 1))
    assert (m.input, m.in_channels, m.out_channels) == ("g", 7, 5)
    assert len(by) == 5


def test_arrays_match_numpy(small):
    _, w, frames, rec = small
    assert rec.n_frames == 3
    for k, frame in enumerate(frames):
        x = frame.transpose(2, 0, 1).astype(np.float64)
        np.testing.assert_array_equal(rec.tensor("x")[k], frame.transpose(2, 0, 1))
        ar = np.maximum(conv_ref(x, w["wa"], w["ba"], (2, 1), (1, 2, 0, 1), (1, 2), 1), 0)
        np.testing.assert_allclose(rec.tensor("ar")[k], ar, rtol=1e-4, atol=1e-4)
        b = conv_ref(ar, w["wb"], w["bb"], (1, 1), (0, 0, 1, 1), (1, 1), 2)
        np.testing.assert_allclose(rec.tensor("b")[k], b, rtol=1e-4, atol=1e-4)
        d = np.maximum(conv_ref(b, w["wd"], w["bd"], (2, 2), (1, 1, 0, 1), (1, 1), 6), 0)
        np.testing.assert_allclose(rec.tensor("f")[k].ravel(), d.ravel(), rtol=1e-4, atol=1e-3)
        g = w["wg"] @ d.ravel() + w["bg"]
        np.testing.assert_allclose(rec.tensor("g")[k].ravel(), g, rtol=1e-4, atol=1e-3)


def test_provenance_and_round_trip(small, tmp_path):
    _, _, _, rec = small
    assert rec.attrs["recorder"] == "else_dse.record.onnx"
    assert rec.attrs["model_file"] == "small.onnx"
    assert "onnxruntime" in rec.attrs["packages"]
    back = open_recording(rec.save(tmp_path / "r.nc"))
    assert back.layers == rec.layers
    np.testing.assert_array_equal(back.tensor("b"), rec.tensor("b"))


def test_wrong_frame_shape(small):
    path, _, frames, _ = small
    with pytest.raises(RecorderError, match="frame 1"):
        record(path, [frames[0], frames[0][:, :5]], progress_bar=False)


def test_uint8_frames_are_prepared(small):
    path, _, _, _ = small
    img = np.random.default_rng(1).integers(0, 256, size=(40, 30, 3), dtype=np.uint8)
    rec = record(path, [img], value_range=(-1.0, 1.0), progress_bar=False)
    x = rec.tensor("x")
    assert x.shape == (1, 3, H, W) and x.dtype == np.float32
    assert -1.0 <= x.min() and x.max() <= 1.0


def test_unhandled_listed(tmp_path):
    w = np.ones((2, 1, 3, 3), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("ConvTranspose", ["c", "wt"], ["y"])]
    save_model(tmp_path, "u", nodes, {"w": w, "wt": np.ones((2, 1, 2, 2), np.float32)}, ["y"], [1, 1, 4, 4])
    rec = record(tmp_path / "u.onnx", [np.zeros((4, 4, 1), np.float32)], progress_bar=False)
    assert [layer.name for layer in rec.layers] == ["conv_00"]
    assert "ConvTranspose" in rec.attrs["unhandled_ops"]
