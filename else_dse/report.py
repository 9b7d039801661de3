"""Trade-off reports: seaborn figures and one self-contained HTML page.

:func:`write` takes an Optuna study (or a storage URL and study name) or the
event / cost datasets of :func:`else_dse.count_events` and
:func:`else_dse.estimate` and writes, under ``out_dir``::

    report.html      every figure embedded as base64 PNG; opens offline
    *.png            the figures
    trials.csv/.nc   one row per trial (studies)
    layers.csv/.nc   per-layer results (of every trial, or of every dataset)
    <name>.nc        the datasets given (datasets sources)

Reports only read what the study stored (objective values, parameters and the
cost breakdown in the trials' user attributes); they never recompute.

>>> import else_dse as ed                                   # doctest: +SKIP
>>> ed.report.write(study, "reports/my-study")              # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence, Union

import numpy as np
import pandas as pd
import xarray as xr

__all__ = ["PAPER_CLAIMS", "Results", "ReportError", "collect", "figures", "layer_table", "pareto_mask", "write"]

if TYPE_CHECKING:
    import optuna
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# matplotlib (Agg backend), seaborn and optuna are imported on first use: importing
# else_dse stays fast for users who never write a report.
plt: Any = None
sns: Any = None


def _plotting() -> None:
    global plt, sns
    if plt is None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as _plt
        import seaborn as _sns

        plt, sns = _plt, _sns


def _with_plotting(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _plotting()
        return fn(*args, **kwargs)
    return wrapper

Source = Union["optuna.Study", tuple, xr.Dataset, Mapping[str, xr.Dataset], Sequence[xr.Dataset], str, Path]

#: The ELSE paper's (Zhu et al., ECCV 2024) claimed reductions over conventional processing.
PAPER_CLAIMS = {
    "detection": (3.14, 6.49),  # fewer event-triggered computations, object detection
    "pose": (2.43, 5.75),       # fewer event-triggered computations, pose estimation
    "state_vs_temporal": 2.0,   # > 2x less state memory than temporal suppression alone
}

FIGURE_DPI = 110


class ReportError(ValueError):
    """A source the report cannot read (unknown type, missing study, empty study)."""


# ---- the collected results ------------------------------------------------------

@dataclass(frozen=True)
class Results:
    """Everything a report shows, as tables.

    ``trials``: one row per trial (``trial``, ``state``, ``feasible``, objective
    columns named as the objectives, ``param_<name>``, ``attr_<name>`` scalars).
    ``layers``: one row per (``config``, ``layer``) with per-layer variables;
    ``config`` is a trial label ``"trial 12"`` or a dataset name.
    ``configs``: one row per configuration with network totals.
    ``curves``: threshold curves, one row per (``config``, ``layer``, ``threshold``).
    """

    title: str
    trials: pd.DataFrame
    objectives: tuple[str, ...]
    directions: tuple[str, ...]
    layers: pd.DataFrame
    configs: pd.DataFrame
    curves: pd.DataFrame
    baseline: dict[str, float]
    datasets: dict[str, xr.Dataset] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: what ``baseline`` is (legend and title text)
    reference: str = "conventional baseline"
    #: why there is no feasible conventional reference ("" when there is one or none was stored)
    baseline_unfit: str = ""
    #: per-layer table of the conventional reference (empty when unknown)
    baseline_layers: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def is_study(self) -> bool:
        return not self.trials.empty


# ---- units and labels -------------------------------------------------------------

# (substring of a metric name, axis label, scale factor applied to stored values)
_UNITS: tuple[tuple[str, str, float], ...] = (
    ("energy", "energy per frame (µJ)", 1e-6),
    ("latency", "latency per frame (ms)", 1e3),
    ("state", "state memory (KiB)", 1 / 1024),
    ("weight", "weight memory (KiB)", 1 / 1024),
    ("bytes", "memory (KiB)", 1 / 1024),
    ("memory", "memory (KiB)", 1 / 1024),
    ("rel_error", "relative error ||X-R||/||X||", 1.0),
    ("max_error", "max |X-R| (code steps)", 1.0),
    ("error", "relative error ||X-R||/||X|| (mean over layers)", 1.0),
    ("sops", "SOPs per frame (millions)", 1e-6),
    ("macs", "MACs per frame (millions)", 1e-6),
    ("events", "events per frame (thousands)", 1e-3),
    ("cores", "cores used", 1.0),
)


def _unit(name: str) -> tuple[str, float]:
    low = name.lower()
    for key, label, scale in _UNITS:
        if key in low:
            if key == "error" and "rel" in low:
                return "relative error ||X-R||/||X||", 1.0
            return label, scale
    return name, 1.0


def _label(name: str) -> str:
    label, _ = _unit(name)
    return label if label != name else name.replace("_", " ")


# ---- collecting results from a source --------------------------------------------

def collect(source: Source, title: str | None = None) -> Results:
    """Turn a study, ``(storage_url, study_name)``, dataset(s) or NetCDF path(s) into :class:`Results`."""
    import optuna

    if isinstance(source, tuple) and len(source) == 2 and all(isinstance(s, str) for s in source):
        url, name = source
        try:
            source = optuna.load_study(study_name=name, storage=url)
        except KeyError as exc:
            raise ReportError(f"no study {name!r} in storage {url!r}") from exc
    if isinstance(source, optuna.Study):
        return _from_study(source, title)
    datasets = _as_datasets(source)
    return _from_datasets(datasets, title)


def _open_nc(path: Path) -> xr.Dataset:
    if not path.exists():
        raise ReportError(f"{path}: no such results file")
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise ReportError(f"{path}: cannot be read as NetCDF: {exc}") from exc


def _as_datasets(source: Any) -> dict[str, tuple[xr.Dataset, ...]]:
    """``{configuration name: (datasets...)}``; an event and a cost dataset of the
    same scheme (same derived name) are grouped into one configuration."""
    if isinstance(source, (xr.Dataset, str, Path)):
        source = [source]
    items: list[tuple[str | None, Any]]
    if isinstance(source, Mapping):
        items = [(str(k), v) for k, v in source.items()]
    elif isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        items = [(None, v) for v in source]
    else:
        raise ReportError(
            f"cannot report on a {type(source).__name__}; give an optuna.Study, a "
            "(storage URL, study name) pair, xarray Datasets (or a dict of them) or NetCDF paths")
    out: dict[str, tuple[xr.Dataset, ...]] = {}
    for i, (name, value) in enumerate(items):
        parts = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        parts = tuple(_open_nc(Path(p)) if isinstance(p, (str, Path)) else p for p in parts)
        for ds in parts:
            if not isinstance(ds, xr.Dataset):
                raise ReportError(f"{name or i!r}: expected an xarray.Dataset, got {type(ds).__name__}")
        if name is None:
            if out and len(parts) == 1 and _pairs_with(out[list(out)[-1]], parts[0]):
                last = list(out)[-1]
                out[last] = out[last] + parts
                continue
            stem = Path(value).stem if isinstance(value, (str, Path)) else f"dataset {i}"
            name = _dataset_name(parts[0], stem)
            if name in out:
                name = f"{name} ({stem})"
        while name in out:
            name += "'"
        out[name] = parts
    if not out:
        raise ReportError("no datasets to report on")
    return out


def _pairs_with(prev: tuple[xr.Dataset, ...], ds: xr.Dataset) -> bool:
    """An event dataset followed by the cost dataset of the same layers and schemes: one configuration."""
    if len(prev) != 1 or {_kind(prev[0]), _kind(ds)} != {"events", "cost"}:
        return False
    a, b = prev[0], ds
    same = lambda c: c in a.coords and c in b.coords and list(map(str, a[c].values)) == list(map(str, b[c].values))  # noqa: E731
    return same("layer") and same("scheme")


def _dataset_name(ds: xr.Dataset, fallback: str) -> str:
    if "scheme" in ds.coords and "layer" in ds.dims:
        kinds = list(dict.fromkeys(str(s) for s in np.atleast_1d(ds.coords["scheme"].values)))
        name = "+".join(kinds)
        if "threshold" in ds.coords and ds.coords["threshold"].dims == ("layer",):
            th = sorted(set(int(t) for t in np.atleast_1d(ds.coords["threshold"].values)))
            if th and th != [0]:
                name += " θ=" + ",".join(map(str, th))
        return name
    return str(ds.attrs.get("name", fallback))


def _kind(ds: xr.Dataset) -> str:
    if "threshold" in ds.dims and "events" in ds:
        return "curve"
    if "energy_pj" in ds or "total_energy_pj" in ds:
        return "cost"
    if "events" in ds and "layer" in ds.dims:
        return "events"
    return "other"


def _network_task(attrs: Mapping[str, Any]) -> str | None:
    text = " ".join(str(v) for k, v in attrs.items() if k != "layers").lower()
    if any(w in text for w in ("blazeface", "posedet", "pose_detection", "face_detection", "detect")):
        return "detection"
    if any(w in text for w in ("landmark", "pose")):
        return "pose"
    return None


def layer_table(ds: xr.Dataset) -> pd.DataFrame:
    """Per-layer rows of an event or cost dataset: frame averages (``max_error``: the maximum),
    the per-layer coordinates (scheme, axis, threshold, tau, op) and ``layer_index``."""
    cols: dict[str, Any] = {"layer": [str(v) for v in ds["layer"].values]}
    for coord in ("scheme", "axis", "threshold", "tau", "op"):
        if coord in ds.coords and ds.coords[coord].dims == ("layer",):
            cols[coord] = ds.coords[coord].values
    for v, da in ds.data_vars.items():
        if "layer" not in da.dims or not set(da.dims) <= {"layer", "frame"}:
            continue
        if "frame" in da.dims:
            da = da.max("frame") if str(v) == "max_error" else da.astype(float).mean("frame")
        if da.dtype.kind in "biuf":
            cols[str(v)] = da.values
    df = pd.DataFrame(cols)
    df.insert(1, "layer_index", np.arange(len(df)))
    return df


# per-layer columns whose network total is their sum over layers (errors: max / mean)
_ADDITIVE = re.compile(r"(events|events_out|sops|dense_events|dense_macs|neuron_updates|max_error|rel_error|"
                       r"energy(_\w+)?_pj|latency_s|cores|weight_bytes|state_\w+_bytes|buffer_bytes)")


def _totals(layers: pd.DataFrame, ds: xr.Dataset | None = None) -> dict[str, float]:
    out: dict[str, float] = {}
    if ds is not None:
        for v, da in ds.data_vars.items():
            if da.ndim == 0 and da.dtype.kind in "biuf":
                out[str(v)] = float(da.values)
    for c in layers.columns:
        if not _ADDITIVE.fullmatch(c) or layers[c].dtype.kind not in "biuf":
            continue
        if c == "max_error":
            out.setdefault("max_error", float(layers[c].max()))
        elif c == "rel_error":
            out.setdefault("rel_error", float(layers[c].mean()))
        else:
            out.setdefault(f"total_{c}" if not c.startswith("total_") else c, float(layers[c].sum()))
    return out


def _from_datasets(datasets: dict[str, tuple[xr.Dataset, ...]], title: str | None) -> Results:
    layer_frames, config_rows, curve_frames = [], [], []
    baseline: dict[str, float] = {}
    base_layers: pd.DataFrame | None = None
    task = None
    for name, parts in datasets.items():
        merged: pd.DataFrame | None = None
        totals: dict[str, float] = {}
        for ds in parts:
            task = task or _network_task(ds.attrs)
            kind = _kind(ds)
            if kind == "curve":
                curve_frames.append(_curve_rows(name, ds))
                continue
            if kind not in ("events", "cost"):
                continue
            lay = layer_table(ds)
            for k, v in _totals(lay, ds).items():
                totals.setdefault(k, v)
            if merged is None:
                merged = lay
            else:
                extra = [c for c in lay.columns if c not in merged.columns]
                merged = merged.merge(lay[["layer"] + extra], on="layer", how="left")
        if merged is None:
            continue
        merged.insert(0, "config", name)
        layer_frames.append(merged)
        config_rows.append({"config": name, **totals})
        schemes = set(merged["scheme"]) if "scheme" in merged else set()
        if schemes == {"conventional"} or (not schemes and name.lower().startswith("conventional")):
            for k, v in totals.items():
                baseline.setdefault(k, v)
            if base_layers is None:
                base_layers = merged
        if schemes == {"temporal_delta"}:
            for k, v in totals.items():
                if "state" in k:
                    baseline.setdefault(f"temporal:{k}", v)
    layers = pd.concat(layer_frames, ignore_index=True) if layer_frames else pd.DataFrame()
    curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else pd.DataFrame()
    notes = (f"network task: {task}",) if task else ()
    flat = {(n if len(p) == 1 else f"{n} #{j}"): d for n, p in datasets.items() for j, d in enumerate(p)}
    return Results(title or "else-dse results", pd.DataFrame(), (), (), layers, pd.DataFrame(config_rows),
                   curves, baseline, flat, notes,
                   baseline_layers=base_layers if base_layers is not None else pd.DataFrame())


def _curve_rows(name: str, ds: xr.Dataset) -> pd.DataFrame:
    out = []
    for v in ("events", "sops", "max_error", "rel_error"):
        if v not in ds:
            continue
        da = ds[v]
        da = da.max("frame") if (v == "max_error" and "frame" in da.dims) else (
            da.astype(float).mean("frame") if "frame" in da.dims else da)
        out.append(da.rename(v).to_dataframe()[[v]])
    df = pd.concat(out, axis=1).reset_index()
    df.insert(0, "config", name)
    if "layer" not in df:
        df["layer"] = str(ds.attrs.get("layer", name))
    return df


# ---- studies ---------------------------------------------------------------------

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
    cons = t.system_attrs.get("constraints")  # Optuna's constraints_func
    named = [v for k, v in t.system_attrs.items() if k.startswith("constraints:")]  # Trial.set_constraint
    if cons is not None or named:
        return all(float(c) <= 0 for c in [*(cons or []), *named])
    for key in ("feasible", "fits"):
        if key in t.user_attrs and isinstance(t.user_attrs[key], (bool, int, np.bool_)):
            return bool(t.user_attrs[key])
    return True


def _is_layer_table(value: Any) -> bool:
    if isinstance(value, list) and value and all(isinstance(r, Mapping) for r in value):
        return any(k in value[0] for k in ("layer", "name"))
    if isinstance(value, Mapping) and value:
        if any(k in value for k in ("layer", "name")) and isinstance(value.get("layer", value.get("name")), list):
            return True
        return all(isinstance(v, Mapping) for v in value.values()) and all(
            all(isinstance(x, (int, float, str, bool, type(None))) for x in v.values()) for v in value.values())
    return False


def _layer_table(value: Any) -> pd.DataFrame:
    if isinstance(value, list):
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
    elif isinstance(value, str) and len(value) <= 200:
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
            notes.append(f"{why}; reductions are against the best feasible conventional trial, trial {number}")
            if base_layers.empty:
                base_layers = layers[layers["trial"] == number]
        else:
            baseline, unfit = temporal, why
            notes.append(f"{why}, and no feasible conventional trial exists: no reduction is shown")
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


# ---- Pareto front ------------------------------------------------------------------

def pareto_mask(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Rows of ``values`` (n, m) that no other row dominates."""
    v = np.asarray(values, dtype=float) * np.array([1 if d == "minimize" else -1 for d in directions])
    n = len(v)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        if not mask[i]:
            continue
        dominated = np.all(v <= v[i], axis=1) & np.any(v < v[i], axis=1)
        if dominated.any():
            mask[i] = False
    return mask


def _baseline_value(res: Results, metric: str) -> float | None:
    low = metric.lower()
    for key in (metric, f"total_{metric}", low, f"total_{low}"):
        if key in res.baseline:
            return res.baseline[key]
    for key, v in res.baseline.items():
        if not key.startswith("temporal:") and (key.endswith(low) or low.endswith(key.replace("total_", ""))):
            return v
    for key, canon in (("sop", "total_sops"), ("event", "total_events"), ("energy", "total_energy_pj"),
                       ("latency", "total_latency_s"), ("persistent", "total_state_persistent_bytes")):
        if key in low and canon in res.baseline:
            return res.baseline[canon]
    return None


def _temporal_state(res: Results) -> float | None:
    for key, v in res.baseline.items():
        if key.startswith("temporal:") and "persistent" in key:
            return v
    return None


def _mark_claims(ax: Axes, res: Results, metric: str, scale: float, orient: str = "y") -> None:
    """Baseline line and the paper's claimed reduction bands on the axis of ``metric``."""
    span = ax.axhspan if orient == "y" else ax.axvspan
    line = ax.axhline if orient == "y" else ax.axvline
    low = metric.lower()
    base = _baseline_value(res, metric)
    if base is not None and base > 0:
        line(base * scale, color="black", ls="--", lw=1.2, label=res.reference)
        if "sop" in low or "event" in low:
            task = next((n.split(": ")[1] for n in res.notes if n.startswith("network task")), None)
            tasks = [task] if task else ["detection", "pose"]
            colors = {"detection": "tab:green", "pose": "tab:purple"}
            for t in tasks:
                lo, hi = PAPER_CLAIMS[t]
                span(base * scale / hi, base * scale / lo, color=colors[t], alpha=0.15,
                     label=f"paper claim, {t}: {lo}–{hi}x fewer")
    temporal = _temporal_state(res)
    if temporal and "state" in low:
        line(temporal * scale, color="tab:red", ls=":", lw=1.2, label="temporal delta state")
        line(temporal * scale / PAPER_CLAIMS["state_vs_temporal"], color="tab:red", ls="--", lw=1.2,
             label="paper claim: >2x less state")


def _x_rank(name: str) -> int:
    """Which objective goes on the x axis: error first, then latency, then memory (cost on y)."""
    low = name.lower()
    return 0 if "error" in low else 1 if "latency" in low else 2 if ("memory" in low or "state" in low) else 3


def _pareto_pair(res: Results) -> list[tuple[str, str]]:
    """Up to three (x, y) objective pairs to plot, in the conventional reading "cost vs error"."""
    objs = list(res.objectives)
    pairs = [(objs[i], objs[j]) for i in range(len(objs)) for j in range(i + 1, len(objs))]
    return [(a, b) if _x_rank(a) <= _x_rank(b) else (b, a) for a, b in pairs][:3]


_SHORT = {"sops": "SOPs", "events": "events", "energy": "energy", "latency": "latency",
          "state_memory": "state memory", "frame_memory": "frame memory", "cores": "cores"}


def _at(metric: str, value: float) -> str:
    """``rel. error 0.12``, ``latency 1.2 ms``: an objective value in words, for titles."""
    low = metric.lower()
    if low == "error" or "rel_error" in low:
        return f"rel. error {value:.2g}"
    if "max_error" in low:
        return f"max error {value:g} code steps"
    label, scale = _unit(metric)
    unit = label[label.rfind("(") + 1:-1] if label.endswith(")") else ""
    name = _SHORT.get(low, metric.replace("_", " "))
    return f"{name} {value * scale:.3g}" + (f" {unit}" if unit and "million" not in unit
                                            and "thousand" not in unit else "")


def _best_text(res: Results, front: pd.DataFrame, xm: str, ym: str, base: float | None) -> str:
    """Title text: the best reduction of ``ym`` on the front vs the reference, and at what ``xm``
    (with the lossless reduction when ``xm`` is an error); says so when the baseline does not fit."""
    if "error" in ym.lower():
        return ""
    if not base:
        return ": conventional baseline does not fit" if res.baseline_unfit else ""
    front = front[front[ym] > 0]
    if front.empty:
        return ""
    best = front.loc[front[ym].idxmin()]
    low = ym.lower()
    verb = "fewer" if any(k in low for k in ("sops", "events", "cores")) else "lower"
    text = f": best {base / best[ym]:.2f}x {verb} {_SHORT.get(low, ym.replace('_', ' '))} at {_at(xm, best[xm])}"
    if "error" in xm.lower():
        lossless = front[front[xm] <= 0]
        text += (f"; lossless {base / lossless[ym].min():.2f}x" if len(lossless) else "; no lossless trial")
    if res.reference != "conventional baseline":
        text += f" (vs {res.reference})"
    return text


def _category_param(trials: pd.DataFrame) -> str | None:
    """The study's only non-numeric parameter, when it has few values (else None)."""
    cats = [c for c in trials if c.startswith("param_") and not pd.api.types.is_numeric_dtype(trials[c])]
    if len(cats) == 1 and 1 < trials[cats[0]].nunique() <= 6:
        return cats[0]
    return None


@_with_plotting
def fig_pareto(res: Results) -> Figure | None:
    """Pareto front(s): cost vs error (or energy vs latency) over trials or schemes."""
    if res.is_study:
        done = res.trials[res.trials["state"] == "COMPLETE"].dropna(subset=list(res.objectives))
        if done.empty:
            return None
        pairs = _pareto_pair(res)
        if not pairs:  # single objective: the objective over trials, running best
            obj = res.objectives[0]
            _, scale = _unit(obj)
            fig, ax = plt.subplots(figsize=(7.5, 4.5))
            sns.scatterplot(data=done.assign(y=done[obj] * scale), x="trial", y="y", hue="feasible",
                            palette={True: "tab:blue", False: "lightgrey"}, ax=ax, s=30)
            best = (done[obj].cummin() if res.directions[0] == "minimize" else done[obj].cummax()) * scale
            ax.plot(done["trial"], best, color="tab:orange", lw=2, label="best so far")
            _mark_claims(ax, res, obj, scale)
            ax.set(xlabel="trial", ylabel=_label(obj), title=f"{obj} over the study")
            ax.legend(fontsize=8)
            fig.tight_layout()
            return fig
        fig, axes = plt.subplots(len(pairs), 1, figsize=(10, 5.2 * len(pairs)), squeeze=False)
        feas = done[done["feasible"]]
        mask = pareto_mask(feas[list(res.objectives)].to_numpy(), res.directions) if len(feas) else []
        front = feas[mask] if len(feas) else feas
        n_front = len(front.drop_duplicates(list(res.objectives)))
        cat = _category_param(feas)
        for ax, (xm, ym) in zip(axes[:, 0], pairs):
            (_, sx), (_, sy) = _unit(xm), _unit(ym)
            ax.scatter(done.loc[~done["feasible"], xm] * sx, done.loc[~done["feasible"], ym] * sy,
                       c="lightgrey", s=18, marker="x", label="infeasible")
            if cat is None:
                ax.scatter(feas[xm] * sx, feas[ym] * sy, c="tab:blue", s=18, alpha=0.5, label="trials")
            else:  # one choice parameter (e.g. the scheme): colour the trials by it
                for (value, g), color in zip(feas.groupby(cat), sns.color_palette("deep")[2:]):
                    ax.scatter(g[xm] * sx, g[ym] * sy, color=color, s=22, alpha=0.7,
                               label=f"trials, {cat[6:]} = {value}")
            if len(res.objectives) == 2:
                pair_front = front
                ax.plot([], [], "o-", color="tab:orange", ms=9, lw=2, mfc="none", mew=1.8,
                        label=f"Pareto front ({n_front} distinct)")
            else:  # the study's front in this projection, and this pair's own 2-D front as a line
                ax.scatter(front[xm] * sx, front[ym] * sy, s=81, facecolors="none", edgecolors="tab:orange",
                           linewidths=1.8, label=f"Pareto front, all objectives ({n_front} distinct)")
                d = res.directions
                dirs = (d[res.objectives.index(xm)], d[res.objectives.index(ym)])
                pair_front = feas[pareto_mask(feas[[xm, ym]].to_numpy(), dirs)] if len(feas) else feas
            f2 = pair_front.sort_values(xm)
            ax.plot(f2[xm] * sx, f2[ym] * sy, "-", color="tab:orange", lw=2, drawstyle="steps-post",
                    label=None if len(res.objectives) == 2 else f"front of {ym} vs {xm}")
            if len(res.objectives) == 2:
                ax.scatter(f2[xm] * sx, f2[ym] * sy, s=81, facecolors="none", edgecolors="tab:orange",
                           linewidths=1.8)
            _mark_claims(ax, res, ym, sy)
            bx = _baseline_value(res, xm)
            by = _baseline_value(res, ym)
            if bx is not None and by is not None:  # one legend entry when the dashed line has it
                drawn = res.reference in ax.get_legend_handles_labels()[1]
                ax.scatter([bx * sx], [by * sy], marker="*", s=250, c="black", zorder=5,
                           label=None if drawn else res.reference)
            title = f"{ym} vs {xm}" + _best_text(res, pair_front, xm, ym, by)
            ax.set(xlabel=_label(xm), ylabel=_label(ym), title=title)
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        fig.suptitle(res.title, fontsize=11)
        fig.tight_layout()
        return fig
    if res.configs.empty:
        return None
    ycol = next((c for c in ("total_sops", "total_energy_pj", "total_events") if c in res.configs), None)
    xcol = "rel_error" if "rel_error" in res.configs else ("total_latency_s" if "total_latency_s" in res.configs
                                                          else None)
    if ycol is None or xcol is None:
        return None
    df = res.configs.dropna(subset=[xcol, ycol])
    (_, sx), (_, sy) = _unit(xcol), _unit(ycol)
    fig, ax = plt.subplots(figsize=(10, 5.2))
    sns.scatterplot(x=df[xcol] * sx, y=df[ycol] * sy, hue=df["config"], s=90, ax=ax, style=df["config"])
    mask = pareto_mask(df[[xcol, ycol]].to_numpy(), ("minimize", "minimize"))
    f2 = df[mask].sort_values(xcol)
    ax.plot(f2[xcol] * sx, f2[ycol] * sy, "-", color="tab:orange", lw=2, drawstyle="steps-post",
            label="Pareto front", zorder=0)
    _mark_claims(ax, res, ycol, sy)
    base = _baseline_value(res, ycol)
    if base:
        for xv, yv in zip(df[xcol], df[ycol]):
            if yv > 0:
                ax.annotate(f"{base / yv:.2f}x", (xv * sx, yv * sy), textcoords="offset points", xytext=(6, 6),
                            fontsize=9)
    ax.set(xlabel=_label(xcol), ylabel=_label(ycol),
           title="per scheme; labels: reduction vs conventional")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


# ---- per-layer figures ---------------------------------------------------------------

def _chosen_configs(res: Results, k: int = 4) -> list[str]:
    """Configurations to show per layer: every dataset, or the best Pareto trials of a study."""
    if res.layers.empty:
        return []
    have = list(dict.fromkeys(res.layers["config"]))
    if not res.is_study:
        return have
    done = res.trials[(res.trials["state"] == "COMPLETE") & res.trials["feasible"]].dropna(
        subset=list(res.objectives))
    done = done[done["trial"].map(lambda n: f"trial {n}" in set(have))]
    if done.empty:
        return have[:k]
    mask = pareto_mask(done[list(res.objectives)].to_numpy(), res.directions)
    front = done[mask].sort_values(res.objectives[0], ascending=res.directions[0] == "minimize")
    front = front.drop_duplicates(list(res.objectives))  # one trial per distinct result
    idx = np.unique(np.linspace(0, len(front) - 1, min(k, len(front))).round().astype(int))
    return [f"trial {int(n)}" for n in front.iloc[idx]["trial"]]


def _layer_ticks(ax: Axes, names: Sequence[str]) -> None:
    n = len(names)
    step = max(1, math.ceil(n / 30))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([names[i] for i in ticks], rotation=75, ha="right", fontsize=7)


def _scheme_name(row: Mapping[str, Any]) -> str:
    """The search's name of a layer's scheme: ``line_y``, ``line_x_reverse``, ``temporal``, ..."""
    choice = row.get("choice")
    if isinstance(choice, str) and choice:
        return choice
    kind = str(row.get("scheme", "?"))
    if kind == "line_delta":
        reverse = str(row.get("direction", "forward")) == "reverse"
        return f"line_{row.get('axis') or 'y'}" + ("_reverse" if reverse else "")
    return {"temporal_delta": "temporal"}.get(kind, kind)


def scheme_label(layers: pd.DataFrame) -> str:
    """What a configuration does, from its per-layer rows: ``line_x θ=2``, ``conventional``,
    ``temporal θ=0–3``, or for mixed plans the scheme counts (``mixed: 20 line_y, 17 temporal; θ=0–2``)."""
    if layers.empty:
        return "?"
    names = pd.Series([_scheme_name(r) for r in layers.to_dict("records")], index=layers.index)
    thr = pd.to_numeric(layers["threshold"], errors="coerce").fillna(0).astype(int) if "threshold" in layers \
        else pd.Series(0, index=layers.index)
    thresholded = ~names.isin(["conventional", "dense"])
    ths = sorted(set(thr[thresholded]))
    theta = "" if not ths else f" θ={ths[0]}" if len(ths) == 1 else f" θ={ths[0]}–{ths[-1]}"
    counts = names.value_counts()
    if len(counts) == 1:
        text = f"{counts.index[0]}{theta}"
    else:
        text = "mixed: " + ", ".join(f"{n} {k}" for k, n in counts.items()) + (f";{theta}" if theta else "")
    if "tau" in layers:
        taus = sorted(set(pd.to_numeric(layers["tau"], errors="coerce").fillna(0).astype(int)))
        if taus != [0]:
            text += f" τ={taus[0]}" if len(taus) == 1 else f" τ={taus[0]}–{taus[-1]}"
    return text


def _trial_label(res: Results, number: int) -> str:
    """A study trial's scheme and threshold: the drawn ``scheme``/``threshold`` of a shared space
    (``line_x θ=2``), else :func:`scheme_label` of its per-layer rows."""
    row = res.trials[res.trials["trial"] == number]
    if "param_scheme" in row and len(row) and isinstance(row["param_scheme"].iloc[0], str):
        name = row["param_scheme"].iloc[0]
        th = row["param_threshold"].iloc[0] if "param_threshold" in row else None
        return name if name in ("conventional", "dense") or th is None or pd.isna(th) else f"{name} θ={int(th)}"
    return scheme_label(res.layers[res.layers["trial"] == number])


def _config_labels(res: Results, configs: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for cfg in configs:
        if res.is_study:
            out[cfg] = f"{_trial_label(res, int(cfg.split()[1]))} ({cfg})"
        else:
            text = scheme_label(res.layers[res.layers["config"] == cfg])
            out[cfg] = text if text not in out.values() else f"{text} ({cfg})"
    return out


def _layer_configs(res: Results, k: int = 4) -> list[str]:
    """The configurations of the per-layer figure: :func:`_chosen_configs`, plus for a study one
    trial of every other scheme of a uniform plan (the middle of that scheme's own front), up to 7;
    conventional ones are left to the conventional reference line when there is one."""
    configs = _chosen_configs(res, k)
    if not res.is_study or res.layers.empty:
        return configs
    done = res.trials[(res.trials["state"] == "COMPLETE") & res.trials["feasible"]].dropna(
        subset=list(res.objectives))
    have = set(res.layers["trial"])
    done = done[done["trial"].isin(have)]
    scheme = {int(n): _trial_label(res, int(n)).split(" ")[0] for n in done["trial"]}
    shown = {scheme.get(int(c.split()[1])) for c in configs}
    for name in sorted(set(scheme.values()) - shown - {"mixed:", "conventional"}):
        if len(configs) >= 7:
            break
        sub = done[done["trial"].map(scheme) == name]
        front = sub[pareto_mask(sub[list(res.objectives)].to_numpy(), res.directions)]
        front = front.drop_duplicates(list(res.objectives)).sort_values(res.objectives[0])
        configs.append(f"trial {int(front.iloc[len(front) // 2]['trial'])}")
    if not res.baseline_layers.empty:
        kept = [c for c in configs if scheme.get(int(c.split()[1])) != "conventional"]
        configs = kept or configs
    return configs


@_with_plotting
def fig_layers(res: Results) -> Figure | None:
    """Events and SOPs per layer for each scheme (log scale), labelled with scheme and threshold;
    the conventional reference (black) and dense (dotted grey) for comparison."""
    configs = _layer_configs(res)
    if not configs or not {"events", "sops"} & set(res.layers.columns):
        return None
    df = res.layers[res.layers["config"].isin(configs)]
    labels = _config_labels(res, configs)
    base = res.baseline_layers
    if not res.is_study and not base.empty:  # the conventional dataset is the black reference line
        configs = [c for c in configs if c not in set(base["config"])] or configs
    metrics = [m for m in ("events", "sops") if m in df]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(12, 3.8 * len(metrics) + 0.4), sharex=True,
                             squeeze=False)
    names = list(df[df["config"] == configs[0]]["layer"])
    palette = dict(zip(configs, sns.color_palette("deep", len(configs))))
    for ax, m in zip(axes[:, 0], metrics):
        _, scale = _unit(m)
        for cfg in configs:
            d = df[df["config"] == cfg]
            ax.plot(d["layer_index"], d[m].astype(float) * scale, marker="o", ms=3.5, lw=1.4,
                    color=palette[cfg], label=labels[cfg])
        if m in base:
            ax.plot(base["layer_index"], base[m].astype(float) * scale, color="black", lw=1.8,
                    label="conventional (zero skipping)" if res.reference == "conventional baseline"
                    else res.reference)
        dense = {"events": "dense_events", "sops": "dense_macs"}[m]
        ref = df[df["config"] == configs[0]]
        if dense in ref:
            ax.plot(ref["layer_index"], ref[dense].astype(float) * scale, color="grey", ls=":", lw=1.5,
                    label="dense")
        ax.set_yscale("log")
        ax.set(ylabel=_label(m), xlabel="layer", title=f"{m} per layer and scheme (frame average)")
    legend: dict[str, Any] = {}
    for ax in axes[:, 0]:
        for h, t in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(t, h)
    handles, texts = list(legend.values()), list(legend)
    fig.legend(handles, texts, fontsize=8, loc="upper center", ncol=min(4, len(texts)), frameon=False)
    _layer_ticks(axes[-1, 0], names)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 * math.ceil(len(texts) / 4) / (3.8 * len(metrics) + 0.4)))
    return fig


@_with_plotting
def fig_thresholds(res: Results) -> Figure | None:
    """Threshold vs events vs error: curves, per-scheme datasets, or trials' threshold parameters."""
    if not res.curves.empty:
        df = res.curves.copy()
        df["series"] = df["config"] if df["layer"].nunique() == 1 else df["config"] + " / " + df["layer"]
        metric = "sops" if "sops" in df else "events"
        err = "rel_error" if "rel_error" in df else "max_error"
        x, hue = "threshold", "series"
    elif not res.is_study and "threshold" in res.layers and res.layers["threshold"].nunique() > 1:
        rows = []
        for c in res.configs.itertuples():
            lay = res.layers[res.layers["config"] == c.config]
            rows.append({"threshold": float(lay["threshold"].mean()),
                         "series": "+".join(sorted(set(map(str, lay.get("scheme", ["?"]))))) +
                         ("" if "axis" not in lay else " " + "".join(sorted(set(lay["axis"])))),
                         **{k: getattr(c, k) for k in ("total_sops", "total_events", "rel_error", "max_error")
                            if hasattr(c, k)}})
        df = pd.DataFrame(rows)
        metric = "total_sops" if "total_sops" in df else "total_events"
        err = "rel_error" if "rel_error" in df else "max_error"
        x, hue = "threshold", "series"
    elif res.is_study:
        th = [c for c in res.trials if c.startswith("param_") and "threshold" in c.lower()]
        done = res.trials[res.trials["state"] == "COMPLETE"]
        metric = next((o for o in res.objectives if any(k in o.lower() for k in ("sop", "event", "energy"))), None)
        err = next((o for o in res.objectives if "error" in o.lower()), None)
        if metric is None:
            metric = next((c for c in done if c.startswith("attr_") and ("sops" in c or "events" in c)), None)
        if err is None:
            err = next((c for c in done if c.startswith("attr_") and "error" in c), None)
        if not th or metric is None or err is None or done.empty:
            return None
        cats = [c for c in done if c.startswith("param_") and c not in th
                and not pd.api.types.is_numeric_dtype(done[c])]
        series = done[cats[0]].astype(str) if len(cats) == 1 and done[cats[0]].nunique() <= 8 else "trials"
        df = done.assign(threshold=done[th].apply(pd.to_numeric, errors="coerce").mean(axis=1),
                         series=series)
        x, hue = "threshold", "series"
    else:
        return None
    df = df.dropna(subset=[x, metric, err])
    if df.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    (_, sm), (_, se) = _unit(metric), _unit(err)
    kw: dict[str, Any] = dict(x=x, hue=hue, ax=None)
    many = df[hue].nunique() > 12
    for ax, (col, s, lab) in zip(axes, ((metric, sm, _label(metric)), (err, se, _label(err)))):
        d = df.assign(v=df[col].astype(float) * s)
        if res.is_study and res.curves.empty:
            if d["series"].nunique() > 1:
                order = sorted(d["series"].unique())
                palette = dict(zip(order, sns.color_palette(n_colors=len(order))))
                sns.scatterplot(data=d, x=x, y="v", hue="series", hue_order=order, palette=palette, ax=ax,
                                alpha=0.7, s=30)
                for name, g in d.groupby("series"):
                    binned = g.groupby(g[x].round(1))["v"].median()
                    ax.plot(binned.index, binned.to_numpy(), color=palette[name], lw=1.5)
            else:
                sns.scatterplot(data=d, x=x, y="v", ax=ax, alpha=0.6, s=25, label="trials")
                binned = d.groupby(d[x].round(1))["v"].median()
                ax.plot(binned.index, binned.to_numpy(), color="tab:orange", lw=2, label="median")
        else:
            sns.lineplot(data=d, y="v", marker="o", ax=ax, legend=not many and ax is axes[0],
                         **{k: v for k, v in kw.items() if k != "ax"})
        if col == metric:
            _mark_claims(ax, res, metric, s)
            ax.set_yscale("log") if d["v"].gt(0).all() and d["v"].max() / max(d["v"].min(), 1e-12) > 20 else None
        xl = "mean threshold over layers (code steps)" if res.is_study else "threshold θ (code steps)"
        ax.set(xlabel=xl, ylabel=lab)
    axes[0].set_title("computations vs threshold")
    axes[1].set_title("error vs threshold")
    if axes[0].get_legend():
        axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


@_with_plotting
def fig_energy(res: Results) -> Figure | None:
    """Energy per frame by component (synaptic, neuron, events/NoC, memory, static) per configuration."""
    configs = _chosen_configs(res, k=6)
    if not configs:
        return None
    df = res.layers[res.layers["config"].isin(configs)]
    comps = [c for c in df.columns if re.fullmatch(r"energy_.+_pj", c)]
    if not comps:
        return None
    totals = df.groupby("config", sort=False)[comps].sum().reindex(configs) * 1e-6
    totals.columns = [c[len("energy_"):-len("_pj")] for c in comps]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1, 1.6]})
    bottom = np.zeros(len(totals))
    palette = sns.color_palette("Set2", len(totals.columns))
    for color, comp in zip(palette, totals.columns):
        axes[0].bar(range(len(totals)), totals[comp], bottom=bottom, color=color, label=comp)
        bottom += totals[comp].to_numpy()
    axes[0].set_xticks(range(len(totals)))
    axes[0].set_xticklabels(totals.index, rotation=30, ha="right", fontsize=8)
    axes[0].set(ylabel="energy per frame (µJ)", title="energy by component")
    axes[0].legend(fontsize=8)
    first = df[df["config"] == configs[0]]
    per_layer = first[["layer_index"] + comps].set_index("layer_index") * 1e-6
    bottom = np.zeros(len(per_layer))
    for color, comp in zip(palette, comps):
        axes[1].bar(per_layer.index, per_layer[comp], bottom=bottom, color=color, width=0.85)
        bottom += per_layer[comp].to_numpy()
    axes[1].set(ylabel="energy per frame (µJ)", xlabel="layer", title=f"energy by layer, {configs[0]}")
    _layer_ticks(axes[1], list(first["layer"]))
    fig.tight_layout()
    return fig


@_with_plotting
def fig_state(res: Results) -> Figure | None:
    """State memory: totals per configuration (with the paper's >2x-below-temporal mark when a
    temporal-delta reference is known), then per layer, persistent across frames vs within a frame."""
    configs = _chosen_configs(res, k=3)
    if not configs or "state_persistent_bytes" not in res.layers or "state_frame_bytes" not in res.layers:
        return None
    totals_of = _chosen_configs(res, k=8)
    fig, axes = plt.subplots(len(configs) + 1, 1, figsize=(12, 2.9 * len(configs) + 0.5 * len(totals_of) + 1.5),
                             squeeze=False,
                             gridspec_kw={"height_ratios": [0.25 * len(totals_of) + 0.6] + [2.9] * len(configs)})
    tot = (res.layers[res.layers["config"].isin(totals_of)]
           .groupby("config", sort=False)[["state_persistent_bytes", "state_frame_bytes"]].sum()
           .reindex(totals_of) / 1024)
    base = {k: res.baseline.get(f"total_{k}") for k in ("state_persistent_bytes", "state_frame_bytes")}
    if res.is_study and all(v is not None for v in base.values()):
        tot = pd.concat([pd.DataFrame({k: [v / 1024] for k, v in base.items()},
                                      index=[res.reference]), tot])
    ax = axes[0, 0]
    ax.barh(range(len(tot)), tot["state_persistent_bytes"], color="tab:red", label="persistent across frames")
    ax.barh(range(len(tot)), tot["state_frame_bytes"], left=tot["state_persistent_bytes"], color="tab:blue",
            alpha=0.7, label="within frame")
    ax.set_yticks(range(len(tot)))
    ax.set_yticklabels(tot.index, fontsize=8)
    ax.invert_yaxis()
    temporal = _temporal_state(res)
    if temporal:
        ax.axvline(temporal / 1024, color="tab:red", ls=":", lw=1.5, label="temporal delta: persistent")
        ax.axvline(temporal / 1024 / PAPER_CLAIMS["state_vs_temporal"], color="tab:red", ls="--", lw=1.5,
                   label="paper: >2x less than temporal")
    ax.set(xlabel="state memory per network (KiB)", title="state memory per configuration")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    for ax, cfg in zip(axes[1:, 0], configs):
        d = res.layers[res.layers["config"] == cfg]
        p = d["state_persistent_bytes"].to_numpy(float) / 1024
        f = d["state_frame_bytes"].to_numpy(float) / 1024
        ax.bar(d["layer_index"], p, color="tab:red", label=f"persistent across frames ({p.sum():.0f} KiB)")
        ax.bar(d["layer_index"], f, bottom=p, color="tab:blue", alpha=0.7,
               label=f"within frame ({f.sum():.0f} KiB)")
        ax.set(ylabel="state (KiB)", title=f"per layer, {cfg}")
        ax.legend(fontsize=8, loc="upper right")
        _layer_ticks(ax, list(d["layer"]))
    axes[-1, 0].set_xlabel("layer")
    fig.tight_layout()
    return fig


_HW_WORDS = ("n_cores", "cores", "sram", "lanes", "clock", "mesh", "neurons_per_core")


@_with_plotting
def fig_hardware(res: Results) -> Figure | None:
    """Hardware parameters of the best (Pareto) configurations, as an annotated heatmap."""
    if not res.is_study:
        return None
    hw = [c for c in res.trials if c.startswith("param_hardware.") or c.startswith("param_hw.")]
    if not hw:
        hw = [c for c in res.trials if c.startswith("param_") and "threshold" not in c.lower()
              and any(c[6:].lower().startswith(w) for w in _HW_WORDS)]
    done = res.trials[(res.trials["state"] == "COMPLETE") & res.trials["feasible"]].dropna(
        subset=list(res.objectives))
    if not hw or done.empty:
        return None
    mask = pareto_mask(done[list(res.objectives)].to_numpy(), res.directions)
    best = done[mask].sort_values(res.objectives[0], ascending=res.directions[0] == "minimize").head(12)
    table = best.set_index(best["trial"].map(lambda n: f"trial {n}"))[hw + list(res.objectives)]
    table = table.apply(pd.to_numeric, errors="coerce").dropna(axis=1, how="all")
    table.columns = [c.removeprefix("param_") for c in table.columns]
    norm = (table - table.min()) / (table.max() - table.min()).replace(0, 1)
    fig, ax = plt.subplots(figsize=(1.3 * len(table.columns) + 3, 0.45 * len(table) + 2))
    annot = table.map(lambda v: f"{v:.3g}")
    sns.heatmap(norm, annot=annot, fmt="", cmap="viridis", cbar_kws={"label": "relative (column min..max)"},
                ax=ax, annot_kws={"fontsize": 8})
    ax.set(title="best configurations (Pareto front): hardware parameters and objectives", ylabel="")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


#: figure name -> (function, caption)
FIGURES: dict[str, tuple[Callable[[Results], Figure | None], str]] = {
    "pareto": (fig_pareto, "Pareto front. Dashed black: the conventional (zero-skipping) baseline; "
               "shaded: the ELSE paper's claimed range of reduction of event-triggered computations "
               "(3.14–6.49x detection, 2.43–5.75x pose); red: temporal-delta state and the paper's "
               ">2x state claim, when the objective is state memory."),
    "layers": (fig_layers, "Events and synaptic operations per layer for each scheme, labelled with "
               "its scheme and threshold θ (code steps) (frame averages, log scale; black: conventional "
               "zero skipping; dotted grey: dense)."),
    "thresholds": (fig_thresholds, "Suppression threshold vs computations and reconstruction error."),
    "energy": (fig_energy, "Energy per frame by component (left) and by layer (right)."),
    "state": (fig_state, "State memory per layer: persistent across frames (red) vs within a frame (blue)."),
    "hardware": (fig_hardware, "Hardware parameters of the best configurations "
                 "(colour: position within the column's range; text: the value)."),
}


@_with_plotting
def figures(res: Results) -> dict[str, Figure]:
    """Every figure that applies to ``res`` (others are skipped)."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    out = {}
    for name, (fn, _) in FIGURES.items():
        fig = fn(res)
        if fig is not None:
            out[name] = fig
    return out


# ---- writing -------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:.85em;margin:1em 0}td,th{border:1px solid #ddd;padding:3px 7px;
text-align:right}th{background:#f4f4f4}.note{color:#666;font-size:.9em}code{background:#f4f4f4;padding:1px 3px}.wide{overflow-x:auto}
"""


@_with_plotting
def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI)
    plt.close(fig)
    return buf.getvalue()


def _summary_table(res: Results) -> pd.DataFrame:
    if res.is_study:
        done = res.trials[(res.trials["state"] == "COMPLETE") & res.trials["feasible"]].dropna(
            subset=list(res.objectives))
        if done.empty:
            return done
        mask = pareto_mask(done[list(res.objectives)].to_numpy(), res.directions)
        front = done[mask].sort_values(res.objectives[0], ascending=res.directions[0] == "minimize")
        front = front.drop_duplicates(list(res.objectives)).head(20)  # one row per distinct result
        table = front[["trial", *res.objectives]].copy()
        for i, obj in enumerate(res.objectives):
            base = _baseline_value(res, obj)
            if base and any(k in obj.lower() for k in ("sop", "event", "energy", "latency")):
                table.insert(2 + i, f"{obj}_reduction_vs_conventional",
                             base / front[obj].where(front[obj] > 0))
                break
        return pd.concat([table, _param_summary(front)], axis=1)
    if res.configs.empty:
        return res.configs
    keep = ["config"] + [c for c in _SUMMARY_COLUMNS if c in res.configs]
    table = res.configs[keep].copy()
    base = _baseline_value(res, "total_sops")
    if base and "total_sops" in table:
        table.insert(keep.index("total_sops") + 1, "sops_reduction_vs_conventional",
                     base / table["total_sops"].where(table["total_sops"] > 0))
    return table


def _param_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """Parameters per trial; a family of more than 4 (``scheme.<layer>``) is summarized:
    numbers by their mean, choices by their counts."""
    params = [c for c in trials if c.startswith("param_")]
    groups: dict[str, list[str]] = {}
    for c in params:
        groups.setdefault(c[6:].split(".")[0], []).append(c)
    out = pd.DataFrame(index=trials.index)
    for group, cols in groups.items():
        if len(cols) <= 4:
            for c in cols:
                out[c[6:]] = trials[c]
            continue
        values = trials[cols]
        numeric = values.apply(pd.to_numeric, errors="coerce")
        if numeric.notna().all().all():
            out[f"{group} (mean of {len(cols)})"] = numeric.mean(axis=1)
        else:
            out[f"{group} (count of {len(cols)})"] = values.apply(
                lambda r: ", ".join(f"{k} {v}" for k, v in r.value_counts().items()), axis=1)
    return out


_SUMMARY_COLUMNS = ("total_events", "total_sops", "max_error", "rel_error", "total_energy_pj", "total_latency_s",
                    "total_state_persistent_bytes", "total_state_frame_bytes", "total_cores", "fits")


def _for_netcdf(df: pd.DataFrame) -> xr.Dataset:
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == bool:
            df[c] = df[c].astype(np.int8)
        elif not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c].astype(str)
    return xr.Dataset.from_dataframe(df.reset_index(drop=True).rename_axis("row"))


def _serializable(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.copy()
    for k, v in list(ds.attrs.items()):
        if isinstance(v, (bool, np.bool_)):
            ds.attrs[k] = int(v)
        elif not isinstance(v, (str, int, float, np.integer, np.floating, list, tuple, np.ndarray)):
            ds.attrs[k] = json.dumps(v, default=str)
    for name in list(ds.variables):
        if ds[name].dtype == bool:
            ds[name] = ds[name].astype(np.int8)
        elif ds[name].dtype == object:
            ds[name] = ds[name].astype(str)
    return ds


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name).strip("_") or "dataset"


def write(source: Source, out_dir: str | Path, title: str | None = None) -> Path:
    """Write ``report.html``, the figures (PNG), and trials / per-layer results (CSV, NetCDF).

    ``source``: an ``optuna.Study``, a ``(storage_url, study_name)`` pair, an event or cost
    ``xarray.Dataset``, a dict ``{name: Dataset}``, or NetCDF paths of such datasets.
    Returns the path of ``report.html``.
    """
    res = collect(source, title)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    if not res.trials.empty:
        res.trials.to_csv(out / "trials.csv", index=False)
        _for_netcdf(res.trials).to_netcdf(out / "trials.nc", engine="h5netcdf")
        files += ["trials.csv", "trials.nc"]
    if not res.layers.empty:
        res.layers.to_csv(out / "layers.csv", index=False)
        _for_netcdf(res.layers).to_netcdf(out / "layers.nc", engine="h5netcdf")
        files += ["layers.csv", "layers.nc"]
    if not res.configs.empty:
        res.configs.to_csv(out / "configs.csv", index=False)
        files.append("configs.csv")
    if not res.curves.empty:
        res.curves.to_csv(out / "curves.csv", index=False)
        files.append("curves.csv")
    for name, ds in res.datasets.items():
        fn = f"data_{_safe(name)}.nc"
        _serializable(ds).to_netcdf(out / fn, engine="h5netcdf")
        files.append(fn)

    sections = []
    figs = figures(res)
    for name, fig in figs.items():
        png = _png(fig)
        (out / f"{name}.png").write_bytes(png)
        b64 = base64.b64encode(png).decode("ascii")
        caption = FIGURES[name][1]
        sections.append(
            f'<figure id="fig-{name}"><h2>{html.escape(name)}</h2>'
            f'<img src="data:image/png;base64,{b64}" alt="{html.escape(name)} figure" data-file="{name}.png">'
            f'<figcaption>{html.escape(caption)} (<a href="{name}.png">{name}.png</a>)</figcaption></figure>')
    skipped = [n for n in FIGURES if n not in figs]
    for name in skipped:  # a figure of an earlier report in this directory would now be stale
        (out / f"{name}.png").unlink(missing_ok=True)
    summary = _summary_table(res)
    head = (f"{len(res.trials)} trials, objectives: "
            + ", ".join(f"{o} ({d})" for o, d in zip(res.objectives, res.directions))
            if res.is_study else f"{len(res.configs)} configurations: " + ", ".join(map(str, res.configs.get(
                "config", []))))
    base = ", ".join(f"{k} = {v:.4g}" for k, v in res.baseline.items()
                     if re.fullmatch(r"(temporal:)?total_(events|sops|energy_pj|latency_s|state_\w+_bytes)", k)
                     ) or "none stored"
    body = [
        f"<h1>{html.escape(res.title)}</h1>",
        f"<p>{html.escape(head)}. Written {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC "
        "by else-dse.</p>",
        f"<p class=note>Reference ({html.escape(res.reference)}): {html.escape(base)}.</p>",
        *(f"<p class=note>{html.escape(n)}</p>" for n in res.notes),
        "<h2>summary</h2>" + ("<p>Pareto-optimal feasible trials (the first of each distinct result):</p>"
                              if res.is_study else ""),
        "<div class=wide>" + summary.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
        + "</div>" if not summary.empty else "<p>no completed trials</p>",
        *sections,
        "<h2>files</h2><ul>" + "".join(f'<li><a href="{f}">{f}</a></li>' for f in files) + "</ul>",
    ]
    if skipped:
        body.append("<p class=note>Figures not applicable to these results: "
                    + ", ".join(skipped) + ".</p>")
    page = ("<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(res.title)}</title><style>{_CSS}</style></head><body>"
            + "\n".join(body) + "</body></html>")
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
