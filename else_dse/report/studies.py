"""Reading an Optuna study: trials, objectives, feasibility, per-layer tables and the stored baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..search import layer_columns
from .reference import _network_task
from .results import ReportError, Results

if TYPE_CHECKING:
    import optuna


def _directions(study: optuna.Study) -> tuple[str, ...]:
    return tuple("maximize" if d.name == "MAXIMIZE" else "minimize" for d in study.directions)


def _objective_names(study: optuna.Study) -> tuple[str, ...]:
    names = getattr(study, "metric_names", None)
    if not names:
        names = study.user_attrs.get("objectives") or study.user_attrs.get("metric_names")
    n = len(study.directions)
    if not names or len(names) != n:
        names = ["objective"] if n == 1 else [f"objective_{i}" for i in range(n)]
    return tuple(str(s) for s in names)


def _feasible(t: optuna.trial.FrozenTrial) -> bool:
    if t.constraints:                       # Optuna's constraint values (Trial.set_constraint)
        return all(float(c) <= 0 for c in t.constraints.values())
    for key in ("feasible", "fits"):
        if key in t.user_attrs and isinstance(t.user_attrs[key], (bool, int, np.bool_)):
            return bool(t.user_attrs[key])
    return True


def _is_layer_table(value: Any) -> bool:
    if layer_columns.is_encoded(value):
        return True
    if isinstance(value, list) and value and all(isinstance(r, Mapping) for r in value):
        return any(k in value[0] for k in ("layer", "name"))
    if isinstance(value, Mapping) and value:
        if any(k in value for k in ("layer", "name")) and isinstance(value.get("layer", value.get("name")), list):
            return True
        return all(isinstance(v, Mapping) for v in value.values()) and all(
            all(isinstance(x, (int, float, str, bool, type(None))) for x in v.values()) for v in value.values())
    return False


def _layer_table(value: Any) -> pd.DataFrame:
    if layer_columns.is_encoded(value):
        df = pd.DataFrame(layer_columns.decode(value))
    elif isinstance(value, list):
        df = pd.DataFrame(value)
    elif "layer" in value or "name" in value:
        df = pd.DataFrame({k: v for k, v in value.items() if isinstance(v, list)})
    else:
        df = pd.DataFrame.from_dict(value, orient="index").rename_axis("layer").reset_index()
    if "layer" not in df and "name" in df:
        df = df.rename(columns={"name": "layer"})
    df["layer"] = df["layer"].astype(str)
    df.insert(1, "layer_index", np.arange(len(df)))
    return df


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, (bool, np.bool_)):
        out[prefix] = bool(value)
    elif isinstance(value, (int, float, np.integer, np.floating)):
        out[prefix] = float(value) if isinstance(value, (float, np.floating)) else int(value)
    elif isinstance(value, str) and (len(value) <= 200 or prefix.endswith("overflow")):   # overflow: read-first
        out[prefix] = value


def _from_study(study: optuna.Study, title: str | None) -> Results:
    trials = study.get_trials(deepcopy=False)
    if not trials:
        raise ReportError(f"study {study.study_name!r} has no trials")
    objectives, directions = _objective_names(study), _directions(study)
    rows, layer_frames, config_rows = [], [], []
    for t in trials:
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name, "feasible": _feasible(t)}
        if t.values is not None:
            row.update(dict(zip(objectives, t.values)))
        for k, v in t.params.items():
            row[f"param_{k}"] = v
        scalars: dict[str, Any] = {}
        for k, v in t.user_attrs.items():
            if _is_layer_table(v):
                if t.state.name == "COMPLETE":
                    df = _layer_table(v)
                    df.insert(0, "config", f"trial {t.number}")
                    df.insert(1, "trial", t.number)
                    layer_frames.append(df)
            else:
                _flatten(k, v, scalars)
        row.update({f"attr_{k}": v for k, v in scalars.items()})
        rows.append(row)
    trials_df = pd.DataFrame(rows)
    layers = pd.concat(layer_frames, ignore_index=True) if layer_frames else pd.DataFrame()
    baseline = _study_baseline(study)
    task = _network_task({**study.user_attrs, "name": study.study_name})
    notes = [f"network task: {task}"] if task else []
    rec = study.user_attrs.get("recording")
    if isinstance(rec, Mapping):
        notes.append(f"recording: {len(rec.get('layers', []))} layers, {rec.get('n_frames', '?')} frames"
                     + (f", source {rec['source']}" if rec.get("source") else ""))
    search = study.user_attrs.get("search")
    if isinstance(search, Mapping) and isinstance(search.get("hardware"), Mapping):
        notes.append(f"hardware template: {search['hardware'].get('name', '?')}"
                     + (f"; constraints: {', '.join(search.get('constraints') or []) or 'none'}"))
    complete = trials_df[trials_df["state"] == "COMPLETE"]
    for _, r in complete.iterrows():
        totals = {k[5:]: v for k, v in r.items() if k.startswith("attr_") and isinstance(v, (int, float))
                  and not isinstance(v, bool) and not pd.isna(v)}
        config_rows.append({"config": f"trial {int(r['trial'])}", "trial": int(r["trial"]), **totals})
    reference, unfit = "conventional baseline", ""
    stored = study.user_attrs.get("baseline_conventional")
    stored = stored if isinstance(stored, Mapping) else {}
    base_layers = (_layer_table(study.user_attrs["baseline_conventional_layers"])
                   if _is_layer_table(study.user_attrs.get("baseline_conventional_layers")) else pd.DataFrame())
    if stored and not _stored_baseline_feasible(study, stored):
        why = (f"the conventional baseline on the {stored.get('hardware') or 'template'} hardware does not "
               f"meet the study's constraints" + (f" ({stored['overflow']})" if stored.get("overflow") else ""))
        temporal = {k: v for k, v in baseline.items() if k.startswith("temporal:")}
        ref = _conventional_trial(trials_df, layers, objectives)
        if ref is not None:
            number, totals = ref
            baseline = {**totals, **temporal}
            reference = f"conventional (trial {number})"
            notes.append(f"{why}; reductions are against the best conventional trial that fits and meets "
                         f"every constraint, trial {number}")
            if base_layers.empty:
                base_layers = layers[layers["trial"] == number]
        else:
            baseline, unfit = temporal, why
            notes.append(f"{why}, and no conventional trial fits and meets every constraint: no reduction is shown")
    if base_layers.empty and not layers.empty:  # older studies: a conventional trial's layers, if any
        ref = _conventional_trial(trials_df, layers, objectives, feasible=False)
        if ref is not None:
            base_layers = layers[layers["trial"] == ref[0]]
    return Results(title or f"study {study.study_name}", trials_df, objectives, directions, layers,
                   pd.DataFrame(config_rows), pd.DataFrame(), baseline, {}, tuple(notes),
                   reference=reference, baseline_unfit=unfit, baseline_layers=base_layers)


def _stored_baseline_feasible(study: optuna.Study, stored: Mapping[str, Any]) -> bool:
    """Whether the stored conventional baseline meets the study's constraints (``feasible``,
    else -- studies written before it was stored -- whether it fits when ``fits`` is a constraint)."""
    if isinstance(stored.get("feasible"), bool):
        return bool(stored["feasible"])
    search = study.user_attrs.get("search")
    constraints = search.get("constraints") or [] if isinstance(search, Mapping) else []
    return "fits" not in constraints or bool(stored.get("fits", True))


def _conventional_trial(trials: pd.DataFrame, layers: pd.DataFrame, objectives: Sequence[str],
                        feasible: bool = True) -> tuple[int, dict[str, float]] | None:
    """The best complete trial with conventional processing (tau 0) in every layer -- feasible
    unless ``feasible=False`` -- by its objectives in order; ``(number, totals)`` or None."""
    if layers.empty or "scheme" not in layers or "trial" not in layers:
        return None
    conv = layers["scheme"].astype(str).eq("conventional")
    if "tau" in layers:
        conv &= pd.to_numeric(layers["tau"], errors="coerce").fillna(0).eq(0)
    numbers = set(conv.groupby(layers["trial"]).all().loc[lambda x: x].index)
    cand = trials[trials["trial"].isin(numbers) & (trials["state"] == "COMPLETE")]
    if feasible:
        cand = cand[cand["feasible"]]
    cand = cand.dropna(subset=list(objectives))
    if cand.empty:
        return None
    row = cand.sort_values(list(objectives)).iloc[0]
    totals = {k.split(".")[-1]: float(v) for k, v in row.items() if k.startswith("attr_totals.")
              and isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
              and not pd.isna(v)}
    totals.update({o: float(row[o]) for o in objectives})
    return int(row["trial"]), totals


def _study_baseline(study: optuna.Study) -> dict[str, float]:
    """Conventional (and temporal) reference totals stored by the search in study user attributes."""
    out: dict[str, float] = {}
    for key, value in study.user_attrs.items():
        low = key.lower()
        if not isinstance(value, Mapping) or _is_layer_table(value):
            continue
        flat: dict[str, Any] = {}
        _flatten("", value, flat)
        nums = {k: float(v) for k, v in flat.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if "conventional" in low or low == "baseline":
            for k, v in nums.items():
                out.setdefault(k.split(".")[-1], v)
        elif "temporal" in low:
            for k, v in nums.items():
                out.setdefault("temporal:" + k.split(".")[-1], v)
    return out
