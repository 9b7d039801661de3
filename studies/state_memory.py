"""State memory of temporal delta versus line delta in the first k layers.

Question (ELSE paper, Zhu et al., ECCV 2024): combining ELSE with temporal
suppression "reduces state memory footprint by > 2x". For every shipped
network this study compares

* ``temporal``: temporal delta in every layer (persistent state: the sender's
  reference C*H*W and the consumer's potentials C_out*H_out*W_out per layer), and
* ``line<k>``: line delta along y in the first k conv/depthwise layers (fc layers
  cannot take line delta and stay temporal), temporal delta in the rest,

reporting per plan the persistent state, the within-frame state (neuron-mapped
and line-streaming accounting, see ``else_dse.cost.state_words``) and the mean
SOPs per frame, with the reduction factors against all-temporal beside the
paper's ">2x". Both schemes are lossless (threshold 0), so the schemes only
trade SOPs for state.

Per-layer counts do not depend on the other layers' schemes (every layer reads
its own recorded input), so the study counts each network twice (all temporal,
all line delta) and assembles every plan from those rows.

    python studies/state_memory.py [--frames 40] [--template neuronflow] [--out reports/state_memory]

Writes ``state_memory.csv`` (one row per network and k) and
``state_memory_layers.csv`` (per-layer state of the two extremes).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import else_dse as ed
from else_dse.events import LayerStats, stats_dataset

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("blazeface_carphone", "posedet_carphone", "poselandmark_carphone", "poselandmark_stills")
PAPER_CLAIM = 2.0   # "> 2x" less state memory (ELSE abstract)


def find_networks(data_dir: Path) -> list[Path]:
    """The shipped recordings that exist; other data/*.nc as a fallback, with a message."""
    found = [data_dir / f"{name}.nc" for name in SHIPPED if (data_dir / f"{name}.nc").exists()]
    missing = [name for name in SHIPPED if not (data_dir / f"{name}.nc").exists()]
    if missing:
        print(f"note: shipped recordings not found in {data_dir}: {', '.join(missing)} "
              "(made by scripts/make_data.py)", file=sys.stderr)
    if not found:
        found = sorted(p for p in data_dir.glob("*.nc"))
        if found:
            print(f"note: falling back to the other recordings in {data_dir}: "
                  f"{', '.join(p.name for p in found)}", file=sys.stderr)
    return found


def plan_stats(q: ed.QuantizedRecording, temporal: xr.Dataset, line: xr.Dataset, k: int) -> xr.Dataset:
    """Stats of the plan 'line delta in the first k line-capable layers, temporal after', from the
    rows of the two countings (``else_dse.events.stats_dataset`` assembles them)."""
    capable = np.asarray(line["scheme"].values) == "line_delta"
    use_line = capable & (np.cumsum(capable) <= k)
    names = [layer.name for layer in q.layers]
    plan = ed.Plan({n: ed.LineDelta(axis="y") for n, u in zip(names, use_line) if u}, default=ed.TemporalDelta())
    rows = [LayerStats(*((line if u else temporal)[v].values[i] for v in ("events", "sops", "max_error", "rel_error")))
            for i, u in enumerate(use_line)]
    return stats_dataset(q, plan, rows)


def study(path: Path, hw: ed.Hardware, frames: int | None, ks: list[int] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    rec = ed.open_recording(path)
    if frames is not None and rec.n_frames > frames:
        rec = rec.select_frames(slice(0, frames))
    q = rec.quantize(bits=8)
    capable = [layer.name for layer in rec.layers if layer.op != "fc"]
    temporal = ed.count_events(q, ed.TemporalDelta())
    line = ed.count_events(q, ed.Plan({n: ed.LineDelta(axis="y") for n in capable}, default=ed.TemporalDelta()))
    n_cap = len(capable)
    if ks is None:
        ks = sorted({0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, n_cap} & set(range(n_cap + 1)))
    rows = []
    base = None
    for k in ks:
        r = ed.estimate(plan_stats(q, temporal, line, k), hw)
        row = {
            "network": path.stem, "frames": rec.n_frames, "layers": len(rec.layers), "k": k,
            "persistent_bytes": float(r["total_state_persistent_bytes"]),
            "frame_bytes": float(r["total_state_frame_bytes"]),
            "streaming_frame_bytes": float(r["state_streaming_bytes"].where(r["state_persistent_bytes"] == 0, 0)
                                           .sum()),
            "sops": float(r["total_sops"]),
            "events": float(r["total_events"]),
            "energy_pj": float(r["total_energy_pj"]),
            "fits": bool(r["fits"]),
        }
        row["total_mapped_bytes"] = row["persistent_bytes"] + row["frame_bytes"]
        row["total_streaming_bytes"] = row["persistent_bytes"] + row["streaming_frame_bytes"]
        if base is None:
            base = row
        row["persistent_reduction"] = (base["persistent_bytes"] / row["persistent_bytes"]
                                       if row["persistent_bytes"] > 0 else float("inf"))
        row["streaming_total_reduction"] = base["total_streaming_bytes"] / row["total_streaming_bytes"]
        row["mapped_total_reduction"] = base["total_mapped_bytes"] / row["total_mapped_bytes"]
        row["sops_ratio"] = row["sops"] / base["sops"] if base["sops"] else float("nan")
        row["paper_claim"] = f">{PAPER_CLAIM:g}x"
        row["persistent_meets_claim"] = row["persistent_reduction"] > PAPER_CLAIM
        rows.append(row)
    per_layer = []
    for name, stats in (("temporal", temporal), ("line_all", line)):
        r = ed.estimate(stats, hw)
        df = r[["state_persistent_bytes", "state_frame_bytes", "state_streaming_bytes", "sops"]].to_dataframe()
        df.insert(0, "plan", name)
        df.insert(0, "network", path.stem)
        per_layer.append(df.reset_index())
    return pd.DataFrame(rows), pd.concat(per_layer, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="persistent state and SOPs: temporal delta vs line delta in the first k layers")
    ap.add_argument("--data", type=Path, default=ROOT / "data")
    ap.add_argument("--frames", type=int, default=40, help="first N frames of each recording (default 40)")
    ap.add_argument("--template", default="neuronflow", help="hardware template (gives the bits per state word)")
    ap.add_argument("--k", type=int, nargs="*", help="values of k (default: 0..all, roughly geometric)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "state_memory")
    args = ap.parse_args(argv)
    networks = find_networks(args.data)
    if not networks:
        print(f"no recordings in {args.data}; run scripts/make_data.py first", file=sys.stderr)
        return 1
    hw = ed.load_template(args.template)
    tables, layers = [], []
    for path in networks:
        print(f"counting {path.name} ...", file=sys.stderr)
        t, l = study(path, hw, args.frames, args.k)
        tables.append(t)
        layers.append(l)
    table = pd.concat(tables, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "state_memory.csv", index=False)
    pd.concat(layers, ignore_index=True).to_csv(args.out / "state_memory_layers.csv", index=False)
    kib = lambda b: f"{b / 1024:,.1f}"  # noqa: E731
    show = pd.DataFrame({
        "network": table["network"], "k": table["k"],
        "persistent KiB": table["persistent_bytes"].map(kib),
        "frame KiB (mapped)": table["frame_bytes"].map(kib),
        "frame KiB (streaming)": table["streaming_frame_bytes"].map(kib),
        "persistent /": table["persistent_reduction"].map(lambda v: "all gone" if np.isinf(v) else f"{v:,.2f}x"),
        "streaming total /": table["streaming_total_reduction"].map(lambda v: f"{v:,.2f}x"),
        "mapped total /": table["mapped_total_reduction"].map(lambda v: f"{v:,.2f}x"),
        "SOPs x": table["sops_ratio"].map(lambda v: f"{v:.3f}"),
        "paper": table["paper_claim"],
    })
    print(f"state memory, {hw.state_bits}-bit words ({hw.name}); reductions relative to temporal delta "
          "in every layer (k = 0); lossless schemes")
    print(show.to_string(index=False))
    for net, t in table.groupby("network", sort=False):
        hit = t[t["persistent_reduction"] > PAPER_CLAIM]
        if len(hit):
            first = hit.iloc[0]
            print(f"{net}: persistent state falls by >{PAPER_CLAIM:g}x from k = {int(first['k'])} "
                  f"({first['persistent_reduction']:.2f}x) at {first['sops_ratio']:.3f}x the SOPs")
        else:
            print(f"{net}: no k reaches >{PAPER_CLAIM:g}x less persistent state")
    print(f"wrote {args.out / 'state_memory.csv'} and {args.out / 'state_memory_layers.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
