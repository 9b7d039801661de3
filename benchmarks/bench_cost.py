"""Benchmark: one cost estimate of a 76-layer network (target <= 2 ms).

Times a synthetic 76-layer BlazePose-like network (256x256 input,
depthwise-separable blocks) and, when ``data/poselandmark_stills.nc`` exists,
the shipped pose landmark network's geometry (96 synaptic layers), both with
synthetic event counts so no kernel run is timed. Reports the median and best
time per estimate for:

* ``same hardware``   -- the steady state of a study sweeping plans;
* ``new hardware``    -- ``sram_per_core`` changes every call (the mapping is recomputed);
* ``spread=True``     -- free cores handed out (no effect when the network does not fit);
* ``cold geometry``   -- the parsed-geometry cache cleared before every call;

and, as the in-run baseline the ratios refer to, one ``stats.mean("frame")``
(an xarray reduction over the same stats).

    python benchmarks/bench_cost.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import xarray as xr

import else_dse as ed
from else_dse.cost import _geometry_from_json

ROOT = Path(__file__).resolve().parents[1]


def synthetic_network() -> list[ed.Layer]:
    """76 layers: a stem conv, 37 depthwise-separable blocks (dw 3x3 + pw 1x1), a 1x1 head."""
    layers = [ed.Layer("stem", "t0", "conv", 3, 24, kernel=3, stride=2, padding=(0, 1, 0, 1),
                       input_shape=(3, 256, 256))]
    c, h = 24, 128
    plan = [(24, 1)] * 3 + [(48, 2)] + [(48, 1)] * 5 + [(96, 2)] + [(96, 1)] * 7 + [(192, 2)] \
        + [(192, 1)] * 9 + [(288, 2)] + [(288, 1)] * 9
    for i, (co, s) in enumerate(plan[:37]):
        pad = (0, 1, 0, 1) if s == 2 else (1, 1, 1, 1)
        dw = ed.Layer(f"dw{i}", f"t{2 * i + 1}", "depthwise", c, c, kernel=3, stride=s, padding=pad,
                      groups=c, input_shape=(c, h, h))
        h = dw.output_shape[1]
        pw = ed.Layer(f"pw{i}", f"t{2 * i + 2}", "conv", c, co, kernel=1, input_shape=(c, h, h))
        layers += [dw, pw]
        c = co
    layers.append(ed.Layer("head", "t75", "conv", c, 39, kernel=1, input_shape=(c, h, h)))
    assert len(layers) == 76
    return layers


def networks() -> list[tuple[list[ed.Layer], str]]:
    """The synthetic 76-layer network, and the pose landmark network when shipped."""
    out = [(synthetic_network(), "synthetic BlazePose-like (76 layers)")]
    path = ROOT / "data" / "poselandmark_stills.nc"
    if path.exists():
        rec = ed.open_recording(path)
        out.append((list(rec.layers), f"{path.stem} geometry ({len(rec.layers)} layers)"))
    else:
        print(f"note: {path} not found; timing the synthetic network only")
    return out


def make_stats(layers: list[ed.Layer], frames: int = 8, seed: int = 0) -> xr.Dataset:
    """Stats with the layout of count_events: line delta in the first 10 layers, temporal after."""
    rng = np.random.default_rng(seed)
    n = len(layers)
    kinds = ["line_delta" if i < 10 and l.op != "fc" else "temporal_delta" for i, l in enumerate(layers)]
    dense = np.array([l.dense_events for l in layers])[:, None]
    events = (dense * rng.uniform(0.05, 0.4, (n, frames))).astype(np.int64)
    fan = np.array([l.dense_macs / l.dense_events for l in layers])[:, None]
    sops = (events * fan).astype(np.int64)
    return xr.Dataset(
        {"events": (("layer", "frame"), events), "sops": (("layer", "frame"), sops)},
        coords={"layer": [l.name for l in layers], "frame": np.arange(frames),
                "scheme": ("layer", kinds), "axis": ("layer", ["y" if k == "line_delta" else "" for k in kinds]),
                "direction": ("layer", ["forward" if k == "line_delta" else "" for k in kinds]),
                "op": ("layer", [l.op for l in layers])},
        attrs={"layers": json.dumps([l.to_dict() for l in layers])})


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=200)
    args = ap.parse_args()
    hw = ed.load_template("loihi2").replace(execution="event")
    print(f"{'network / case':58s} {'median ms':>10s} {'best ms':>8s} {'x baseline':>10s}")
    verdict = []
    for layers, what in networks():
        stats = make_stats(layers)
        srams = iter(np.linspace(1e5, 4e5, args.repeat * 4 + 8).astype(int).tolist())

        def cold():
            _geometry_from_json.cache_clear()
            ed.estimate(stats, hw)

        cases = {
            "same hardware": lambda: ed.estimate(stats, hw),
            "new hardware": lambda: ed.estimate(stats, hw.replace(sram_per_core=next(srams))),
            "spread=True": lambda: ed.estimate(stats, hw, spread=True),
            "cold geometry": cold,
            "baseline stats.mean('frame')": lambda: stats.mean("frame"),
        }
        res = {name: timed(fn, args.repeat) for name, fn in cases.items()}
        base = res["baseline stats.mean('frame')"][0]
        r = ed.estimate(stats, hw)
        print(f"{what}: {stats.sizes['frame']} frames, loihi2 (event), {int(r['total_cores'])} cores, "
              f"fits={bool(r['fits'])}")
        for name, (med, best) in res.items():
            print(f"  {name:56s} {med * 1e3:10.3f} {best * 1e3:8.3f} {med / base:10.2f}")
        verdict.append(f"{what}: {res['same hardware'][0] * 1e3:.3f} ms median, "
                       f"{res['same hardware'][1] * 1e3:.3f} ms best")
    print("target <= 2 ms per estimate of a 76-layer network; " + "; ".join(verdict))


if __name__ == "__main__":
    main()
