"""Per-frame time of a model cut at every synaptic layer against the runtime's own whole-model run.

For each shipped model (``data/models/*.tflite``) and ONNX models (``--onnx FILE``; by
default SqueezeNet and ResNet-50 from the onnx wheel's test data, if present),
measured in the same run, on the same prepared frame (scikit-image
``astronaut``), interleaved so that load on the shared machine hits all alike:

- ``full``: the runtime's own whole-model inference (``SegmentedModel.run_full``:
  LiteRT builtin kernels without XNNPACK, default thread count; onnxruntime
  without graph optimizations, one thread);
- ``cut``: ``SegmentedModel.run(x)`` (every layer fed its exact input);
- ``cut+consume``: ``run(x, consume)`` with a consumer returning a copy of each
  layer's input (adds the NHWC <-> CHW transposes and the checks of its array);
- ``cut+recon``: the same in ``nonsynaptic="reconstruction"`` mode.

Times are process CPU times (the runtimes run one thread here; the machine is
shared, wall time says more about the neighbours), median of ``--repeat``
frames after one warm-up; ratios are against ``full`` of the same model.

    python benchmarks/bench_segments.py [--repeat 20] [--onnx model.onnx ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from else_dse.record._common import model_frames  # noqa: E402
from else_dse.record.media import still  # noqa: E402
from else_dse.record.segments import open_segments  # noqa: E402

MODELS = {"face_detection_short_range.tflite": (-1.0, 1.0), "pose_detection.tflite": (-1.0, 1.0),
          "pose_landmark_full.tflite": (0.0, 1.0)}
ONNX_LIGHT = ("light_squeezenet.onnx", "light_resnet50.onnx")


def _copy(i: int, layer: object, a: np.ndarray) -> np.ndarray:
    return a.copy()


def bench(path: Path, value_range: tuple[float, float], repeat: int) -> dict[str, float]:
    t0 = time.perf_counter()
    seg = open_segments(path)
    seg.plan("exact")
    opened = time.perf_counter() - t0
    h, w, c = seg.input_hwc
    x = next(model_frames([still("astronaut")], h, w, c, value_range))
    runs: dict[str, Callable[[], object]] = {
        "full": lambda: seg.run_full(x),
        "cut": lambda: seg.run(x),
        "cut+consume": lambda: seg.run(x, _copy),
        "cut+recon": lambda: seg.run(x, _copy, nonsynaptic="reconstruction"),
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for f in runs.values():
        f()  # warm-up (builds the reconstruction-mode segments once)
    for _ in range(repeat):
        for k, f in runs.items():
            t = time.process_time()
            f()
            times[k].append(time.process_time() - t)
    out = {k: float(np.median(v)) * 1e3 for k, v in times.items()}
    out["segments"] = seg.segments
    out["layers"] = len(seg.layers)
    out["open_s"] = opened
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--onnx", nargs="*", default=[], type=Path, help="ONNX models to time as well ([0, 1] input)")
    args = ap.parse_args(argv)
    models = [(ROOT / "data" / "models" / n, vr) for n, vr in MODELS.items()] + [(p, (0.0, 1.0)) for p in args.onnx]
    try:  # ONNX zoo models shipped in the onnx wheel (weights are constant fills; fine for timing)
        import onnx

        light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
        models += [(light / n, (0.0, 1.0)) for n in ONNX_LIGHT if (light / n).is_file() and not args.onnx]
    except ImportError:
        pass
    print(f"{'model':<36} {'layers':>6} {'segs':>5} {'open s':>6} {'full ms':>8} {'cut':>12} "
          f"{'cut+consume':>14} {'cut+recon':>14}")
    for path, vr in models:
        r = bench(path, vr, args.repeat)
        ratio = {k: r[k] / r["full"] for k in ("cut", "cut+consume", "cut+recon")}
        print(f"{path.name:<36} {r['layers']:>6} {r['segments']:>5} {r['open_s']:>6.2f} {r['full']:>8.1f} "
              + " ".join(f"{r[k]:>7.1f} {ratio[k]:>4.2f}x" for k in ("cut", "cut+consume", "cut+recon")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
