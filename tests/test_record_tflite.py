"""TFLite recorder on the shipped BlazeFace model: geometry checked by recomputing every layer in numpy."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="the record extra (ai-edge-litert) is not installed")
from ai_edge_litert import schema_py_generated as schema  # noqa: E402
from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

from else_dse.record import RecorderError, record, tf_same_padding  # noqa: E402
from else_dse.record.media import still  # noqa: E402
from else_dse.record.tflite import record_tflite  # noqa: E402
from else_dse.workload import output_size  # noqa: E402
from shipped import shipped_model  # noqa: E402

MODEL = shipped_model("face_detection_short_range.tflite")
SYNAPTIC = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def _ops(path: Path) -> list[str]:
    """Builtin op names of subgraph 0, counted independently of the recorder."""
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for op in model.subgraphs[0].operators:
        oc = model.operatorCodes[op.opcodeIndex]
        out.append(names[max(oc.builtinCode, oc.deprecatedBuiltinCode)])
    return out


def _interpreter(path: Path) -> Interpreter:
    it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    return it


def _conv_nhwc(x: np.ndarray, w: np.ndarray, b: np.ndarray, layer) -> np.ndarray:
    """Grouped conv of one frame ``x`` (C,H,W) with TFLite weights; returns (C_out, H_out, W_out)."""
    c, h, wd = layer.input_shape
    t, bo, le, r = layer.padding
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel, layer.stride, layer.dilation
    co, ho, wo = layer.output_shape
    xp = np.zeros((c, h + t + bo, wd + le + r))
    xp[:, t:t + h, le:le + wd] = x
    if layer.op == "depthwise":  # weights (1, kh, kw, C*m): output channel o reads input channel o // m
        m = co // c
        kern = w[0].transpose(2, 0, 1)  # (C*m, kh, kw)
        src = np.arange(co) // m
        out = np.zeros((co, ho, wo))
        for i in range(kh):
            for j in range(kw):
                patch = xp[src, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
                out += kern[:, i, j][:, None, None] * patch
    else:  # weights (C_out, kh, kw, C_in/g)
        g = layer.groups
        cig, per = c // g, co // g
        out = np.zeros((co, ho, wo))
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
                for gi in range(g):
                    out[gi * per:(gi + 1) * per] += np.tensordot(
                        w[gi * per:(gi + 1) * per, i, j, :], patch[gi * cig:(gi + 1) * cig], axes=(1, 0))
    return out + b[:, None, None]


ACT = {"NONE": lambda v: v, "RELU": lambda v: np.maximum(v, 0), "RELU6": lambda v: np.clip(v, 0, 6)}


def check_layers_numerically(path: Path, rec, frame: int, names=None) -> int:
    """Recompute each layer from its recorded input and compare with the runtime's output tensor."""
    model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
    ops = model.subgraphs[0].operators
    it = _interpreter(path)
    inp = it.get_input_details()[0]
    x0 = rec.tensor(rec.layers[0].input)[frame].transpose(1, 2, 0)[None]
    it.set_tensor(inp["index"], x0.astype(np.float32))
    it.invoke()
    info = json.loads(rec.attrs["layer_info"])
    checked = 0
    for layer in rec.layers:
        if names is not None and layer.name not in names:
            continue
        op = ops[info[layer.name]["op_index"]]
        w = it.get_tensor(op.inputs[1]).astype(np.float64)
        b = it.get_tensor(op.inputs[2]).astype(np.float64) if len(op.inputs) > 2 and op.inputs[2] >= 0 \
            else np.zeros(layer.out_channels)
        y = it.get_tensor(op.outputs[0])
        y = y[0].transpose(2, 0, 1) if y.ndim == 4 else y.reshape(-1)
        x = rec.tensor(layer.input)[frame].astype(np.float64)
        if layer.op == "fc":  # weights (C_out, N), the input in TFLite's flattening order
            got = ACT[info[layer.name]["activation"]](w @ x.reshape(-1) + b)
        else:
            got = ACT[info[layer.name]["activation"]](_conv_nhwc(x, w, b, layer))
        assert got.shape == y.shape, layer.name
        np.testing.assert_allclose(got, y, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(y).max())),
                                   err_msg=f"layer {layer.name}")
        checked += 1
    return checked


@pytest.fixture(scope="module")
def face():
    frames = [still("astronaut"), still("camera")]
    return record(MODEL, frames, value_range=(-1.0, 1.0), progress_bar=False)


def test_every_synaptic_op_is_a_layer(face):
    ops = _ops(MODEL)
    assert len(face.layers) == sum(op in SYNAPTIC for op in ops) == 37
    assert [layer.op for layer in face.layers].count("depthwise") == ops.count("DEPTHWISE_CONV_2D")
    assert json.loads(face.attrs["unhandled_ops"]) == []
    assert face.n_frames == 2
    assert len({layer.name for layer in face.layers}) == len(face.layers)


def test_geometry_recomputes_runtime_outputs(face):
    assert check_layers_numerically(MODEL, face, frame=1) == 37


def test_recorded_arrays_are_the_runtime_tensors(face):
    it = _interpreter(MODEL)
    info = json.loads(face.attrs["layer_info"])
    x = face.tensor(face.layers[0].input)[0].transpose(1, 2, 0)[None]
    it.set_tensor(it.get_input_details()[0]["index"], np.ascontiguousarray(x))
    it.invoke()
    for layer in face.layers:
        want = it.get_tensor(info[layer.name]["input_tensor_index"])[0].transpose(2, 0, 1)
        np.testing.assert_array_equal(face.tensor(layer.input)[0], want, err_msg=layer.name)


def test_first_layer_same_padding(face):
    first = face.layers[0]
    # BlazeFace starts with a 5x5 stride-2 SAME conv on 128x128: pad_total = 63*2+5-128 = 3 -> (1, 2)
    assert (first.kernel, first.stride, first.padding) == ((5, 5), (2, 2), (1, 2, 1, 2))
    assert first.input_shape == (3, 128, 128) and first.output_shape == (24, 64, 64)
    assert face.attrs["model_file"] == MODEL.name and "ai-edge-litert" in face.attrs["packages"]
    assert "[-1,1]" in face.attrs["preprocessing"]


@pytest.mark.parametrize("n", range(1, 12))
def test_tf_same_padding(n):
    for k in range(1, 6):
        for s in range(1, 4):
            for d in range(1, 3):
                lo, hi = tf_same_padding(n, k, s, d)
                assert 0 <= lo <= hi <= lo + 1
                assert output_size(n, k, s, lo, hi, d) == -(-n // s)  # SAME keeps ceil(n/s) outputs
                assert lo + hi == max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)


def test_float_frames_of_the_wrong_shape():
    good = np.zeros((128, 128, 3), np.float32)
    with pytest.raises(RecorderError, match=r"frame 1: float frame of shape \(64, 128, 3\)"):
        record(MODEL, [good, good[:64]], progress_bar=False)
    with pytest.raises(RecorderError, match="frame 0: non-finite"):
        record(MODEL, [np.full((128, 128, 3), np.nan, np.float32)], progress_bar=False)
    with pytest.raises(RecorderError, match="frame 0: dtype"):
        record(MODEL, [np.zeros((128, 128, 3), np.int32)], progress_bar=False)
    with pytest.raises(RecorderError, match="no frames"):
        record(MODEL, [], progress_bar=False)


def test_missing_and_unsupported_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file"):
        record(tmp_path / "absent.tflite", [still("astronaut")], progress_bar=False)
    bad = tmp_path / "model.pb"
    bad.write_bytes(b"x")
    with pytest.raises(RecorderError, match="unsupported model suffix '.pb'"):
        record(bad, [still("astronaut")], progress_bar=False)


def test_progress_bar_over_a_generator(capfd):
    frames = (still(name) for name in ("astronaut", "coffee"))  # no len(): tqdm without total
    rec = record(MODEL, frames, value_range=(-1.0, 1.0), progress_bar=True)
    assert rec.n_frames == 2
    assert "frame" in capfd.readouterr().err


_MP = importlib.util.find_spec("mediapipe")  # models not shipped in data/models come from its wheel


def test_pad_folding_on_the_pose_detector():
    path = shipped_model("pose_detection.tflite")
    frame = [still("astronaut")]
    folded = record_tflite(path, frame, value_range=(-1.0, 1.0), progress_bar=False)
    plain = record_tflite(path, frame, value_range=(-1.0, 1.0), progress_bar=False, fold_pad=False)
    info = json.loads(folded.attrs["layer_info"])
    names = [name for name, v in info.items() if "folded_pad" in v]
    assert names and [la.name for la in folded.layers] == [la.name for la in plain.layers]
    for name in names:
        f, p = folded.layer(name), plain.layer(name)
        t, b, le, r = info[name]["folded_pad"]
        assert f.output_shape == p.output_shape
        assert f.input_shape[1] + t + b == p.input_shape[1] and f.input_shape[2] + le + r == p.input_shape[2]
        padded = np.pad(folded.tensor(f.input), ((0, 0), (0, 0), (t, b), (le, r)))
        np.testing.assert_array_equal(padded, plain.tensor(p.input))
    assert check_layers_numerically(path, folded, frame=0, names=set(names)) == len(names)


@pytest.mark.skipif(_MP is None, reason="mediapipe==0.10.21 (model files only) is not installed")
def test_fully_connected_on_the_hand_landmark_model():
    path = Path(list(_MP.submodule_search_locations)[0]) / "modules" / "hand_landmark" / "hand_landmark_lite.tflite"
    rec = record_tflite(path, [still("astronaut")], progress_bar=False)
    fcs = [layer for layer in rec.layers if layer.op == "fc"]
    assert len(fcs) == _ops(path).count("FULLY_CONNECTED") == 4
    assert all(layer.input_shape == (layer.in_channels, 1, 1) for layer in fcs)
    assert len(rec.layers) == sum(op in SYNAPTIC for op in _ops(path))
    assert check_layers_numerically(path, rec, frame=0) == len(rec.layers)


@pytest.mark.skipif(_MP is None, reason="mediapipe==0.10.21 (model files only) is not installed")
def test_custom_op_model_fails_naming_the_op():
    path = (Path(list(_MP.submodule_search_locations)[0]) / "modules" / "selfie_segmentation"
            / "selfie_segmentation.tflite")
    with pytest.raises(RecorderError, match="CUSTOM:Convolution2DTransposeBias"):
        record_tflite(path, [still("astronaut")], progress_bar=False)
