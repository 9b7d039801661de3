"""Benchmark: a multi-objective Optuna study over per-layer thresholds and line orderings.

The target: a 500-trial NSGA-II study over the per-layer scheme
(conventional, line delta y/x forward/reverse, temporal) and threshold (0..4) of
every layer of the shipped pose network, plus two hardware fields (cores, SRAM
per core), objectives energy and error under the Fits constraint, stored in an
SQLite file, finishes in 3 minutes or less on the 2-core machine.

Two baselines are measured in the same run: the naive trial (``count_events``
of the whole plan plus ``estimate``, no cache, no curves, timed on a few plans)
and bare Optuna: the same sampler (NSGA-II, same seed) over the same space with
the same constraint, a trivial objective and in-memory storage, timed once before
and once after the study (the shared machine's speed drifts within a run; both
are printed). The study's time per trial over the mean of the two is the overhead
ratio (goal: <= 2x), in wall time
and in this process's CPU time (the study runs in one process; CPU time is far less
disturbed by other jobs on a shared machine than wall time).

    python benchmarks/bench_search.py                   # 500 trials, 8 frames
    python benchmarks/bench_search.py --trials 100 --frames 4
    python benchmarks/bench_search.py --repeat 5        # five rounds and their median ratio
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna

import else_dse as ed
from else_dse import search

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recording", default=str(ROOT / "data" / "poselandmark_carphone.nc"))
    ap.add_argument("--frames", type=int, default=8,
                    help="use every k-th frame so that this many frames remain (0: all frames)")
    ap.add_argument("--trials", type=int, default=500)
    ap.add_argument("--hardware", default="neuronflow")
    ap.add_argument("--storage", default=None, help="Optuna storage URL (default: a temporary SQLite file)")
    ap.add_argument("--naive", type=int, default=3, help="naive trials timed for the baseline")
    ap.add_argument("--repeat", type=int, default=1,
                    help="rounds of (bare Optuna, study, bare Optuna); more than one prints the median ratio")
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the study (40 functions by cumulative time; slows it)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error(f"--repeat must be >= 1, got {args.repeat}")

    rec = ed.open_recording(args.recording)
    n_all = rec.n_frames
    rec = rec.sample_frames(args.frames)
    elems = sum(int(np.prod(rec.tensor(t).shape[1:])) for t in rec.tensors)
    print(f"recording {Path(args.recording).name}: {len(rec.layers)} layers, {rec.n_frames} of {n_all} frames "
          f"(evenly sampled), {elems / 1e6:.2f} M elements per frame")

    hw = ed.load_template(args.hardware)
    space = search.Space(
        schemes=("conventional",) + search.LINE_ORDERINGS + ("temporal",),
        threshold=search.IntRange(0, 4),
        hardware={"hardware.n_cores": search.IntRange(8192, 16384, 128),
                  "hardware.sram_per_core": search.IntRange(16384, 65536, 4096)},
    )
    objectives = ["energy", "error"]
    constraints = [search.Fits()]

    t0 = time.perf_counter()
    problem = search.define(rec, space, objectives, constraints=constraints, hardware=hw)
    t_define = time.perf_counter() - t0
    print(f"space: {len(problem.distributions)} parameters "
          f"({len(problem.free)} free layers x scheme + threshold, 2 hardware fields); define {t_define:.2f} s")

    # baseline: naive trials (count_events of the whole plan + estimate), same process, no cache
    q = rec if isinstance(rec, ed.QuantizedRecording) else rec.quantize(bits=8)
    sampler = optuna.samplers.RandomSampler(seed=1)
    tmp = optuna.create_study(directions=["minimize"] * 2, sampler=sampler)
    naive, configs = [], []
    for _ in range(args.naive):
        cfg = problem.config(problem.suggest(tmp.ask()))
        configs.append(cfg)
        t = time.perf_counter()
        ed.estimate(ed.count_events(q, cfg.plan), cfg.hardware)
        naive.append(time.perf_counter() - t)
    t_naive = float(np.median(naive))
    print(f"baseline naive trial (count_events + estimate): {t_naive * 1e3:.0f} ms "
          f"-> {args.trials} trials would take {t_naive * args.trials:.0f} s")

    ratios = []
    for r in range(args.repeat):   # bare Optuna before and after each study: the machine is shared
        before = bare_optuna(problem, args.trials)   # and its speed drifts within a run
        complete, front, wall, cpu = run_study(args, rec, space, objectives, constraints, hw)
        after = bare_optuna(problem, args.trials)
        ratios.append(report_round(args, r, before, after, complete, front, wall, cpu))
    if args.repeat > 1:
        wall_r, cpu_r = np.array(ratios).T
        print(f"over {args.repeat} rounds: the study takes {np.median(wall_r):.2f}x bare Optuna's time in "
              f"wall time (median; {wall_r.min():.2f}-{wall_r.max():.2f}x) and {np.median(cpu_r):.2f}x in CPU "
              f"time ({cpu_r.min():.2f}-{cpu_r.max():.2f}x); goal <= 2x")
    cached = []
    for cfg in configs:                      # the same plans, evaluated from the warm cache
        problem.evaluate(cfg)
        t = time.perf_counter()
        problem.evaluate(cfg)
        cached.append(time.perf_counter() - t)
    t_cached = float(np.median(cached))
    print(f"one evaluation (stats + estimate + breakdown) from the warm cache: {t_cached * 1e3:.1f} ms "
          f"vs naive count_events + estimate {t_naive * 1e3:.0f} ms: {t_naive / t_cached:.1f}x")
    return 0


def report_round(args: argparse.Namespace, r: int, before: tuple[float, float], after: tuple[float, float],
                 complete: list, front: list, wall: float, cpu: float) -> tuple[float, float]:
    """Print one round (bare Optuna, the study, bare Optuna); returns its wall and CPU ratios."""
    head = f"round {r + 1}: " if args.repeat > 1 else ""
    print(f"{head}study: {len(complete)} complete trials in {wall:.1f} s = {len(complete) / wall:.2f} trials/s "
          f"({wall / max(len(complete), 1) * 1e3:.0f} ms per trial: sampling, evaluation, storage), storage "
          f"{'SQLite file' if args.storage is None else args.storage}")
    t_bare, c_bare = (before[0] + after[0]) / 2, (before[1] + after[1]) / 2
    per_trial, cpu_trial = wall / max(len(complete), 1), cpu / max(len(complete), 1)
    print(f"{head}bare Optuna (NSGA-II, same space and seed, trivial objective, in memory), timed before and "
          f"after the study: {before[0] * 1e3:.1f} and {after[0] * 1e3:.1f} ms per trial; the study takes "
          f"{per_trial * 1e3:.1f} ms: {per_trial / t_bare:.2f}x their mean (goal <= 2x)")
    print(f"{head}CPU time: bare Optuna {before[1] * 1e3:.1f} and {after[1] * 1e3:.1f} ms per trial, the study "
          f"{cpu_trial * 1e3:.1f} ms: {cpu_trial / c_bare:.2f}x their mean")
    print(f"{head}pareto front: {len(front)} feasible trials; target <= 180 s: "
          f"{'met' if wall <= 180 else 'NOT met'}")
    return per_trial / t_bare, cpu_trial / c_bare


def run_study(args: argparse.Namespace, rec: ed.Recording, space: search.Space, objectives: list[str],
              constraints: list, hw: ed.Hardware) -> tuple[list, list, float, float]:
    """The timed study (``--profile``: under cProfile, its 40 costliest functions printed): complete
    trials, Pareto front, wall and CPU seconds."""
    with tempfile.TemporaryDirectory() as d:
        storage = args.storage or f"sqlite:///{d}/bench.db"
        profiler = cProfile.Profile() if args.profile else None
        t0, c0 = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        study = search.run(rec, space, objectives, hardware=hw, constraints=constraints,
                           n_trials=args.trials, storage=storage, study_name="bench_search", seed=0)
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        return complete, study.best_trials, wall, cpu


def bare_optuna(problem: search.Problem, n_trials: int) -> tuple[float, float]:
    """Wall and CPU seconds per trial of bare Optuna on the problem's space: NSGA-II (seed 0), one constraint
    value per trial, a trivial objective (sums of the drawn numbers), in-memory storage."""
    names = [c.name for c in problem.constraints]

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        params = problem.suggest(trial)
        for n in names:
            trial.set_constraint(n, 0.0)
        nums = [float(v) for v in params.values() if not isinstance(v, str)]
        return sum(nums), float(len(params) - len(nums))

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(directions=["minimize"] * len(problem.objectives),
                                sampler=optuna.samplers.NSGAIISampler(seed=0))
    t0, c0 = time.perf_counter(), time.process_time()
    study.optimize(objective, n_trials=n_trials)
    optuna.logging.set_verbosity(verbosity)
    return (time.perf_counter() - t0) / n_trials, (time.process_time() - c0) / n_trials


if __name__ == "__main__":
    sys.exit(main())
