"""Verify an open-loop study in closed loop: replay its chosen trials, store the truth beside the proxy.

:func:`verify` replays trials of a study (the Pareto front, all, or given
numbers) on the model and frames its recording was made from
(:class:`~else_dse.search.closed_loop.ClosedLoop`) and stores one trial per
verified trial in a second study ``<name>:verify`` of the same storage (Optuna
does not let a finished trial's attributes change): the same parameters, the
closed-loop values of the study's objectives, and user attributes
``verified_trial`` (the original trial's number), ``totals`` (closed-loop
events, SOPs, error and the cost model's totals: energy, latency, ...),
``fidelity`` (:func:`else_dse.tasks.fidelity` against the float run),
``layers`` (closed-loop per-layer table), ``open_loop`` (the original trial's
``values`` by objective and its ``totals``), ``config``, ``loop`` and
``replay_seconds``; the study's user attribute ``baseline_conventional`` holds the
closed-loop totals of the study's conventional baseline. A trial already verified is skipped, so a rerun only adds
what is missing (checked again before each trial is stored; should concurrent
runs on one study still store a trial twice, :func:`verified_trials` and the
report keep the first).

The study's constraints (its user attribute ``constraints``, stored by
:func:`~else_dse.search.run`) are evaluated again in closed loop: ``constraints``
(value per constraint, feasible when <= 0) and ``feasible``; ``open_loop`` keeps the
original trial's ``constraints`` and ``feasible``. A study written before
constraints were stored has neither (``constraints_rechecked`` of the verify study
is then False).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..hardware import Hardware
from ..progress import Progress
from ..schemes import Conventional, Plan, Scheme
from .closed_loop import LOOP_NOTE, ClosedLoop, value_range_of
from .objectives import Constraint, constraint_from_dict
from .space import Config, SearchError
from .storage import open_storage

__all__ = ["verify", "verify_study_name", "verified_trials", "config_of", "study_constraints"]

SUFFIX = ":verify"


def verify_study_name(name: str) -> str:
    """The name of the study that holds the verification of study ``name``."""
    return name + SUFFIX


def config_of(trial: FrozenTrial) -> Config:
    """The :class:`Config` a search trial stored (user attribute ``config``)."""
    cfg = trial.user_attrs.get("config")
    if not isinstance(cfg, dict) or "plan" not in cfg:
        raise SearchError(f"trial {trial.number}: no stored config (user attribute 'config'); "
                          "only trials of else_dse.search.run can be verified")
    tau = int(cfg.get("tau", 0))
    plan = Plan({n: Scheme.from_dict(d) for n, d in cfg["plan"].items()}, default=Conventional(tau=tau))
    hw = Hardware.from_dict(cfg["hardware"]) if cfg.get("hardware") else None
    return Config(int(cfg["bits"]), tau, plan, hw)


def _chosen(study: optuna.Study, trials: str | Sequence[int]) -> list[FrozenTrial]:
    """The trials to verify: ``"pareto"`` (the feasible front, or the best trial), ``"all"``
    complete trials, or trial numbers (a list, or ``"3,7,12"``)."""
    complete = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    if not complete:
        raise SearchError(f"study {study.study_name!r} has no complete trial to verify")
    if trials == "pareto":
        return list(study.best_trials) if len(study.directions) > 1 else [study.best_trial]
    if trials == "all":
        return [complete[n] for n in sorted(complete)]
    if isinstance(trials, str):
        try:
            trials = [int(x) for x in trials.split(",") if x.strip()]
        except ValueError:
            raise SearchError(f"trials: must be 'pareto', 'all' or trial numbers like '3,7', got {trials!r}") from None
    missing = [n for n in trials if n not in complete]
    if missing or not trials:
        raise SearchError(f"trials: {missing or 'none given'} are not complete trials of study "
                          f"{study.study_name!r} (complete: {sorted(complete)[:10]}...)")
    return [complete[n] for n in dict.fromkeys(trials)]


def _verify_study(store: optuna.storages.BaseStorage, study: optuna.Study, loop: ClosedLoop) -> optuna.Study:
    """Create or load ``<name>:verify``; its description is stored once."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        vstudy = optuna.create_study(storage=store, study_name=verify_study_name(study.study_name),
                                     directions=study.directions, load_if_exists=True)
        if "verifies" not in vstudy.user_attrs:
            objectives = list(study.user_attrs.get("objectives") or [])
            vstudy.set_user_attr("verifies", study.study_name)
            vstudy.set_user_attr("objectives", objectives)
            vstudy.set_user_attr("loop", LOOP_NOTE)
            vstudy.set_user_attr("closed_loop", {"model": loop.model.name, "n_frames": loop.n_frames,
                                                 "value_range": list(loop.value_range)})
            if objectives:
                vstudy.set_metric_names(objectives)
    return vstudy


def _baseline_config(study: optuna.Study, loop: ClosedLoop, first: FrozenTrial) -> Config:
    """The study's conventional baseline (every layer conventional, tau 0, the template hardware),
    at the study's bits (a searched bits range: the first verified trial's)."""
    search = study.user_attrs.get("search") or {}
    bits = (search.get("space") or {}).get("bits")
    bits = bits if isinstance(bits, int) else config_of(first).bits
    hw = Hardware.from_dict(search["hardware"]) if search.get("hardware") else None
    layers = loop.reference.recording.layers
    return Config(int(bits), 0, Plan({layer.name: Conventional() for layer in layers}), hw)


def verified_trials(vstudy: optuna.Study) -> list[FrozenTrial]:
    """The complete trials of a ``<name>:verify`` study, one per verified trial (the first stored,
    should concurrent runs have stored one twice), by the original trial's number."""
    out: dict[int, FrozenTrial] = {}
    for t in vstudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if "verified_trial" in t.user_attrs:
            out.setdefault(int(t.user_attrs["verified_trial"]), t)
    return [out[k] for k in sorted(out)]


def _verified(vstudy: optuna.Study) -> set[int]:
    """Numbers of the original trials ``vstudy`` already holds."""
    return {int(t.user_attrs["verified_trial"]) for t in verified_trials(vstudy)}


def study_constraints(study: optuna.Study) -> list[Constraint] | None:
    """The constraints a study was searched under (None: the study does not store them)."""
    stored = study.user_attrs.get("constraints")
    if not isinstance(stored, list):
        return None if (study.user_attrs.get("search") or {}).get("constraints") else []
    try:
        return [constraint_from_dict(d) for d in stored]
    except (KeyError, TypeError, ValueError) as exc:
        raise SearchError(f"study {study.study_name!r}: bad stored constraints: {exc}") from None


def _verify_one(loop: ClosedLoop, objectives: Sequence[str], constraints: Sequence[Constraint] | None,
                trial: FrozenTrial) -> optuna.trial.FrozenTrial:
    ev = loop.evaluate(objectives, constraints or (), config_of(trial))
    attrs = dict(ev.user_attrs)
    if constraints is None:          # unknown: nothing was re-checked
        attrs.pop("constraints", None)
        attrs.pop("feasible", None)
    attrs["verified_trial"] = trial.number
    attrs["open_loop"] = {"values": dict(zip(objectives, trial.values or ())),
                          "totals": trial.user_attrs.get("totals", {}),
                          "loop": trial.user_attrs.get("loop", "open: counted on the recording"),
                          **{k: trial.user_attrs[k] for k in ("constraints", "feasible") if k in trial.user_attrs}}
    return optuna.trial.create_trial(state=TrialState.COMPLETE, values=list(ev.values), params=trial.params,
                                     distributions=trial.distributions, user_attrs=attrs)


def verify(study: str | optuna.Study, model: str | Path, frames: Iterable[Any], trials: str | Sequence[int] = "pareto",
           *, storage: str | optuna.storages.BaseStorage, value_range: tuple[float, float] | None = None,
           progress_bar: bool = True) -> optuna.Study:
    """Replay the chosen ``trials`` of ``study`` (a name, or a study of ``storage``) in closed loop on
    ``model`` and ``frames`` and store them in ``<name>:verify`` (see the module docstring); returns
    that study. ``frames`` must be the recording's (count, value range -- by default the recording's
    own -- and the model input's codes are checked); errors are one line."""
    store = open_storage(storage, create=False)
    name = study.study_name if isinstance(study, optuna.Study) else str(study)
    if name not in optuna.get_all_study_names(store):
        raise SearchError(f"no study {name!r} in the storage; studies are {optuna.get_all_study_names(store)}")
    study = optuna.load_study(study_name=name, storage=store)
    info = study.user_attrs.get("recording") or {}
    vr = value_range if value_range is not None else value_range_of(str(info.get("preprocessing", "")))
    if vr is None:
        raise SearchError(f"value_range: study {name!r} does not store its recording's preprocessing; "
                          "pass value_range=(lo, hi) (--value-range LO HI)")
    chosen = _chosen(study, trials)
    search = study.user_attrs.get("search") or {}
    loop = ClosedLoop(model, frames, value_range=vr, progress_bar=progress_bar,
                      calibration=str((search.get("space") or {}).get("calibration", "max")))
    loop.check(info, f"study {name!r}")
    vstudy = _verify_study(store, study, loop)
    objectives = list(study.user_attrs.get("objectives") or [])
    if len(objectives) != len(study.directions):
        raise SearchError(f"study {name!r} does not store its objective names (user attribute 'objectives')")
    constraints = study_constraints(study)
    if "constraints_rechecked" not in vstudy.user_attrs:
        vstudy.set_user_attr("constraints_rechecked", constraints is not None)
    if "baseline_conventional" not in vstudy.user_attrs:
        base = loop.evaluate(objectives, (), _baseline_config(study, loop, chosen[0]))
        vstudy.set_user_attr("baseline_conventional", base.user_attrs["totals"])
    todo = [t for t in chosen if t.number not in _verified(vstudy)]
    bar = Progress(len(todo), f"verify {name}", "trial", enabled=progress_bar)
    try:
        for t in todo:
            one = _verify_one(loop, objectives, constraints, t)
            if t.number not in _verified(vstudy):   # another verify of the same study may have stored it meanwhile
                vstudy.add_trial(one)
            bar.update()
    finally:
        bar.close()
    return vstudy
