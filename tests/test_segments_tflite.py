"""The TFLite model cut at every synaptic layer (else_dse.record.segments) on the shipped MediaPipe models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="the record extra (ai-edge-litert) is not installed")
from ai_edge_litert import schema_py_generated as schema  # noqa: E402

from else_dse.record import RecorderError, record  # noqa: E402
from else_dse.record._common import model_frames  # noqa: E402
from else_dse.record.media import still  # noqa: E402
from else_dse.record.segments import SegmentError, open_segments  # noqa: E402
from else_dse.record.tflite import parse_tflite  # noqa: E402
from shipped import SHIPPED, shipped_model  # noqa: E402
from test_record_tflite import ACT, _conv_nhwc, _interpreter  # noqa: E402

FACE = shipped_model("face_detection_short_range.tflite")


@pytest.fixture(scope="module")
def face():
    return open_segments(FACE)


def frames(seg, names, value_range):
    h, w, c = seg.input_hwc
    return list(model_frames([still(n) for n in names], h, w, c, value_range))


@pytest.mark.parametrize("name, stills", [("face_detection_short_range.tflite", ("astronaut", "camera")),
                                          ("pose_detection.tflite", ("astronaut",)),
                                          ("pose_landmark_full.tflite", ("coffee",))])
def test_unchanged_run_is_bit_exact(name, stills):
    """consume=None: outputs are the runtime's whole-model run and inputs record()'s, bit for bit."""
    path, value_range = shipped_model(name), SHIPPED[name]
    seg = open_segments(path)
    rec = record(path, [still(n) for n in stills], value_range=value_range, progress_bar=False)
    assert seg.layers == rec.layers
    assert seg.segments < len(seg.layers) + 1  # consume steps of one tensor share a cut
    for k, x in enumerate(frames(seg, stills, value_range)):
        run, full = seg.run(x), seg.run_full(x)
        assert list(run.outputs) == list(seg.output_names) == list(full)
        for out in seg.output_names:
            assert run.outputs[out].dtype == full[out].dtype == np.float32
            np.testing.assert_array_equal(run.outputs[out], full[out], err_msg=out)
        assert list(run.inputs) == [la.name for la in seg.layers]
        for layer in seg.layers:
            np.testing.assert_array_equal(run.inputs[layer.name], rec.tensor(layer.input)[k], err_msg=layer.name)
        same = seg.run(x, lambda i, layer, a: a.copy())  # returning the exact input changes nothing
        for out in seg.output_names:
            np.testing.assert_array_equal(same.outputs[out], full[out], err_msg=out)


def _head_block(g, kinds, readers, outputs, t):
    """``(output name, offset)`` of a head: RESHAPE, then a CONCATENATION that is a model output."""
    ops = g.operators
    reshaped = int(ops[readers[t][0]].outputs[0])
    nxt = readers.get(reshaped, [])
    if len(nxt) != 1 or kinds[nxt[0]] != "CONCATENATION" or int(ops[nxt[0]].outputs[0]) not in outputs:
        return None
    ins = [int(v) for v in ops[nxt[0]].inputs]
    offset = sum(int(np.prod(g.tensors[v].shape)) for v in ins[:ins.index(reshaped)])
    return outputs[int(ops[nxt[0]].outputs[0])], offset


ACTS = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}


def _op_names(model):
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = [model.operatorCodes[op.opcodeIndex] for op in model.subgraphs[0].operators]
    return [names[max(oc.builtinCode, oc.deprecatedBuiltinCode)] for oc in codes]


def check_by_hand(seg, x, run, fed, reconstruction):
    """Recompute in numpy each layer's output from the array that layer was fed, follow it through RELU and
    through an ADD whose other input is a recorded tensor (the exact tensor, or in reconstruction mode the
    array fed to its first layer; the ADD's fused activation applied), and compare with the next layer's
    input, a model output, or a head's block of one (RESHAPE + CONCATENATION at its offset). Returns the
    names of the layers checked."""
    parsed, _, _ = parse_tflite(seg.path)
    model = schema.ModelT.InitFromPackedBuf(seg.path.read_bytes(), 0)
    ops, kinds = model.subgraphs[0].operators, _op_names(model)
    readers: dict[int, list[int]] = {}
    for j, op in enumerate(ops):
        for t in op.inputs:
            readers.setdefault(int(t), []).append(j)
    first: dict[int, str] = {}
    for tl in parsed:
        first.setdefault(tl.read_index, tl.layer.name)
    it = _interpreter(seg.path)  # dequantized weights and biases
    it.set_tensor(it.get_input_details()[0]["index"], x[None])
    it.invoke()
    g = model.subgraphs[0]
    outputs = {int(t): seg.output_names[k] for k, t in enumerate(g.outputs)}
    checked = []
    for tl in parsed:
        op = ops[tl.info["op_index"]]
        w = it.get_tensor(op.inputs[1]).astype(np.float64)
        b = it.get_tensor(op.inputs[2]).astype(np.float64)
        y = ACT[tl.info["activation"]](_conv_nhwc(fed[tl.layer.name].astype(np.float64), w, b, tl.layer))
        t = tl.output_index
        while t not in first and len(readers.get(t, [])) == 1 and kinds[readers[t][0]] in ("RELU", "ADD"):
            nxt = ops[readers[t][0]]
            if kinds[readers[t][0]] == "ADD":
                other = int(nxt.inputs[1] if nxt.inputs[0] == t else nxt.inputs[0])
                if other not in first:
                    break
                y = y + (fed if reconstruction else run.inputs)[first[other]]
                y = ACT[ACTS[int(nxt.builtinOptions.fusedActivationFunction)]](y)
            else:
                y = np.maximum(y, 0)
            t = int(nxt.outputs[0])
        if t in first:
            got = run.inputs[first[t]].astype(np.float64)
        elif t in outputs:  # a model output itself
            y = y.transpose(1, 2, 0).reshape(-1)
            got = run.outputs[outputs[t]].reshape(-1).astype(np.float64)
        elif kinds[readers[t][0]] == "RESHAPE" and (block := _head_block(g, kinds, readers, outputs, t)):
            name, offset = block
            y = y.transpose(1, 2, 0).reshape(-1)
            got = run.outputs[name].reshape(-1)[offset:offset + y.size].astype(np.float64)
        else:
            continue
        np.testing.assert_allclose(got, y, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(y).max())),
                                   err_msg=tl.layer.name)
        checked.append(tl.layer.name)
    return checked


@pytest.mark.parametrize("nonsynaptic", ["exact", "reconstruction"])
def test_each_layer_computes_on_its_own_array(face, nonsynaptic):
    """A consume giving every layer its own perturbed array, checked by hand in numpy. BlazeFace's
    activation_11 feeds depthwise_23 (3x3, stride 2) and conv_33 / conv_35 (1x1, stride 1)."""
    x = frames(face, ("astronaut",), (-1.0, 1.0))[0]
    rng = np.random.default_rng(0)
    fed: dict[str, np.ndarray] = {}

    def consume(i, layer, a):
        assert layer is face.layers[i] and not a.flags.writeable
        fed[layer.name] = (a + rng.normal(0, 0.1 * (1 + i % 3), a.shape)).astype(np.float32)
        return fed[layer.name]

    run = face.run(x, consume, nonsynaptic=nonsynaptic)
    assert list(fed) == [la.name for la in face.layers]  # visited once each, in network order
    exact = face.run(x)
    readers = [la for la in face.layers if la.input == "activation_11"]
    assert [(la.name, la.stride) for la in readers] == [("depthwise_23", (2, 2)), ("conv_33", (1, 1)),
                                                         ("conv_35", (1, 1))]
    assert len({fed[la.name].tobytes() for la in readers}) == 3
    assert not any(np.array_equal(run.inputs[la.name], exact.inputs[la.name]) for la in face.layers[1:])
    checked = check_by_hand(face, x, run, fed, nonsynaptic == "reconstruction")
    assert {la.name for la in readers} <= set(checked)
    # the 11 others add into a skip that goes through a channel PAD or MAX_POOL_2D: not followed here
    assert len(checked) == 26, sorted(set(la.name for la in face.layers) - set(checked))


@pytest.mark.parametrize("name, nonsynaptic, n_checked", [("pose_detection.tflite", "exact", 66),
                                                         ("pose_landmark_full.tflite", "reconstruction", 84)])
def test_folded_pads_pad_each_layers_own_array(name, nonsynaptic, n_checked):
    """The pose networks' zero PADs are folded into the convs they feed (one PAD feeds two convs in
    the detector): each conv pads the array it was fed, as numpy's zero padding does."""
    seg = open_segments(shipped_model(name))
    x = frames(seg, ("astronaut",), SHIPPED[name])[0]
    rng = np.random.default_rng(7)
    fed: dict[str, np.ndarray] = {}

    def consume(i, layer, a):
        fed[layer.name] = (a + rng.normal(0, 0.05, a.shape)).astype(np.float32)
        return fed[layer.name]

    run = seg.run(x, consume, nonsynaptic=nonsynaptic)
    checked = check_by_hand(seg, x, run, fed, nonsynaptic == "reconstruction")
    folded = [tl.layer.name for tl in parse_tflite(seg.path)[0] if "folded_pad" in tl.info]
    assert folded and set(folded) <= set(checked)
    assert len(checked) == n_checked


def test_reconstruction_mode_with_exact_arrays_changes_nothing(face):
    x = frames(face, ("camera",), (-1.0, 1.0))[0]
    ident = face.run(x, lambda i, layer, a: a.copy(), nonsynaptic="reconstruction")
    exact = face.run(x)
    for out in face.output_names:
        np.testing.assert_array_equal(ident.outputs[out], exact.outputs[out])
    for layer in face.layers:
        np.testing.assert_array_equal(ident.inputs[layer.name], exact.inputs[layer.name])


def test_bad_inputs_fail_in_one_line(face, tmp_path):
    x = frames(face, ("astronaut",), (-1.0, 1.0))[0]
    cases = [
        (lambda: open_segments(tmp_path / "absent.tflite"), FileNotFoundError, "absent.tflite: no such model"),
        (lambda: open_segments(tmp_path / "notes.txt"), SegmentError, "unsupported model suffix '.txt'"),
        (lambda: face.run(x[:64]), RecorderError, r"frame: float frame of shape \(64, 128, 3\).*\(128, 128, 3\)"),
        (lambda: face.run(still("astronaut")), RecorderError, "frame: dtype uint8"),
        (lambda: face.run(np.full_like(x, np.nan)), RecorderError, "frame: non-finite"),
        (lambda: face.run(x, lambda i, la, a: a[:, :-1]), SegmentError,
         r"layer 'conv_00' \(layer 0\): consume returned dtype float32 shape \(3, 127, 128\)"),
        (lambda: face.run(x, lambda i, la, a: a.astype(np.float64)), SegmentError, "consume returned dtype float64"),
        (lambda: face.run(x, lambda i, la, a: None), SegmentError, "consume returned NoneType"),
        (lambda: face.run(x, lambda i, la, a: np.where(i == 5, np.nan, a).astype(np.float32)), SegmentError,
         r"layer 'depthwise_05' \(layer 5\): consume returned non-finite"),
        (lambda: face.run(x, nonsynaptic="recon"), SegmentError, "nonsynaptic must be one of"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match) as info:
            call()
        assert "\n" not in str(info.value), str(info.value)


def test_a_cut_that_cannot_be_made(tmp_path):
    """A model keeping state in a variable tensor cannot be split into subgraphs: said by name."""
    model = schema.ModelT.InitFromPackedBuf(FACE.read_bytes(), 0)
    g = model.subgraphs[0]
    t = int(g.operators[0].outputs[0])
    g.tensors[t].isVariable = True
    import flatbuffers

    b = flatbuffers.Builder(1 << 20)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    path = tmp_path / "variable.tflite"
    path.write_bytes(bytes(b.Output()))
    with pytest.raises(SegmentError, match=rf"cannot cut: tensor {t} '.*' is a variable"):
        open_segments(path)


_MP = importlib.util.find_spec("mediapipe")  # models not shipped in data/models come from its wheel


@pytest.mark.skipif(_MP is None, reason="mediapipe==0.10.21 (model files only) is not installed")
@pytest.mark.parametrize("rel", ["hand_landmark/hand_landmark_lite.tflite",  # FULLY_CONNECTED layers
                                 "face_detection/face_detection_full_range_sparse.tflite"])  # DENSIFY weights
def test_other_mediapipe_models_are_bit_exact(rel):
    seg = open_segments(Path(list(_MP.submodule_search_locations)[0]) / "modules" / rel)
    x = np.random.default_rng(1).uniform(-1, 1, seg.input_hwc).astype(np.float32)
    run, full = seg.run(x), seg.run_full(x)
    rec = record(seg.path, [x], progress_bar=False)
    for out in seg.output_names:
        np.testing.assert_array_equal(run.outputs[out], full[out], err_msg=out)
    for layer in seg.layers:
        np.testing.assert_array_equal(run.inputs[layer.name], rec.tensor(layer.input)[0], err_msg=layer.name)
    perturbed = seg.run(x, lambda i, layer, a: (a * 0.5).astype(np.float32))
    assert all(np.isfinite(o).all() for o in perturbed.outputs.values())


@pytest.mark.skipif(_MP is None, reason="mediapipe==0.10.21 (model files only) is not installed")
def test_custom_op_model_fails_in_one_line():
    modules = Path(list(_MP.submodule_search_locations)[0]) / "modules"
    seg = open_segments(modules / "selfie_segmentation" / "selfie_segmentation.tflite")
    with pytest.raises(SegmentError, match="unresolved custom op: Convolution2DTransposeBias.*"
                                           "CUSTOM:Convolution2DTransposeBias") as info:
        seg.run(np.zeros(seg.input_hwc, np.float32))
    assert "\n" not in str(info.value)
