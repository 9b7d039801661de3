"""Pareto front of SOPs versus error over per-layer thresholds and line orderings.

Question: how far below conventional processing do ELSE line deltas take the
synaptic operations of a pose and a detection network when every layer picks its
own line ordering (axis y or x, forward or reverse scan; or conventional) and its
own threshold, and what does each step down cost in reconstruction error?

For each network a multi-objective study (TPE by default, ``--sampler nsga2``;
objectives ``sops`` and ``error``: the mean
over layers of the relative error ``||X - R|| / ||X||``) searches, per layer, the
scheme among conventional and the four line orderings and the threshold in
0..``--max-threshold`` code steps (8-bit codes, closed loop). Uniform plans run
first, as references and as seeds of the search: conventional everywhere, and
line delta along y in every layer at each threshold.

    python studies/pareto_thresholds.py                 # ~150 trials per network, a few minutes
    python studies/pareto_thresholds.py --trials 1000 --frames 0   # larger run, every frame

Writes under ``reports/pareto_thresholds/``: ``study.db`` (SQLite, one study per
network), ``<network>_front.csv`` (the Pareto front with SOP reduction vs
conventional), ``<network>_uniform.csv`` (reference plans), ``summary.csv`` and a
report (``<network>/report.html``) per network.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

import else_dse as ed
from else_dse import search

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = {"pose": "poselandmark_carphone", "detection": "posedet_carphone"}


def load(name: str, frames: int) -> ed.Recording:
    return ed.open_recording(ROOT / "data" / f"{name}.nc").sample_frames(frames)


def uniform_params(problem: search.Problem, choice: str, threshold: int) -> dict:
    """The parameters of one scheme choice and threshold in every free layer."""
    params = {}
    for name, dist in problem.distributions.items():
        if name.startswith("scheme."):
            params[name] = choice if choice in dist.choices else "conventional"
        elif name.startswith("threshold."):
            params[name] = threshold
    return params


def reference_plans(max_threshold: int) -> list[tuple[str, int]]:
    """Uniform plans run first (they seed the search and are the references of the front)."""
    return [("conventional", 0)] + [("line_y", t) for t in range(max_threshold + 1)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=150, help="trials per network")
    ap.add_argument("--frames", type=int, default=8, help="evenly sampled frames per network (0: all)")
    ap.add_argument("--max-threshold", type=int, default=4)
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sampler", default="tpe", choices=["nsga2", "tpe", "random"])
    ap.add_argument("--population", type=int, default=24, help="NSGA-II population size")
    ap.add_argument("--out", default=str(ROOT / "reports" / "pareto_thresholds"))
    ap.add_argument("--no-report", action="store_true", help="skip the HTML reports")
    args = ap.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    space = search.Space(schemes=("conventional",) + search.LINE_ORDERINGS,
                         threshold=search.IntRange(0, args.max_threshold))
    summary = []
    for task in args.networks:
        name = NETWORKS[task]
        rec = load(name, args.frames)
        print(f"{task}: {name}, {len(rec.layers)} layers, {rec.n_frames} frames; {args.trials} trials",
              file=sys.stderr)
        problem = search.define(rec, space, ["sops", "error"])
        refs = reference_plans(args.max_threshold)
        sampler = (optuna.samplers.NSGAIISampler(seed=args.seed, population_size=args.population)
                   if args.sampler == "nsga2" else args.sampler)
        study = search.run(rec, space, ["sops", "error"], n_trials=args.trials, storage=storage,
                           study_name=f"{args.sampler}-{task}-{name}-f{rec.n_frames}-t{args.max_threshold}", seed=args.seed,
                           sampler=sampler, progress_bar=True,
                           enqueue=[uniform_params(problem, c, t) for c, t in refs])
        conv = study.user_attrs["baseline_conventional"]["sops"]
        front = search.trials_table(study, front=True)
        front["sops_reduction"] = conv / front["sops"]
        cols = ["trial", "sops", "sops_reduction", "error", "total.max_error", "mean_threshold", "n_conventional",
                *(f"n_{c}" for c in search.LINE_ORDERINGS)]
        front[cols].to_csv(out / f"{task}_front.csv", index=False)
        table = search.trials_table(study).set_index("trial")
        uni = pd.DataFrame([{"plan": "conventional" if c == "conventional" else f"{c} theta={t}",
                             "sops": table.loc[i, "sops"], "error": table.loc[i, "error"],
                             "max_error": table.loc[i, "total.max_error"]} for i, (c, t) in enumerate(refs)])
        uni["sops_reduction"] = conv / uni["sops"]
        uni.to_csv(out / f"{task}_uniform.csv", index=False)
        if not args.no_report:
            ed.report.write(study, out / task, title=f"Pareto front SOPs vs error: {task} ({name})")
        pd.set_option("display.width", 160)
        print(f"\n{task} ({name}): Pareto front, {len(front)} trials (SOPs per frame; reduction vs "
              f"conventional {conv:.4g})")
        print(front[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"\n{task}: uniform reference plans")
        print(uni.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        lossless = front[front["error"] <= 1e-12]
        summary.append({
            "task": task, "network": name, "frames": rec.n_frames, "trials": args.trials,
            "front_size": len(front), "conventional_sops": conv,
            "best_lossless_reduction": float(lossless["sops_reduction"].max()) if len(lossless) else np.nan,
            "uniform_line_y_theta0_reduction": float(uni.loc[1, "sops_reduction"]),
            "max_reduction_on_front": float(front["sops_reduction"].max()),
            "error_at_max_reduction": float(front.loc[front["sops_reduction"].idxmax(), "error"]),
        })
    pd.DataFrame(summary).to_csv(out / "summary.csv", index=False)
    print("\nsummary")
    print(pd.DataFrame(summary).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
