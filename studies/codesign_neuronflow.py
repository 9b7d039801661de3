"""Hardware co-design on the NeuronFlow template: energy versus latency under a fit constraint.

Question: searched jointly, which per-layer schemes and thresholds, core counts
and SRAM sizes give the best energy/latency trade-off for a detection network on
a NeuronFlow-like chip, when the mapping must fit (cores, neurons and SRAM per
core) and the total error stays within a budget?

The space: per layer, the scheme among conventional, line delta along y or x,
and temporal delta, with its threshold in 0..``--max-threshold``; the chip's
``n_cores`` and ``sram_per_core`` (the mesh grows with the cores). Objectives:
``energy`` and ``latency`` per frame (``else_dse.estimate``: the template's
``"streamed"`` schedule, consecutive layers of every scheme overlapping line by line). Constraints: ``Fits()`` and
``ErrorBudget(--error-budget)`` on the mean relative error. Sampler: TPE (in a
few hundred trials it finds a far better front here than NSGA-II, whose random
first generations rarely beat the uniform references); ``--sampler nsga2``.

SRAM size is not free: ``derive`` makes each drawn chip pay for its SRAM --
access energy ``e_sram_bit`` grows with the square root of the capacity
(hardware.md: ``E(C) ~ 10 pJ * (C / 8 KB)^0.5`` per access [D]) and static power
per core grows in proportion to the SRAM, which dominates the core area (~70%,
hardware.md [A]). Unused cores are power-gated in the cost model, so more cores
than the mapping needs cost nothing; fewer make the mapping fail.

    python studies/codesign_neuronflow.py                        # blazeface, 200 trials, ~2 min
    python studies/codesign_neuronflow.py --network posedet_carphone --trials 1000 --cores 4096 16384

Writes under ``reports/codesign_neuronflow/``: ``study.db``, ``front.csv`` (the
feasible Pareto front), ``references.csv`` (uniform plans on the template's SRAM
with the most cores; they run first and seed the search), ``report/report.html``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import optuna
import pandas as pd

import else_dse as ed
from else_dse import search

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ed.load_template("neuronflow")


def sram_costs(hw: ed.Hardware) -> ed.Hardware:
    """SRAM access energy ~ sqrt(capacity) [D, hardware.md]; static power per core ~ capacity [A]."""
    f = hw.sram_per_core / TEMPLATE.sram_per_core
    return hw.replace(e_sram_bit=TEMPLATE.e_sram_bit * math.sqrt(f), p_static_core=TEMPLATE.p_static_core * f)


def reference_plans(problem: search.Problem, args: argparse.Namespace) -> list[tuple[str, dict]]:
    """The references: uniform plans on the template's SRAM with the most cores (they also seed
    the search), as (label, parameters)."""
    refs = []
    plans = [(c, 0) for c in ("conventional", "line_y", "line_x", "temporal")] + [
        ("line_y", t) for t in range(1, args.max_threshold + 1)]
    for choice, thr in plans:
        params = {"hardware.n_cores": args.cores[1], "hardware.sram_per_core": TEMPLATE.sram_per_core
                  if args.sram[0] <= TEMPLATE.sram_per_core <= args.sram[1] else args.sram[1]}
        for name, dist in problem.distributions.items():
            if name.startswith("scheme."):
                params[name] = choice if choice in dist.choices else "conventional"
            elif name.startswith("threshold."):
                params[name] = thr
        refs.append((f"{choice} theta={thr}" if choice != "conventional" else choice, params))
    return refs


def print_results(study: optuna.Study, refs: list[tuple[str, dict]], args: argparse.Namespace, out: Path) -> None:
    """Write references.csv and front.csv to ``out`` and print them with the best reductions."""
    table = search.trials_table(study).set_index("trial")
    cols = ["energy", "latency", "feasible", "hardware.n_cores", "hardware.sram_per_core", "total.total_cores",
            "total.error", "mean_threshold", "n_conventional", "n_line_y", "n_line_x", "n_temporal"]
    references = table.loc[range(len(refs)), cols].copy()
    references.insert(0, "plan", [c for c, _ in refs])
    references.to_csv(out / "references.csv")
    front = search.trials_table(study, front=True)
    front = front[front["feasible"]]
    front[["trial"] + cols].to_csv(out / "front.csv", index=False)
    n_feasible = int(table["feasible"].sum())
    pd.set_option("display.width", 200)
    fmt = lambda v: f"{v:.4g}"  # noqa: E731
    print(f"\n{args.network} on NeuronFlow: {len(table)} trials, {n_feasible} feasible "
          f"(fits, error <= {args.error_budget:g}); energy pJ/frame, latency s/frame")
    print("\nreferences (uniform lossless plans):")
    print(references.to_string(index=False, float_format=fmt))
    print(f"\nfeasible Pareto front ({len(front)} trials):")
    print(front[["trial"] + cols].to_string(index=False, float_format=fmt))
    base = study.user_attrs.get("baseline_conventional", {})
    conv = references[(references["plan"] == "conventional") & references["feasible"]]
    if not base.get("fits", True):
        print(f"\nconventional processing does not fit the template as is ({base.get('overflow', '')}); "
              "the reference is the conventional plan on the most cores (trial 0)")
    if len(conv) and len(front):
        c = conv.iloc[0]
        e, lat = front.loc[front["energy"].idxmin()], front.loc[front["latency"].idxmin()]
        print(f"best energy {c['energy'] / e['energy']:.2f}x lower than conventional (trial 0) at latency "
              f"{e['latency'] * 1e3:.3g} ms; best latency {c['latency'] / lat['latency']:.2f}x lower at "
              f"energy {lat['energy'] * 1e-6:.3g} µJ per frame")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--network", default="blazeface_carphone", help="a recording in data/ (name without .nc)")
    ap.add_argument("--frames", type=int, default=8, help="evenly sampled frames (0: all)")
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--max-threshold", type=int, default=3)
    ap.add_argument("--error-budget", type=float, default=0.02, help="limit on the mean relative error")
    ap.add_argument("--cores", type=int, nargs=2, default=[512, 2048], metavar=("LOW", "HIGH"))
    ap.add_argument("--sram", type=int, nargs=2, default=[8192, 131072], metavar=("LOW", "HIGH"),
                    help="bytes per core, in steps of 4096")
    ap.add_argument("--sampler", default="tpe", choices=["nsga2", "tpe", "random"],
                    help="TPE finds better fronts than NSGA-II in a few hundred trials here")
    ap.add_argument("--population", type=int, default=24, help="NSGA-II population size")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "reports" / "codesign_neuronflow"))
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args(argv)

    rec = ed.open_recording(ROOT / "data" / f"{args.network}.nc")
    rec = rec.sample_frames(args.frames)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    space = search.Space(
        schemes=("conventional", "line_y", "line_x", "temporal"),
        threshold=search.IntRange(0, args.max_threshold),
        hardware={"hardware.n_cores": search.IntRange(args.cores[0], args.cores[1], 32),
                  "hardware.sram_per_core": search.IntRange(args.sram[0], args.sram[1], 4096)},
        derive=sram_costs)
    objectives = ["energy", "latency"]
    constraints = [search.Fits(), search.ErrorBudget(args.error_budget)]
    problem = search.define(rec, space, objectives, constraints=constraints, hardware=TEMPLATE)

    refs = reference_plans(problem, args)
    print(f"{args.network}: {len(rec.layers)} layers, {rec.n_frames} frames; {len(problem.distributions)} "
          f"parameters; {args.trials} trials", file=sys.stderr)
    sampler = (optuna.samplers.NSGAIISampler(seed=args.seed, population_size=args.population)
               if args.sampler == "nsga2" else args.sampler)
    study = search.run(rec, space, objectives, hardware=TEMPLATE, constraints=constraints,
                       n_trials=args.trials, storage=f"sqlite:///{(out / 'study.db').resolve()}",
                       study_name=f"{args.sampler}-{args.network}-f{rec.n_frames}-t{args.max_threshold}-e{args.error_budget:g}-"
                                  f"c{args.cores[0]}-{args.cores[1]}-s{args.sram[0]}-{args.sram[1]}",
                       seed=args.seed, sampler=sampler, workers=args.workers, progress_bar=True,
                       enqueue=[p for _, p in refs])

    print_results(study, refs, args, out)
    if not args.no_report:
        ed.report.write(study, out / "report", title=f"Co-design on NeuronFlow: {args.network}")
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
