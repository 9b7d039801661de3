"""How much the replay's zero padding differs from what the exact receiver holds there.

A line delta's needed lines include bottom-padding lines (h >= H), where the
exact receiver holds R_h = R_{h-s} + Dt_h with |R_h| <= theta, not 0. The replay
feeds each layer a (C, H, W) array and the runtime pads it with zeros
(``docs/semantics.md``, Replay). This script measures, per layer of a shipped
network, what the padding lines' R would add to the layer's output:

    delta = conv(W, R on the padding lines)     against     conv(W, R on the real lines)

(no bias; weights read from the model by the TFLite runtime), with the inputs of
the shipped recording (8-bit codes, LineDelta along y, closed loop).

    python scripts/padding_lines.py [--recording data/blazeface_carphone.nc] [--thetas 1 2 4]
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

import else_dse as ed
from else_dse.events import reconstruct
from else_dse.record.tflite import parse_tflite

ROOT = Path(__file__).resolve().parents[1]


def layer_weights(model: Path) -> dict[str, np.ndarray]:
    """``{layer name: (O, I/g, kh, kw) float64}`` of every conv / depthwise layer."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    parsed, _, model_input = parse_tflite(model)
    g = schema.ModelT.InitFromPackedBuf(model.read_bytes(), 0).subgraphs[0]
    interp = Interpreter(model_path=str(model), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    interp.set_tensor(model_input["index"], np.zeros(model_input["shape"], np.float32))
    interp.invoke()
    out = {}
    for tl in parsed:
        w = interp.get_tensor(int(g.operators[tl.info["op_index"]].inputs[1])).astype(np.float64)
        out[tl.layer.name] = w[0].transpose(2, 0, 1)[:, None] if tl.layer.op == "depthwise" \
            else w.transpose(0, 3, 1, 2)
    return out


def conv(x: np.ndarray, w: np.ndarray, layer: ed.Layer) -> np.ndarray:
    """Grouped convolution of ``x`` (C, H + padding, W + padding), already padded."""
    (sh, sw), (dh, dw), (co, ho, wo) = layer.stride, layer.dilation, layer.output_shape
    cig, per = w.shape[1], co // layer.groups
    out = np.zeros((co, ho, wo))
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            patch = x[:, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
            for gi in range(layer.groups):
                sl = slice(gi * per, (gi + 1) * per)
                out[sl] += np.tensordot(w[sl, :, i, j], patch[gi * cig:(gi + 1) * cig], axes=(1, 0))
    return out


def padding_effect(q: ed.QuantizedRecording, layer: ed.Layer, w: np.ndarray, theta: int
                   ) -> tuple[float, float, int]:
    """(||delta|| / ||output||, fraction of padding-line values != 0, padding lines) over frames."""
    c, h, wd = layer.input_shape
    t, b, l, r = layer.padding
    if layer.op == "fc" or b == 0:
        return 0.0, 0.0, 0
    X, zp, scale = q.tensor(layer.input), q.zero_point(layer.input), q.scale(layer.input)
    # the padding lines as real zero lines: the recursion (and so R) over them is the same
    ext = dataclasses.replace(layer, input_shape=(c, h + b, wd), padding=(t, 0, l, r))
    Xe = np.full((X.shape[0], c, h + b, wd), zp, X.dtype)
    Xe[:, :, :h] = X
    R = reconstruct(Xe, ext, ed.LineDelta(threshold=theta), zero_point=zp).values * scale
    num = den = 0.0
    for f in range(X.shape[0]):
        pad = np.zeros((c, t + h + b, l + wd + r))
        pad[:, t + h:, l:l + wd] = R[f, :, h:]
        real = np.zeros_like(pad)
        real[:, t:t + h, l:l + wd] = R[f, :, :h]
        num += float((conv(pad, w, layer) ** 2).sum())
        den += float((conv(real, w, layer) ** 2).sum())
    nz = float((R[:, :, h:] != 0).mean())
    return (np.sqrt(num / den) if den else 0.0), nz, b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recording", default=str(ROOT / "data" / "blazeface_carphone.nc"))
    ap.add_argument("--model", default=str(ROOT / "data" / "models" / "face_detection_short_range.tflite"))
    ap.add_argument("--thetas", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args()
    q = ed.open_recording(args.recording).quantize(bits=8)
    weights = layer_weights(Path(args.model))
    for theta in args.thetas:
        rows = [(la.name, *padding_effect(q, la, weights[la.name], theta)) for la in q.layers]
        rows = [r for r in rows if r[3]]
        worst = max(rows, key=lambda r: r[1])
        print(f"theta={theta}: {len(rows)} of {len(q.layers)} layers have bottom-padding lines; "
              f"||delta||/||out|| mean {np.mean([r[1] for r in rows]):.2e}, worst {worst[1]:.2e} "
              f"({worst[0]}); padding values != 0: mean {np.mean([r[2] for r in rows]):.1%}")


if __name__ == "__main__":
    main()
