"""Running studies: samplers, study preparation, the trial loop, worker processes, results."""

from __future__ import annotations

import datetime
import json
import multiprocessing
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from ..hardware import Hardware
from ..recording import Recording
from .objectives import Constraint
from .problem import Problem, define
from ..schemes import NAMES, Scheme
from .space import SearchError, Space
from .storage import (_SET_CONSTRAINT, _bulk, _finish, _heartbeat_interval, _state_counts,
                      _trial_number, _write, open_storage)


# ---- samplers ------------------------------------------------------------------------------

SAMPLERS = ("auto", "tpe", "nsga2", "random")


class _ConstraintValues:
    """Optuna ``constraints_func``: the values the trial stored, in the problem's order."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)

    def __call__(self, trial: FrozenTrial) -> list[float]:
        stored = trial.user_attrs.get("constraints", {})
        return [float(stored.get(n, 1.0)) for n in self.names]


def _make_sampler(sampler: str | optuna.samplers.BaseSampler, n_objectives: int, seed: int | None,
                  constraints: Sequence[Constraint]) -> optuna.samplers.BaseSampler:
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    # Optuna >= 5 reads constraints the trials set (Trial.set_constraint); older versions need
    # constraints_func
    cf = _ConstraintValues([c.name for c in constraints]) if constraints and not _SET_CONSTRAINT else None
    name = sampler
    if name == "auto":
        name = "tpe" if n_objectives == 1 else "nsga2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, constraints_func=cf)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=cf)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
    raise SearchError(f"unknown sampler {sampler!r}; allowed are {SAMPLERS} or an optuna sampler object")


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


def _recording_info(rec: Recording, content: str) -> dict[str, Any]:
    return {"hash": content, "n_frames": rec.n_frames, "layers": [layer.name for layer in rec.layers],
            "source": str(rec.attrs.get("source", rec.attrs.get("model", ""))),
            **{k: str(v) for k, v in rec.attrs.items() if k in ("network", "model", "media", "task")}}


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
        study.set_user_attr("recording", _recording_info(problem.recording, problem.content))
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


class _Heartbeat:
    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, interval: int | None) -> None:
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "_Heartbeat":
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()
        return self

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - a missed beat only risks a retry
                pass

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


_ALIVE = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)


def _is_surplus(storage: optuna.storages.BaseStorage, study_id: int, trial_id: int, n_trials: int) -> bool:
    """Whether this trial is beyond the first ``n_trials`` live trials (by number): another
    worker created the last ones at the same time. Cheap unless the study is nearly full."""
    counts = _state_counts(storage, study_id)
    if sum(counts[s] for s in _ALIVE) <= n_trials:
        return False
    alive = storage.get_all_trials(study_id, deepcopy=False,
                                   states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))
    ids = [t._trial_id for t in sorted(alive, key=lambda t: t.number)]
    return trial_id in ids[n_trials:]


def work(problem: Problem, storage: optuna.storages.BaseStorage, study_name: str, n_trials: int, *,
         sampler: str | optuna.samplers.BaseSampler = "auto", seed: int | None = 0,
         progress_bar: bool = False, on_trial: Callable[[int], None] | None = None) -> int:
    """Run trials of a prepared study until it holds ``n_trials`` complete trials.

    The sampler runs on an in-memory mirror of the study, kept in sync with the
    storage; a new trial is written in one statement (RUNNING, with its parameters),
    then its results. Waiting trials (retries of trials whose worker died, or
    trials enqueued by the user) are run first. Returns the number of trials this
    worker completed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        shared = optuna.load_study(study_name=study_name, storage=storage,
                                   sampler=optuna.samplers.RandomSampler(seed=seed))
    study_id = storage.get_study_id_from_name(study_name)
    directions = storage.get_study_directions(study_id)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)     # no log line per mirrored trial
    mirror = optuna.create_study(directions=directions,
                                 sampler=_make_sampler(sampler, len(directions), seed, problem.constraints))
    interval = _heartbeat_interval(storage)
    seen: set[int] = set()            # shared trial numbers the mirror holds
    seen_complete: set[int] = set()   # complete shared trials known to this worker
    done = 0
    bar = None
    if progress_bar:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_trials, desc=f"study {study_name}", unit="trial", disable=None)
    try:
        while True:
            if interval:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(shared)
            counts = _state_counts(storage, study_id)
            n_complete = counts[TrialState.COMPLETE]
            if n_complete > len(seen_complete):        # trials of other workers (or of a past run)
                for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,)):
                    if t.number not in seen_complete:
                        seen_complete.add(t.number)
                        if t.number not in seen:
                            seen.add(t.number)
                            mirror.add_trial(t)
            if bar is not None:
                bar.n = min(n_complete, n_trials)
                bar.refresh()
            if n_complete >= n_trials:
                break
            popped = None
            waiting = (storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
                       if counts[TrialState.WAITING] else [])
            for t in sorted(waiting, key=lambda t: t.number):
                try:
                    if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                        popped = t
                        break
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue
            if popped is not None:
                number = _run_trial(problem, mirror, storage, study_id, n_trials, interval, seen, popped)
                if number is not None:
                    seen_complete.add(number)
                    done += 1
                    if on_trial is not None:
                        on_trial(number)
                continue
            if n_complete + counts[TrialState.RUNNING] >= n_trials:
                if not interval:
                    break
                time.sleep(min(1.0, interval / 2))   # wait for running trials (or their retry)
                continue
            number = _run_trial(problem, mirror, storage, study_id, n_trials, interval, seen)
            if number is not None:
                seen_complete.add(number)
                done += 1
                if on_trial is not None:
                    on_trial(number)
    finally:
        optuna.logging.set_verbosity(verbosity)
        if bar is not None:
            bar.close()
    return done


def _run_trial(problem: Problem, mirror: optuna.Study, storage: optuna.storages.BaseStorage, study_id: int,
               n_trials: int, interval: int | None, seen: set[int],
               popped: FrozenTrial | None = None) -> int | None:
    """One trial: sampled on the mirror, run, written to the storage; returns its number
    (None when it was surplus). ``popped``: a waiting trial this worker claimed (a retry of
    a trial whose worker died, or a trial enqueued with fixed parameters); its parameters
    are kept and the mirror's sampler fills in any that are missing."""
    if popped is not None:
        fixed = dict(popped.params) or dict(popped.system_attrs.get("fixed_params", {}))
        mirror.enqueue_trial(fixed, skip_if_exists=False)
    local = mirror.ask()
    params = problem.suggest(local)
    frozen = _mirror_trial(mirror, local)
    sys0 = {k: v for k, v in frozen.system_attrs.items() if k != "fixed_params"}
    if popped is None:
        bulk = _bulk(storage) is not None
        template = optuna.trial.FrozenTrial(
            number=0, state=TrialState.RUNNING, value=None, values=None,
            datetime_start=datetime.datetime.now(), datetime_complete=None,
            params={} if bulk else dict(frozen.params), distributions={} if bulk else dict(frozen.distributions),
            user_attrs={}, system_attrs=sys0, intermediate_values={}, trial_id=0)
        trial_id = storage.create_new_trial(study_id, template_trial=template)
        if bulk:
            _write(storage, trial_id, params=frozen.params, distributions=frozen.distributions, fresh=True)
        number = _trial_number(storage, trial_id)
    else:
        trial_id, number = popped._trial_id, popped.number
        missing = {n: v for n, v in frozen.params.items() if n not in popped.params}
        _write(storage, trial_id, params=missing, distributions=frozen.distributions, fresh=not popped.params)
        _write(storage, trial_id, system_attrs=sys0)
    seen.add(number)
    with _Heartbeat(storage, trial_id, interval):
        if _is_surplus(storage, study_id, trial_id, n_trials):
            storage.set_trial_user_attr(trial_id, "surplus", f"the study already held {n_trials} "
                                        "complete or running trials when this one was created")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            mirror.tell(local, state=TrialState.FAIL)
            return None
        try:
            ev = problem.evaluate(problem.config(params))
        except BaseException:
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            mirror.tell(local, state=TrialState.FAIL)
            raise
        if _SET_CONSTRAINT:
            for n, v in zip(ev.user_attrs["constraints"], ev.constraints):
                local.set_constraint(n, v)
        else:   # constraints_func reads them (the mirror does not need the breakdown)
            local.set_user_attr("constraints", ev.user_attrs["constraints"])
        mirror.tell(local, list(ev.values))
        sys1 = _mirror_trial(mirror, local).system_attrs
        extra = {k: v for k, v in sys1.items()
                 if not k.startswith("constraints") and k not in sys0 and k != "fixed_params"}
        for k, v in sys1.items():   # attributes the sampler changed after the trial was created
            if k in sys0 and sys0[k] != v:
                storage.set_trial_system_attr(trial_id, k, v)
        _finish(storage, trial_id, ev, extra, fresh=popped is None)
    return number


def _mirror_trial(mirror: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
    return mirror.get_trials(deepcopy=False)[trial.number]


def _worker_main(problem: Problem, storage_spec: Any, study_name: str, n_trials: int, sampler: Any,
                 seed: int | None, heartbeat_interval: int | None, grace_period: int | None) -> None:
    storage = open_storage(storage_spec, study_name, heartbeat_interval=heartbeat_interval,
                           grace_period=grace_period)
    work(problem, storage, study_name, n_trials, sampler=sampler, seed=seed)


def run(recording: Recording, space: Space, objectives: str | Sequence[str], *,
        hardware: Hardware | str | None = None, constraints: Sequence[Constraint] = (),
        n_trials: int = 100, storage: str | optuna.storages.BaseStorage | None = None,
        study_name: str = "else-dse", seed: int | None = 0,
        sampler: str | optuna.samplers.BaseSampler = "auto", workers: int = 1,
        heartbeat_interval: int | None = 10, grace_period: int | None = None,
        progress_bar: bool = False, enqueue: Sequence[Mapping[str, Any]] = ()) -> optuna.Study:
    """Run (or resume) a study until it holds ``n_trials`` complete trials; returns it.

    Everything is validated first (:func:`define`). ``sampler``: ``"auto"`` (TPE for
    one objective, NSGA-II for several), ``"tpe"``, ``"nsga2"``, ``"random"`` or an
    Optuna sampler; every sampler that reads trial constraints honours them.
    ``workers > 1`` starts that many processes on the study (worker ``i`` seeds its
    sampler with ``seed + i``; a sampler object is copied as is into every worker).
    With one worker and a seed the study is reproducible. ``heartbeat_interval``
    (seconds, RDB URLs): how often a running trial reports that its worker lives;
    after ``grace_period`` (default twice that) without one it is failed and
    retried. ``enqueue``: parameter sets to evaluate first (e.g. reference plans),
    queued when the study is new.

    >>> import numpy as np, else_dse as ed
    >>> layer = ed.Layer("c", "x", "conv", 1, 2, kernel=3, padding=1, input_shape=(1, 6, 6))
    >>> rec = ed.Recording.from_arrays([layer], {"x": np.random.default_rng(0).random((3, 1, 6, 6))})
    >>> study = ed.search.run(rec, Space(schemes=("line_y", "temporal")), ["sops", "error"],
    ...                       n_trials=4, storage=optuna.storages.InMemoryStorage())
    >>> len(study.trials), sorted(study.trials[0].user_attrs)
    (4, ['config', 'constraints', 'feasible', 'layers', 'totals'])
    """
    problem = define(recording, space, objectives, constraints=constraints, hardware=hardware)
    _check_run_args(n_trials, workers, sampler, storage, seed)
    if not isinstance(study_name, str) or not study_name:
        raise SearchError(f"study_name must be a non-empty string, got {study_name!r}")
    _make_sampler(sampler, len(problem.objectives), seed, problem.constraints)   # validates the name
    _check_enqueue(problem, enqueue)
    store = open_storage(storage, study_name, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    prepare(problem, store, study_name, enqueue)
    if workers == 1:
        work(problem, store, study_name, n_trials, sampler=sampler, seed=seed, progress_bar=progress_bar)
    else:
        spec = storage if storage is not None else f"sqlite:///{Path(f'{study_name}.db').resolve()}"
        backend = _bulk(store)
        if backend is not None:       # no open connection is inherited by the worker processes
            backend.engine.dispose()
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                          else "spawn")
        procs = [ctx.Process(target=_worker_main,
                             args=(problem, spec, study_name, n_trials, sampler,
                                   None if seed is None else seed + i, heartbeat_interval, grace_period))
                 for i in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        bad = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode != 0]
        if bad:
            raise RuntimeError(f"search workers failed (worker, exit code): {bad}; rerun to resume the study")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.load_study(study_name=study_name, storage=store,
                                 sampler=_make_sampler(sampler, len(problem.objectives), seed,
                                                       problem.constraints))


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
        plan = [Scheme.from_dict(v) for v in cfg.get("plan", {}).values()]
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
