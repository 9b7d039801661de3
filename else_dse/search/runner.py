"""Running studies: samplers, study preparation, the trial loop, worker processes, results."""

from __future__ import annotations

import json
import multiprocessing
import signal
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

from ..hardware import Hardware
from ..recording import Recording
from .closed_loop import ClosedLoop, recording_info
from .objectives import Constraint
from .problem import Problem, define
from ..schemes import NAMES, Scheme
from .space import SearchError, Space
from .storage import open_storage
from .worker import SAMPLERS, make_sampler, work


# ---- the study runner ----------------------------------------------------------------------

def _check_run_args(n_trials: Any, workers: Any, sampler: Any, storage: Any, seed: Any) -> None:
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise SearchError(f"n_trials must be an int >= 1, got {n_trials!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SearchError(f"workers must be an int >= 1, got {workers!r}")
    if not isinstance(sampler, optuna.samplers.BaseSampler) and sampler not in SAMPLERS:
        raise SearchError(f"unknown sampler {sampler!r}; allowed are {SAMPLERS} or an optuna sampler object")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SearchError(f"seed must be an int or None, got {seed!r}")
    if workers > 1 and not (storage is None or isinstance(storage, str)):
        raise SearchError("workers > 1 needs a storage URL (or None for the SQLite default) that every "
                          "worker process can open, not a storage object")
    if workers > 1 and isinstance(storage, str) and ":memory:" in storage:
        raise SearchError("workers > 1 cannot share an in-memory SQLite database; use a file or a server")


def _check_enqueue(problem: Problem, enqueue: Sequence[Mapping[str, Any]]) -> None:
    for i, params in enumerate(enqueue):
        unknown = sorted(set(params) - set(problem.distributions))
        if unknown:
            raise SearchError(f"enqueue[{i}]: unknown parameter(s) {unknown}; the space has "
                              f"{list(problem.distributions)}")
        for k, v in params.items():
            if not _inside(problem.distributions[k], v):
                raise SearchError(f"enqueue[{i}]: {k}={v!r} is outside {problem.distributions[k]}")


def prepare(problem: Problem, storage: optuna.storages.BaseStorage, study_name: str,
            enqueue: Sequence[Mapping[str, Any]] = ()) -> optuna.Study:
    """Create (or load and check) the study; store its description once.

    ``enqueue``: parameter sets (complete or partial) to run first, queued only when
    the study is new; unknown parameter names are an error."""
    _check_enqueue(problem, enqueue)
    directions = ["minimize"] * len(problem.objectives)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(storage=storage, study_name=study_name, directions=directions,
                                    load_if_exists=True)
    desc = problem.describe()
    stored = study.user_attrs.get("search")
    if stored is None:
        study.set_user_attr("search", desc)
        study.set_user_attr("objectives", list(problem.objectives))
        study.set_user_attr("constraints", [c.to_dict() for c in problem.constraints])   # verify re-checks them
        study.set_user_attr("recording", recording_info(problem.recording, problem.content))
        base = problem.baseline_evaluation()
        study.set_user_attr("baseline_conventional", problem.baseline(base))
        study.set_user_attr("baseline_conventional_layers", base.user_attrs["layers"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(problem.objectives))
        if not study.get_trials(deepcopy=False):
            for params in enqueue:
                study.enqueue_trial(dict(params))
    else:
        if json.loads(json.dumps(desc)) != stored:
            diff = sorted(k for k in desc if json.loads(json.dumps(desc[k])) != stored.get(k))
            raise SearchError(f"study {study_name!r} exists with a different search ({', '.join(diff)} "
                              "differ); use another study_name or the same configuration to resume")
        rec = study.user_attrs.get("recording", {})
        if rec.get("hash") not in (None, problem.content):
            raise SearchError(f"study {study_name!r} was run on another recording (content hash "
                              f"{rec.get('hash')}, this one {problem.content})")
    return study


def _inside(dist: BaseDistribution, v: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return v in dist.choices
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    if isinstance(dist, IntDistribution):
        return int(v) == v and dist.low <= v <= dist.high and (int(v) - dist.low) % dist.step == 0
    return dist.low <= v <= dist.high  # type: ignore[attr-defined]


def _worker_main(problem: Problem, storage_spec: Any, study_name: str, n_trials: int, sampler: Any,
                 seed: int | None, heartbeat_interval: float | None, grace_period: float | None,
                 stop: Any) -> None:
    """A worker process: runs trials until the study is full or ``stop`` is set (exit status
    130). It ignores SIGINT: Ctrl-C reaches the parent, which sets ``stop``, so a worker is
    never interrupted inside a database driver or outside its own code."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)     # inherited under fork; set again for spawn
    try:
        work(problem, open_storage(storage_spec, study_name), study_name, n_trials, sampler=sampler, seed=seed,
             heartbeat_interval=heartbeat_interval, grace_period=grace_period, stop=stop)
    except KeyboardInterrupt:
        sys.exit(130)


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C); the message says how many trials were kept and how to resume."""


def _complete(store: optuna.storages.BaseStorage, study_name: str) -> int:
    """How many complete trials the study holds (0 when the storage has no such study)."""
    try:
        study_id = store.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(store.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,)))


def _interrupted(store: optuna.storages.BaseStorage, study_name: str, n_trials: int) -> Interrupted:
    kept = _complete(store, study_name)
    return Interrupted(f"interrupted: study {study_name!r} keeps {kept} of {n_trials} complete trials; "
                       "run the same command again to resume")


def _run_workers(problem: Problem, spec: Any, study_name: str, n_trials: int, sampler: Any, seed: int | None,
                 workers: int, heartbeat_interval: float | None, grace_period: float | None) -> None:
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                      else "spawn")
    stop = ctx.Event()
    procs = [ctx.Process(target=_worker_main,
                         args=(problem, spec, study_name, n_trials, sampler,
                               None if seed is None else seed + i, heartbeat_interval, grace_period, stop))
             for i in range(workers)]
    main = threading.current_thread() is threading.main_thread()     # signal.signal works there only
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None   # forked workers inherit it
    try:
        for p in procs:
            p.start()
    finally:
        if main and handler is not None:        # None: a handler not installed from Python stays
            signal.signal(signal.SIGINT, handler)
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        stop.set()                       # each worker ends after the trial in flight
        for p in procs:
            p.join()
        raise
    bad = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode != 0]
    if any(code == 130 for _, code in bad):
        raise KeyboardInterrupt
    if bad:
        raise RuntimeError(f"search workers failed (worker, exit code): {bad}; rerun to resume the study")


def run(recording: Recording, space: Space, objectives: str | Sequence[str], *,
        hardware: Hardware | str | None = None, constraints: Sequence[Constraint] = (),
        n_trials: int = 100, storage: str | optuna.storages.BaseStorage | None = None,
        study_name: str = "else-dse", seed: int | None = 0,
        sampler: str | optuna.samplers.BaseSampler = "auto", workers: int = 1,
        heartbeat_interval: float | None = 10, grace_period: float | None = None,
        progress_bar: bool = False, enqueue: Sequence[Mapping[str, Any]] = (),
        model: "str | Path | ClosedLoop | None" = None, frames: Iterable[Any] | None = None,
        value_range: tuple[float, float] | None = None) -> optuna.Study:
    """Run (or resume) a study until it holds ``n_trials`` complete trials; returns it.

    Everything is validated first (:func:`define`). ``sampler``: ``"auto"`` (TPE for
    one objective, NSGA-II for several), ``"tpe"``, ``"nsga2"``, ``"random"`` or an
    Optuna sampler; every sampler that reads trial constraints honours them.
    ``workers > 1`` starts that many processes on the study (worker ``i`` seeds its
    sampler with ``seed + i``; a sampler object is copied as is into every worker).
    With one worker and a seed the study is reproducible. ``heartbeat_interval``
    (seconds): how often a running waiting-queue trial reports that its worker lives;
    after ``grace_period`` (default twice that) without one it is failed and
    retried (see :mod:`else_dse.search.worker`). Ctrl-C (one or N workers) raises
    :class:`Interrupted`, whose one-line message says how many trials were kept;
    no RUNNING trial is left behind. ``enqueue``: parameter sets to evaluate first (e.g. reference plans),
    queued when the study is new. ``model``, ``frames`` (``value_range``): replay every trial in closed
    loop on the recording's model and frames (:func:`define`); task objectives need them.

    >>> import numpy as np, else_dse as ed
    >>> layer = ed.Layer("c", "x", "conv", 1, 2, kernel=3, padding=1, input_shape=(1, 6, 6))
    >>> rec = ed.Recording.from_arrays([layer], {"x": np.random.default_rng(0).random((3, 1, 6, 6))})
    >>> study = ed.search.run(rec, Space(schemes=("line_y", "temporal")), ["sops", "error"],
    ...                       n_trials=4, storage=optuna.storages.InMemoryStorage())
    >>> len(study.trials), sorted(study.trials[0].user_attrs)
    (4, ['config', 'constraints', 'feasible', 'layers', 'totals'])
    """
    problem = define(recording, space, objectives, constraints=constraints, hardware=hardware, model=model,
                     frames=frames, value_range=value_range)
    _check_run_args(n_trials, workers, sampler, storage, seed)
    if not isinstance(study_name, str) or not study_name:
        raise SearchError(f"study_name must be a non-empty string, got {study_name!r}")
    make_sampler(sampler, len(problem.objectives), seed)   # validates the name
    _check_enqueue(problem, enqueue)
    store = open_storage(storage, study_name)
    problem.prefill(n_trials - _complete(store, study_name))   # what the trials to run ask for, on every core
    prepare(problem, store, study_name, enqueue)
    try:
        if workers == 1:
            work(problem, store, study_name, n_trials, sampler=sampler, seed=seed, progress_bar=progress_bar,
                 heartbeat_interval=heartbeat_interval, grace_period=grace_period)
        else:
            spec = storage if storage is not None else f"sqlite:///{Path(f'{study_name}.db').resolve()}"
            _run_workers(problem, spec, study_name, n_trials, sampler, seed, workers, heartbeat_interval,
                         grace_period)
    except KeyboardInterrupt:
        raise _interrupted(store, study_name, n_trials) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.load_study(study_name=study_name, storage=store,
                                 sampler=make_sampler(sampler, len(problem.objectives), seed))


# ---- results as a table ------------------------------------------------------------------

def trials_table(study: optuna.Study, *, front: bool = False) -> "Any":
    """A pandas DataFrame of the complete trials (``front=True``: the feasible Pareto
    front, or the best trial): number, objective values, feasibility, every stored
    total (``total.<name>``), bits, tau, hardware parameters and the count of layers per
    scheme choice. Read from the stored user attributes, nothing is recomputed."""
    import pandas as pd

    names = list(study.user_attrs.get("objectives") or [f"objective_{i}" for i in range(len(study.directions))])
    if front:
        trials = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    else:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    rows = []
    for t in trials:
        row: dict[str, Any] = {"trial": t.number, **dict(zip(names, t.values or ())),
                               "feasible": bool(t.user_attrs.get("feasible", True))}
        cfg = t.user_attrs.get("config", {})
        row["bits"], row["tau"] = cfg.get("bits"), cfg.get("tau")
        for k, v in t.params.items():
            if k.startswith("hardware.") or k in ("scheme", "threshold"):
                row[k] = v
        plan = [Scheme.parse(v) if isinstance(v, str) else Scheme.from_dict(v)   # a string: stored by earlier versions
                for v in cfg.get("plan", {}).values()]
        choices = [s.name for s in plan]
        thresholds = [s.threshold for s in plan if s.thresholded]  # type: ignore[attr-defined]
        for c in NAMES:
            row[f"n_{c}"] = choices.count(c)
        row["mean_threshold"] = float(np.mean(thresholds)) if thresholds else 0.0
        for k, v in t.user_attrs.get("totals", {}).items():
            if isinstance(v, (int, float, bool)):
                row[f"total.{k}"] = v
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(names[0]).reset_index(drop=True) if len(df) else df
