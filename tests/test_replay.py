"""Closed-loop replay (``else_dse.record.replay``).

The plan step alone (:class:`Deployed`: quantize with pinned scales,
reconstruct through the kernels with temporal state, dequantize) frame by
frame against one pass of the kernels and ``count_events``; then the whole
replay on real runtimes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from else_dse import Layer, Recording
from else_dse import schemes as S
from else_dse.events import count_events, reconstruct
from else_dse.record.replay import Deployed
from else_dse.recording import codes_of, dequantize_codes


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([2, 4, 8, 12, 16]), st.sampled_from(["normal", "ties", "wide"]))
def test_codes_of_kernel_is_the_numpy_arithmetic(seed, bits, kind):
    """float32 inputs take the one-pass kernel: the same codes as float64 numpy, ties to even,
    clipping; dequantize_codes likewise."""
    rng = np.random.default_rng(seed)
    scale = float(rng.uniform(1e-4, 2.0))
    zp = int(rng.integers(0, 2 ** bits))
    n = int(rng.integers(1, 300))
    if kind == "ties":  # exact half steps (as far as float32 holds them)
        x = ((rng.integers(-300, 300, n) + 0.5) * scale).astype(np.float32)
    elif kind == "wide":
        x = (rng.standard_normal(n) * scale * 2 ** bits * 3).astype(np.float32)
    else:
        x = (rng.standard_normal(n) * scale * 20).astype(np.float32)
    x = x.reshape(1, -1) if n % 2 else x
    want = np.clip(np.rint(x.astype(np.float64) / scale) + zp, 0, 2 ** bits - 1).astype(
        np.uint8 if bits <= 8 else np.uint16)
    got = codes_of(x, scale, zp, bits)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    v = rng.integers(-2**20, 2**20, x.shape).astype(np.int32)
    np.testing.assert_array_equal(dequantize_codes(v, scale), (v.astype(np.float64) * scale).astype(np.float32))


@pytest.mark.parametrize("perm", [(2, 0, 1), (1, 2, 0), (0, 2, 1)])
def test_codes_in_any_memory_order(perm):
    """A permuted float32 view (the runtime's (H, W, C) seen as (C, H, W)) is quantized in
    place with the codes of its contiguous copy; dequantize_codes writes into an out= of
    any memory order the values it returns by default."""
    rng = np.random.default_rng(7)
    base = (rng.standard_normal((5, 6, 7)) * 3).astype(np.float32)
    x = base.transpose(perm)
    got = codes_of(x, 0.02, 100, 8)
    np.testing.assert_array_equal(got, codes_of(np.ascontiguousarray(x), 0.02, 100, 8))
    assert got.transpose(np.argsort(perm)).flags.c_contiguous  # x's memory order
    strided = codes_of(base[:, ::2], 0.02, 100, 8)  # not contiguous in any order: a copy
    np.testing.assert_array_equal(strided, codes_of(np.ascontiguousarray(base[:, ::2]), 0.02, 100, 8))
    v = got.astype(np.int32) - 100
    out = np.empty_like(x)
    assert dequantize_codes(v, 0.02, out=out) is out and not out.flags.c_contiguous
    np.testing.assert_array_equal(out, dequantize_codes(v, 0.02))
    with pytest.raises(ValueError, match="out must be float32 of shape"):
        dequantize_codes(v, 0.02, out=np.empty(v.shape, np.float64))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 70), st.integers(1, 9), st.integers(1, 40))
def test_dequantize_channels_last_is_the_numpy_arithmetic(seed, c, h, w):
    """Into a (C, H, W) view of a channels-last array (the TFLite runtime's layout) the values are
    written in one transposing pass (tiles of 64 positions): float32(X * scale) in float64."""
    rng = np.random.default_rng(seed)
    scale = float(rng.uniform(1e-4, 2.0))
    v = rng.integers(-2**20, 2**20, (c, h, w)).astype(np.int32)
    out = np.empty((h, w, c), np.float32).transpose(2, 0, 1)
    assert dequantize_codes(v, scale, out=out) is out
    np.testing.assert_array_equal(out, (v.astype(np.float64) * scale).astype(np.float32))


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


# ---- the whole replay on real runtimes ----------------------------------------------------

from else_dse.events import TemporalState  # noqa: E402
from else_dse.record import RecorderError, media, record, replay  # noqa: E402
from else_dse.record.replay import open_replay  # noqa: E402
from else_dse.tasks import fidelity  # noqa: E402

import reference as ref  # noqa: E402
from onnx_build import save_model  # noqa: E402
from shipped import SHIPPED, shipped_model  # noqa: E402

BLAZEFACE = "face_detection_short_range.tflite"


def _stills(n: int) -> list[np.ndarray]:
    return [media.still(name) for name in ("astronaut", "chelsea", "coffee")[:n]]


@pytest.fixture(scope="module")
def blazeface():
    from else_dse.record.segments import open_segments

    return open_segments(shipped_model(BLAZEFACE))


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_plan_none_is_record_and_the_runtime_bit_for_bit(name):
    """Without a plan the recording is record()'s and the outputs the runtime's full-model run."""
    from else_dse.record._common import model_frames
    from else_dse.record.segments import open_segments

    path, vr = shipped_model(name), SHIPPED[name]
    frames = _stills(2 if name == BLAZEFACE else 1)
    rep = replay(path, frames, None, value_range=vr, progress_bar=False)
    rec = record(path, frames, value_range=vr, progress_bar=False)
    assert rep.recording.layers == rec.layers and rep.recording.tensors == rec.tensors
    assert type(rep.recording) is type(rec) and rep.stats is None
    for t in rec.tensors:
        a, b = rep.recording.tensor(t), rec.tensor(t)
        assert a.dtype == b.dtype and np.array_equal(a, b), t
    seg = open_segments(path)
    h, w, c = seg.input_hwc
    full = [seg.run_full(x) for x in model_frames(frames, h, w, c, vr)]
    assert set(rep.outputs) == set(full[0]) and rep.reference is rep.outputs
    for k in full[0]:
        want = np.stack([f[k] for f in full])
        assert rep.outputs[k].dtype == want.dtype and np.array_equal(rep.outputs[k], want), k


PLANS = [
    S.LineDelta(threshold=2),
    S.Plan({"conv_00": S.LineDelta(axis="x", direction="reverse", threshold=3, loop="open")},
           default=S.TemporalDelta(threshold=2)),
    S.Plan({"depthwise_01": S.Conventional(tau=2)}, default=S.TemporalDelta(threshold=1, loop="open", tau=1)),
]


@pytest.mark.parametrize("plan", PLANS, ids=["line", "mixed", "temporal_open"])
def test_stats_are_the_kernels_frame_by_frame_counts(blazeface, plan):
    """.stats == count_events(.recording, plan) == the reference recursion on the codes the
    deployed network sent, frame by frame with the temporal state carried."""
    frames = _stills(3)
    rep = replay(blazeface, frames, plan, value_range=(-1, 1), progress_bar=False)
    q = rep.recording
    assert q.bits == 8 and rep.stats.sizes == {"layer": 37, "frame": 3}
    for v in ("events", "sops"):
        np.testing.assert_array_equal(rep.stats[v].values, count_events(q, plan)[v].values)
    schemes = S.as_plan(plan).resolve(q.layers)
    for i, (layer, scheme) in enumerate(zip(q.layers, schemes)):
        X, zp = q.tensor(layer.input), q.zero_point(layer.input)
        state: TemporalState | None = None
        for f in range(3):  # one frame at a time, as the replay ran
            r = reconstruct(X[f:f + 1], layer, scheme, zero_point=zp, state=state)
            state = r.state
            assert int(r.events[0]) == int(rep.stats["events"].values[i, f]), (layer.name, f)
            assert int(r.sops[0]) == int(rep.stats["sops"].values[i, f]), (layer.name, f)
        if i % 9 == 0:  # and the numpy reference on a few layers
            want = ref.reference_for(q.signed(layer.input), layer, scheme)
            np.testing.assert_array_equal(rep.stats["events"].values[i], want.events, err_msg=layer.name)


def test_pinned_scales_and_drift(blazeface):
    """Scales and zero points are the float run's; theta = 0 leaves only quantization; a lossy
    plan drifts further and sends other inputs than the float run."""
    frames = _stills(2)
    base = replay(blazeface, frames, None, value_range=(-1, 1), progress_bar=False)
    pinned = base.recording.quantize(bits=8)
    lossless = replay(blazeface, frames, S.LineDelta(), value_range=(-1, 1), progress_bar=False)
    conv = replay(blazeface, frames, S.Conventional(), value_range=(-1, 1), progress_bar=False)
    lossy = replay(blazeface, frames, S.LineDelta(threshold=4), value_range=(-1, 1), progress_bar=False)
    for t in pinned.tensors:
        assert lossy.recording.scale(t) == pinned.scale(t)
        assert lossy.recording.zero_point(t) == pinned.zero_point(t)
        np.testing.assert_array_equal(lossless.recording.tensor(t), conv.recording.tensor(t))
    first = pinned.tensors[0]  # the model input is exact in every run
    np.testing.assert_array_equal(lossy.recording.tensor(first), pinned.tensor(first))
    for k in base.outputs:
        np.testing.assert_array_equal(lossless.outputs[k], conv.outputs[k])
        np.testing.assert_array_equal(lossy.reference[k], base.outputs[k])
    f0, f4 = fidelity(None, lossless.outputs, lossless.reference), fidelity(None, lossy.outputs, lossy.reference)
    assert all(0 < f0[k] < f4[k] for k in f0 if k.startswith("rel_l2")), (f0, f4)
    last = pinned.tensors[-1]
    assert not np.array_equal(lossy.recording.tensor(last), pinned.tensor(last))


@pytest.mark.parametrize("loop", ["closed", "open"])
def test_temporal_state_across_frames(blazeface, loop):
    """A frame repeated under a temporal delta sends nothing and computes the same outputs: every
    layer's state (sender and receiver) was carried from the frame before."""
    x = _stills(1)[0]
    rep = replay(blazeface, [x, x, x], S.TemporalDelta(threshold=3, loop=loop), value_range=(-1, 1),
                 progress_bar=False)
    ev = rep.stats["events"].values
    assert ev[:, 0].sum() > 0 and not ev[:, 1:].any()
    for k, a in rep.outputs.items():
        np.testing.assert_array_equal(a[1], a[0], err_msg=k)
        np.testing.assert_array_equal(a[2], a[0], err_msg=k)


def test_save_and_stats_on_the_file(blazeface, tmp_path):
    from else_dse import cli, open_recording

    rep = replay(blazeface, _stills(2), S.LineDelta(threshold=1), value_range=(-1, 1), progress_bar=False)
    fid = fidelity(None, rep.outputs, rep.reference)
    path = rep.save(tmp_path / "rep.nc", fidelity=fid)
    rec, outs, refs, fid_back = open_replay(path)
    assert fid_back == pytest.approx(fid)
    for k in rep.outputs:
        np.testing.assert_array_equal(outs[k], rep.outputs[k])
        np.testing.assert_array_equal(refs[k], rep.reference[k])
    back = open_recording(path)
    np.testing.assert_array_equal(count_events(back, S.LineDelta(threshold=1))["events"].values,
                                  rep.stats["events"].values)
    assert cli.main(["stats", str(path), "--scheme", "line_y:1", "-q"]) == 0


def test_bad_inputs_fail_in_one_line(blazeface, tmp_path):
    frames = _stills(1)
    cases = [
        (lambda: replay(tmp_path / "missing.tflite", frames), FileNotFoundError, "missing.tflite"),
        (lambda: replay(blazeface, [np.zeros((64, 64, 3), np.float32)], S.LineDelta(), value_range=(-1, 1),
                        progress_bar=False), RecorderError, r"\(128, 128, 3\)"),
        (lambda: replay(blazeface, frames, S.Plan({"conv_99": S.LineDelta()}), progress_bar=False),
         ValueError, "conv_99"),
        (lambda: replay(blazeface, [], S.LineDelta(), progress_bar=False), RecorderError, "no frames"),
        (lambda: replay(blazeface, frames, S.LineDelta(), nonsynaptic="both"), ValueError, "nonsynaptic"),
        (lambda: replay(blazeface, frames, S.LineDelta(), bits=1), ValueError, "bits"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match) as info:
            call()
        assert "\n" not in str(info.value), str(info.value)


def test_cli_replay_writes_recording_outputs_and_fidelity(tmp_path, capsys):
    from else_dse import cli, open_recording

    model = shipped_model(BLAZEFACE)
    out = tmp_path / "rep.nc"
    argv = ["replay", model, "still:astronaut", "still:coffee", "--value-range", "-1", "1", "--no-progress",
            "--scheme", "line_y:2", "--scheme", "conv_00=temporal:1", "-o", out]
    assert cli.main([str(a) for a in argv]) == 0
    text = capsys.readouterr().out
    assert "closed loop under" in text and "rel_l2[classificators]" in text
    rec, outs, refs, fid = open_replay(out)
    assert rec.n_frames == 2 and set(outs) == {"regressors", "classificators"}
    assert {"rel_l2[regressors]", "rel_l2[classificators]"} <= set(fid)
    assert fid["rel_l2[regressors]"] > 0 and fid["rel_l2[classificators]"] > 0
    assert rec.data.attrs["replay_plan"].startswith("Plan(")
    assert cli.main(["stats", str(out), "--scheme", "line_y:2", "-q"]) == 0
    plan = tmp_path / "plan.toml"
    plan.write_text('default = "line_y:2"\n[layers]\nconv_00 = "temporal:1"\n')
    out2 = tmp_path / "rep2.nc"
    assert cli.main([str(a) for a in argv[:7]] + ["--plan", str(plan), "-o", str(out2)]) == 0
    np.testing.assert_array_equal(open_recording(out2).tensor(rec.tensors[-1]), rec.tensor(rec.tensors[-1]))


def test_cli_replay_mistakes(tmp_path, capsys):
    from else_dse import cli

    model = str(shipped_model(BLAZEFACE))
    bad_plan = tmp_path / "bad.toml"
    bad_plan.write_text('default = "line_y:2"\nextra = 1\n')
    cases = [
        (["replay", str(tmp_path / "no.tflite"), "still:astronaut", "-o", str(tmp_path / "r.nc")],
         "no such model file"),
        (["replay", model, "still:astronaut", "-o", str(tmp_path / "r.zarr")], "must end in .nc"),
        (["replay", model, "still:astronaut", "--scheme", "line_y", "--plan", str(bad_plan), "-o",
          str(tmp_path / "r.nc")], "not both"),
        (["replay", model, "still:astronaut", "--plan", str(bad_plan), "-o", str(tmp_path / "r.nc")],
         "a plan file has"),
        (["replay", model, "still:astronaut", "--scheme", "conv_99=line_y", "--no-progress", "-o",
          str(tmp_path / "r.nc")], "conv_99"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, (argv, err)


# ---- an ONNX model with a skip connection, checked by hand ---------------------------------

def _skip_model(tmp_path):
    """x -> A (3x3) -> relu = a;  a -> B (1x1) = b;  a -> C (3x3, stride 2) = c;
    s = relu(a + b) (skip connection: the Add reads a);  y = D(s) (3x3);  outputs y and c."""
    pytest.importorskip("onnx")
    from onnx import helper

    rng = np.random.default_rng(11)
    w = {"wa": rng.normal(size=(4, 3, 3, 3)), "ba": rng.normal(size=4), "wb": rng.normal(size=(4, 4, 1, 1)),
         "bb": rng.normal(size=4), "wc": rng.normal(size=(5, 4, 3, 3)), "bc": rng.normal(size=5),
         "wd": rng.normal(size=(3, 4, 3, 3)), "bd": rng.normal(size=3)}
    w = {k: (v / 2).astype(np.float32) for k, v in w.items()}
    nodes = [helper.make_node("Conv", ["x", "wa", "ba"], ["a0"], pads=[1, 1, 1, 1], name="A"),
             helper.make_node("Relu", ["a0"], ["a"]),
             helper.make_node("Conv", ["a", "wb", "bb"], ["b"], name="B"),
             helper.make_node("Conv", ["a", "wc", "bc"], ["c"], pads=[0, 0, 1, 1], strides=[2, 2], name="C"),
             helper.make_node("Add", ["a", "b"], ["s0"]),
             helper.make_node("Relu", ["s0"], ["s"]),
             helper.make_node("Conv", ["s", "wd", "bd"], ["y"], pads=[1, 1, 1, 1], name="D")]
    path = save_model(tmp_path, "skip", nodes, w, ["y", "c"], [1, 3, 10, 9])
    return path, w


def _by_hand(w, x, q, layers, scheme, nonsynaptic):
    """The skip model in numpy, each layer on the numpy reference reconstruction of its input."""
    from test_record_onnx import conv_ref

    by_input = {}
    for layer in layers:
        by_input.setdefault(layer.input, []).append(layer)

    def fed(tensor, value, k=0):
        layer = by_input[tensor][k]
        codes = np.clip(np.rint(value.astype(np.float64) / q.scale(tensor)) + q.zero_point(tensor), 0, 255)
        X = codes.astype(np.int64) - q.zero_point(tensor)
        return X, ref.reference_for(X[None], layer, scheme).recon[0] * q.scale(tensor)

    Xx, fx = fed("x", x)
    a = np.maximum(conv_ref(fx, w["wa"], w["ba"], (1, 1), (1, 1, 1, 1), (1, 1), 1), 0)
    Xa, fb = fed("a", a, 0)
    _, fc = fed("a", a, 1)
    b = conv_ref(fb, w["wb"], w["bb"], (1, 1), (0, 0, 0, 0), (1, 1), 1)
    c = conv_ref(fc, w["wc"], w["bc"], (2, 2), (0, 1, 0, 1), (1, 1), 1)
    s = np.maximum((fb if nonsynaptic == "reconstruction" else a) + b, 0)
    Xs, fs = fed("s", s)
    y = conv_ref(fs, w["wd"], w["bd"], (1, 1), (1, 1, 1, 1), (1, 1), 1)
    return {"x": Xx, "a": Xa, "s": Xs}, {"y": y[None], "c": c[None]}


@pytest.mark.parametrize("nonsynaptic", ["exact", "reconstruction"])
def test_onnx_skip_connection_by_hand(tmp_path, nonsynaptic):
    """Closed loop through a skip connection and a tensor with two consumers of different
    strides (ONNX, onnxruntime), against numpy convolutions on the reference reconstructions."""
    pytest.importorskip("onnxruntime")
    path, w = _skip_model(tmp_path)
    rng = np.random.default_rng(2)
    frames = [rng.normal(size=(10, 9, 3)).astype(np.float32) for _ in range(2)]
    scheme = S.LineDelta(threshold=6)
    rep = replay(path, frames, scheme, progress_bar=False, nonsynaptic=nonsynaptic)
    layers, q = rep.recording.layers, rep.recording
    assert [(la.input, la.stride) for la in layers] == [("x", (1, 1)), ("a", (1, 1)), ("a", (2, 2)), ("s", (1, 1))]
    for f, x in enumerate(frames):
        codes, outs = _by_hand(w, x.transpose(2, 0, 1), q, layers, scheme, nonsynaptic)
        for t, X in codes.items():  # float rounding of two runtimes may flip a code, rarely
            diff = np.abs(q.signed(t)[f].astype(np.int64) - X)
            assert diff.max() <= 1 and (diff > 0).mean() < 0.02, (t, f, int(diff.max()))
        for k, want in outs.items():
            got = rep.outputs[k][f].astype(np.float64)
            assert np.linalg.norm(got - want) <= 1e-5 * np.linalg.norm(want), (k, f)
    other = replay(path, frames, scheme, progress_bar=False,
                   nonsynaptic="exact" if nonsynaptic == "reconstruction" else "reconstruction")
    y, y2 = rep.outputs["y"], other.outputs["y"]
    assert np.linalg.norm(y - y2) > 1e-3 * np.linalg.norm(y)  # what the Add reads shows (1.7% here)
    np.testing.assert_array_equal(rep.outputs["c"], other.outputs["c"])
