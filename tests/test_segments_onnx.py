"""The ONNX model cut at every synaptic layer (else_dse.record.segments), on models built with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the record extra (onnx) is not installed")
pytest.importorskip("onnxruntime", reason="the record extra (onnxruntime) is not installed")
from onnx import TensorProto, helper  # noqa: E402

from else_dse.record import RecorderError, record  # noqa: E402
from else_dse.record.segments import SegmentError, open_segments  # noqa: E402
from onnx_build import save_model  # noqa: E402
from test_record_onnx import build, conv_ref  # noqa: E402

H, W = 10, 9


def _save(tmp_path, name, nodes, inits, outputs, in_shape=(1, 3, H, W)):
    return save_model(tmp_path, name, nodes, inits, outputs, in_shape)


@pytest.fixture(scope="module")
def skip(tmp_path_factory):
    """x -> convA (3x3) -> relu = a;  a -> convB (1x1, stride 1) = b;  a -> convC (3x3, stride 2) = c;
    s = a + b (skip connection);  y = Gemm(flatten(mean(s)));  outputs y, c, s and a."""
    rng = np.random.default_rng(3)
    w = {"wa": rng.normal(size=(4, 3, 3, 3)), "ba": rng.normal(size=4), "wb": rng.normal(size=(4, 4, 1, 1)),
         "bb": rng.normal(size=4), "wc": rng.normal(size=(5, 4, 3, 3)), "bc": rng.normal(size=5),
         "wg": rng.normal(size=(2, 4)), "bg": rng.normal(size=2)}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["a0"], pads=[1, 1, 1, 1], name="A"),
             helper.make_node("Relu", ["a0"], ["a"]),
             helper.make_node("Conv", ["a", "wb", "bb"], ["b"], name="B"),
             helper.make_node("Conv", ["a", "wc", "bc"], ["c"], pads=[0, 1, 0, 1], strides=[2, 2], name="C"),
             helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("GlobalAveragePool", ["s"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], transB=1, name="G")]
    return _save(tmp_path_factory.mktemp("seg"), "skip", nodes, w, ["y", "c", "s", "a"]), w


def by_hand(w, fed, x_exact, a_exact, reconstruction):
    """The skip model in numpy, each layer computing on the array it was fed."""
    a = np.maximum(conv_ref(fed["conv_00"], w["wa"], w["ba"], (1, 1), (1, 1, 1, 1), (1, 1), 1), 0)
    b = conv_ref(fed["conv_01"], w["wb"], w["bb"], (1, 1), (0, 0, 0, 0), (1, 1), 1)
    c = conv_ref(fed["conv_02"], w["wc"], w["bc"], (2, 2), (0, 0, 1, 1), (1, 1), 1)
    a_other = fed["conv_01"] if reconstruction else a_exact  # what the Add and the output "a" read
    s = a_other + b
    f = s.mean(axis=(1, 2))
    y = w["wg"] @ fed["fc_03"].reshape(-1) + w["bg"]
    return {"a_exact": a, "f": f, "y": y[None], "c": c[None], "s": s[None], "a": a_other[None]}


@pytest.mark.parametrize("nonsynaptic", ["exact", "reconstruction"])
def test_skip_connection_and_two_strides_by_hand(skip, nonsynaptic):
    path, w = skip
    seg = open_segments(path)
    assert [(la.name, la.input, la.stride) for la in seg.layers] == [
        ("conv_00", "x", (1, 1)), ("conv_01", "a", (1, 1)), ("conv_02", "a", (2, 2)), ("fc_03", "f", (1, 1))]
    rng = np.random.default_rng(5)
    x = rng.normal(size=(H, W, 3)).astype(np.float32)
    fed, seen = {}, []

    def consume(i, layer, a):
        seen.append(i)
        fed[layer.name] = (a * (1.0 + 0.25 * i) + rng.normal(0, 0.3, a.shape)).astype(np.float32)
        return fed[layer.name]

    run = seg.run(x, consume, nonsynaptic=nonsynaptic)
    assert seen == [0, 1, 2, 3]
    assert not np.array_equal(fed["conv_01"], fed["conv_02"])  # one tensor, two layers, two arrays
    want = by_hand(w, {k: v.astype(np.float64) for k, v in fed.items()}, x, run.inputs["conv_01"],
                   nonsynaptic == "reconstruction")
    tol = dict(rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(run.inputs["conv_00"], x.transpose(2, 0, 1))
    np.testing.assert_allclose(run.inputs["conv_01"], want["a_exact"], **tol)
    np.testing.assert_array_equal(run.inputs["conv_02"], run.inputs["conv_01"])
    np.testing.assert_allclose(run.inputs["fc_03"].reshape(-1), want["f"], **tol)
    for out in ("y", "c", "s", "a"):
        np.testing.assert_allclose(run.outputs[out], want[out], err_msg=out, **tol)


def test_unchanged_runs_are_bit_exact(skip, tmp_path):
    rng = np.random.default_rng(0)
    small, _ = build(tmp_path, rng)  # test_record_onnx's model: groups, depthwise, SAME_UPPER, Gemm, MatMul
    for path, hwc in ((skip[0], (H, W, 3)), (small, (9, 11, 3))):
        seg = open_segments(path)
        frames = [rng.normal(size=hwc).astype(np.float32) for _ in range(2)]
        rec = record(path, frames, progress_bar=False)
        assert seg.layers == rec.layers
        for k, x in enumerate(frames):
            for mode in ("exact", "reconstruction"):
                run, full = seg.run(x, nonsynaptic=mode), seg.run_full(x)
                for out in seg.output_names:
                    np.testing.assert_array_equal(run.outputs[out], full[out], err_msg=f"{path.name} {out}")
                for layer in seg.layers:
                    np.testing.assert_array_equal(run.inputs[layer.name], rec.tensor(layer.input)[k])


def test_bad_inputs_fail_in_one_line(skip, tmp_path):
    seg = open_segments(skip[0])
    x = np.zeros((H, W, 3), np.float32)
    k = helper.make_tensor("k0", TensorProto.FLOAT, (1, 2, H, W), np.ones(2 * H * W, np.float32))
    nodes = [helper.make_node("Conv", ["x", "w1"], ["y1"]), helper.make_node("Constant", [], ["k0"], value=k),
             helper.make_node("Relu", ["k0"], ["k"]), helper.make_node("Conv", ["k", "w2"], ["y2"]),
             helper.make_node("Add", ["y1", "y2"], ["y"])]  # the second conv reads weights only
    const = _save(tmp_path, "const", nodes, {"w1": np.ones((1, 3, 1, 1), np.float32),
                                             "w2": np.ones((1, 2, 1, 1), np.float32)}, ["y"])
    cases = [
        (lambda: open_segments(tmp_path / "absent.onnx"), FileNotFoundError, "absent.onnx: no such model"),
        (lambda: open_segments(const), SegmentError,
         r"const.onnx: cannot cut layer 'conv_01' \(op 3\): its input 'k' is computed from constants only"),
        (lambda: seg.run(x[:, :4]), RecorderError, r"float frame of shape \(10, 4, 3\).*\(10, 9, 3\)"),
        (lambda: seg.run(x.astype(np.int16)), RecorderError, "frame: dtype int16"),
        (lambda: seg.run(x, lambda i, la, a: a.reshape(-1)), SegmentError,
         r"layer 'conv_00' \(layer 0\): consume returned dtype float32 shape \(270,\); it must return a float32 "
         r"array of shape \(C, H, W\) = \(3, 10, 9\)"),
        (lambda: seg.run(x, lambda i, la, a: np.full(a.shape, np.inf, np.float32)), SegmentError,
         "layer 'conv_00' .*non-finite"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match) as info:
            call()
        assert "\n" not in str(info.value), str(info.value)


def test_a_subgraph_reading_a_layer_input(tmp_path):
    """An If whose branches read the conv output ``a`` from the outer scope: cut in exact mode; in
    reconstruction mode that read cannot be rewired and is refused by name."""
    then = helper.make_graph([helper.make_node("Relu", ["a"], ["t"])], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("Neg", ["a"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    cond = helper.make_tensor("cond", TensorProto.BOOL, (), [True])
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"]), helper.make_node("Conv", ["a", "w2"], ["b"]),
             helper.make_node("Constant", [], ["c"], value=cond),
             helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="branch")]
    path = _save(tmp_path, "if", nodes, {"w1": np.ones((2, 3, 1, 1), np.float32),
                                         "w2": np.ones((1, 2, 1, 1), np.float32)}, ["y", "b"])
    seg = open_segments(path)
    x = np.random.default_rng(2).normal(size=(H, W, 3)).astype(np.float32)
    run = seg.run(x, lambda i, layer, a: (a + 1).astype(np.float32))
    np.testing.assert_array_equal(run.outputs["y"][0], np.maximum(run.inputs["conv_01"], 0))
    np.testing.assert_allclose(run.outputs["b"][0, 0], (run.inputs["conv_01"] + 1).sum(axis=0), rtol=1e-5)
    with pytest.raises(SegmentError, match=r"node 3 If 'branch' reads a layer's input inside a subgraph"):
        seg.run(x, nonsynaptic="reconstruction")


_LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


@pytest.mark.skipif(not (_LIGHT / "light_squeezenet.onnx").is_file(), reason="onnx wheel without its test models")
def test_squeezenet_from_the_onnx_wheel_is_bit_exact():
    """SqueezeNet (opset 9, weights computed by ConstantOfShape nodes, fire modules whose 1x1 and 3x3
    expand convs read one tensor, Concat): unchanged runs are bit-exact, perturbed runs stay finite."""
    seg = open_segments(_LIGHT / "light_squeezenet.onnx")
    x = np.random.default_rng(4).uniform(0, 1, seg.input_hwc).astype(np.float32)
    rec = record(seg.path, [x], progress_bar=False)
    assert seg.layers == rec.layers and len(seg.layers) == 26 and seg.segments < 26
    run, full = seg.run(x), seg.run_full(x)
    for out in seg.output_names:
        np.testing.assert_array_equal(run.outputs[out], full[out])
    for layer in seg.layers:
        np.testing.assert_array_equal(run.inputs[layer.name], rec.tensor(layer.input)[0], err_msg=layer.name)
    half = seg.run(x, lambda i, layer, a: (a * 0.5).astype(np.float32), nonsynaptic="reconstruction")
    assert all(np.isfinite(o).all() for o in half.outputs.values())
