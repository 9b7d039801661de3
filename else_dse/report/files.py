"""The report's data files: tables and datasets made writable as NetCDF, and safe file names."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import xarray as xr


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
    """A file-name stem of a configuration name: ``line_delta y θ=2`` -> ``line_delta_y_theta2``."""
    name = name.replace("θ=", "theta").replace("τ=", "tau").replace("+", "_and_")
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "dataset"
