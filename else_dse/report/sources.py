"""Turning a study, a ``(storage URL, study name)`` pair, event / cost datasets or NetCDF paths
into :class:`Results` tables."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .reference import _network_task
from .results import ReportError, Results, Source
from .studies import _from_study


def collect(source: Source, title: str | None = None) -> Results:
    """Turn a study, ``(storage_url, study_name)``, dataset(s) or NetCDF path(s) into :class:`Results`."""
    import optuna

    if isinstance(source, tuple) and len(source) == 2 and all(isinstance(s, str) for s in source):
        from ..search import SearchError, open_storage

        url, name = source
        try:
            source = optuna.load_study(study_name=name, storage=open_storage(url, create=False))
        except (KeyError, SearchError) as exc:
            why = f": {exc}" if isinstance(exc, SearchError) else ""
            raise ReportError(f"no study {name!r} in storage {url!r}{why}") from None
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
        if "line_delta" in kinds and "axis" in ds.coords and ds.coords["axis"].dims == ("layer",):
            line = np.atleast_1d(ds.coords["scheme"].values).astype(str) == "line_delta"
            axes = sorted(set(np.atleast_1d(ds.coords["axis"].values).astype(str)[line]) - {""})
            name += f" {'/'.join(axes)}" if axes else ""
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
