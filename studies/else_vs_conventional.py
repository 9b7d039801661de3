"""How many events and SOPs does ELSE save over conventional processing?

For every shipped network recording, at 8, 6 and 4 bits (per-tensor max
calibration, re-quantized from the stored values) and delta thresholds
theta = 0, 1, 2, 4 code steps (closed loop, forward scan, no activation
threshold), the reduction of events and SOPs of ELSE line deltas over
conventional zero skipping, summed over all layers and frames:

- ``y``: every layer scans along y;
- ``x``: every layer scans along x;
- ``best``: per layer the axis with fewer events over the whole recording
  (one plan; its SOPs are those of that plan).

fc layers (none in the shipped detection / pose networks) keep conventional
processing in the ELSE plans. The error columns are the worst ``max_error``
(code steps) and the mean ``rel_error`` over layers and frames of the ``best``
plan (closed loop: ``max_error <= theta`` by construction).

Writes ``reports/else_vs_conventional/{summary,layers}.csv`` and prints a table
beside the paper's ranges (Zhu et al., ECCV 2024: 3.14-6.49x fewer
event-triggered computations for object detection, 2.43-5.75x for pose
estimation, conditions not stated in the abstract).

    python studies/else_vs_conventional.py [--bits 8 6 4] [--thresholds 0 1 2 4] [--frames N]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import xarray as xr

import else_dse as ed

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "else_vs_conventional"

# network recording -> (task, paper range of the reduction for that task)
NETWORKS = {
    "blazeface_carphone": ("detection", (3.14, 6.49)),
    "posedet_carphone": ("detection", (3.14, 6.49)),
    "poselandmark_carphone": ("pose", (2.43, 5.75)),
    "poselandmark_stills": ("pose", (2.43, 5.75)),
}


def else_plan(rec: ed.Recording, axis: str, theta: int) -> ed.Plan:
    fc = {layer.name: ed.Conventional() for layer in rec.layers if layer.op == "fc"}
    return ed.Plan(fc, default=ed.LineDelta(axis=axis, threshold=theta))


def best_axis(y: xr.Dataset, x: xr.Dataset) -> xr.Dataset:
    """Per layer, the dataset (y or x) with fewer events over all frames."""
    use_y = y["events"].sum("frame") <= x["events"].sum("frame")
    return xr.where(use_y, y, x, keep_attrs=True).assign_coords(axis=xr.where(use_y, y["axis"], x["axis"]))


def study(name: str, rec: ed.Recording, bits_list: list[int], thetas: list[int]) -> tuple[list, list]:
    task, paper = NETWORKS.get(name, ("?", (float("nan"), float("nan"))))
    summary, per_layer = [], []
    for bits in bits_list:
        q = rec.quantize(bits=bits)
        conv = ed.count_events(q, ed.Conventional())
        ce, cs = int(conv["events"].sum()), int(conv["sops"].sum())
        for theta in thetas:
            y = ed.count_events(q, else_plan(rec, "y", theta))
            x = ed.count_events(q, else_plan(rec, "x", theta))
            b = best_axis(y, x)
            row = {"network": name, "task": task, "bits": bits, "theta": theta,
                   "frames": q.n_frames, "layers": len(q.layers),
                   "conv_events_per_frame": ce / q.n_frames, "conv_sops_per_frame": cs / q.n_frames}
            for key, ds in (("y", y), ("x", x), ("best", b)):
                row[f"event_reduction_{key}"] = ce / max(int(ds["events"].sum()), 1)
                row[f"sop_reduction_{key}"] = cs / max(int(ds["sops"].sum()), 1)
            row["best_axis_x_layers"] = int((b["axis"] == "x").sum())
            row["max_error_best"] = float(b["max_error"].max())
            row["mean_rel_error_best"] = float(b["rel_error"].mean())
            row["paper_low"], row["paper_high"] = paper
            summary.append(row)
            for layer in q.layers:
                c, yy, xx = (d.sel(layer=layer.name) for d in (conv, y, x))
                per_layer.append({
                    "network": name, "bits": bits, "theta": theta, "layer": layer.name,
                    "op": layer.op, "input_shape": "x".join(map(str, layer.input_shape)),
                    "stride": "x".join(map(str, layer.stride)), "kernel": "x".join(map(str, layer.kernel)),
                    "conv_events": int(c["events"].sum()), "y_events": int(yy["events"].sum()),
                    "x_events": int(xx["events"].sum()), "conv_sops": int(c["sops"].sum()),
                    "y_sops": int(yy["sops"].sum()), "x_sops": int(xx["sops"].sum()),
                    "dense_events": int(c["dense_events"].sum()),
                    "y_max_error": float(yy["max_error"].max()), "x_max_error": float(xx["max_error"].max()),
                    "y_rel_error": float(yy["rel_error"].mean()), "x_rel_error": float(xx["rel_error"].mean()),
                })
    return summary, per_layer


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def print_table(rows: list[dict]) -> None:
    print(f"\n{'network':22s} {'bits':>4s} {'theta':>5s} | {'events: y':>9s} {'x':>6s} {'best':>6s} | "
          f"{'SOPs: y':>7s} {'x':>6s} {'best':>6s} | {'max err':>7s} {'rel err':>7s} | paper range")
    for r in rows:
        lo, hi = r["paper_low"], r["paper_high"]
        best = r["event_reduction_best"]
        mark = "in" if lo <= best <= hi else ("above" if best > hi else "below")
        print(f"{r['network']:22s} {r['bits']:4d} {r['theta']:5d} | {r['event_reduction_y']:8.2f}x "
              f"{r['event_reduction_x']:5.2f}x {best:5.2f}x | {r['sop_reduction_y']:6.2f}x "
              f"{r['sop_reduction_x']:5.2f}x {r['sop_reduction_best']:5.2f}x | {r['max_error_best']:7.0f} "
              f"{r['mean_rel_error_best']:7.3f} | {lo:.2f}-{hi:.2f}x {r['task']} ({mark})")


def conditions(rows: list[dict]) -> None:
    """Where (if anywhere) each network reaches its paper range, by event reduction of ``best``."""
    print("\nWhere the paper's range is reached (event reduction, best axis per layer):")
    for name in dict.fromkeys(r["network"] for r in rows):
        mine = [r for r in rows if r["network"] == name]
        lo = mine[0]["paper_low"]
        red = [r["event_reduction_best"] for r in mine]
        lossless8 = [r for r in mine if r["bits"] == max(m["bits"] for m in mine) and r["theta"] == 0]
        reached = sorted((r for r in mine if r["event_reduction_best"] >= lo),
                         key=lambda r: (-r["bits"], r["theta"]))
        base = (f"lossless at {lossless8[0]['bits']} bits: {lossless8[0]['event_reduction_best']:.2f}x"
                if lossless8 else "")
        if reached:
            r = reached[0]
            where = (f"first reached at {r['bits']} bits, theta={r['theta']} "
                     f"({r['event_reduction_best']:.2f}x, mean rel error {r['mean_rel_error_best']:.3f})")
        else:
            where = "not reached in this grid"
        print(f"  {name}: measured {min(red):.2f}-{max(red):.2f}x; {base}; {where}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4])
    ap.add_argument("--thresholds", type=int, nargs="+", default=[0, 1, 2, 4])
    ap.add_argument("--frames", type=int, default=0, help="use only the first N frames (0: all)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    summary, per_layer = [], []
    t0 = time.perf_counter()
    for name in NETWORKS:
        path = ROOT / "data" / f"{name}.nc"
        if not path.exists():
            print(f"skipping {name}: {path} not found")
            continue
        rec = ed.open_recording(path)
        if args.frames:
            rec = rec.select_frames(range(min(args.frames, rec.n_frames)))
        print(f"{name}: {len(rec.layers)} layers, {rec.n_frames} frames ({rec.attrs.get('source', '')})")
        s, p = study(name, rec, args.bits, args.thresholds)
        summary += s
        per_layer += p
    if not summary:
        print("no shipped recordings found; nothing to do")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "summary.csv", summary)
    write_csv(args.out / "layers.csv", per_layer)
    print_table(summary)
    conditions(summary)
    print(f"\nConditions: per-tensor max calibration re-quantized from the stored 8-bit values; "
          f"closed loop, forward scan, tau=0; reductions = sum over all layers and frames of "
          f"conventional / ELSE. {time.perf_counter() - t0:.0f} s. CSV: {args.out}/summary.csv, layers.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
