"""The self-contained HTML page's style sheet and summary table."""

from __future__ import annotations

import pandas as pd

from .labels import _trial_label, _unit
from .pareto import pareto_mask
from .reference import _baseline_value
from .results import Results


_CSS = """
body{font-family:system-ui,-apple-system,'DejaVu Sans',sans-serif;margin:2em auto;max-width:1200px;
color:#222;padding:0 1em}h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:.85em;margin:1em 0}td,th{border:1px solid #ddd;padding:3px 7px;
text-align:right}th{background:#f4f4f4}.note{color:#666;font-size:.9em}code{background:#f4f4f4;padding:1px 3px}.wide{overflow-x:auto}
"""


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
        names = [_trial_label(res, int(n)) for n in front["trial"]]
        if any(names):
            table.insert(0, "configuration", names)
        for i, obj in enumerate(res.objectives):
            base = _baseline_value(res, obj)
            if base and any(k in obj.lower() for k in ("sop", "event", "energy", "latency")):
                table.insert(table.columns.get_loc(obj) + 1, f"{obj}_reduction_vs_conventional",
                             base / front[obj].where(front[obj] > 0))
                break
        for col, name, scale in _COST_COLUMNS:
            if col in front and name.split(" (")[0] not in res.objectives:
                table[name] = front[col] * scale
        table = pd.concat([table, _param_summary(front)], axis=1)
        if {"scheme", "threshold"} <= set(table.columns):     # θ does not apply to conventional / dense
            table["threshold"] = table["threshold"].astype(object).where(
                ~table["scheme"].isin(["conventional", "dense"]), "n/a")
        return table
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

#: cost totals of a trial shown in the summary: (column, header with unit, scale)
_COST_COLUMNS = (("attr_totals.total_energy_pj", "energy (µJ/frame)", 1e-6),
                 ("attr_totals.total_energy_static_pj", "static energy (µJ/frame)", 1e-6),
                 ("attr_totals.total_latency_s", "latency (ms/frame)", 1e3),
                 ("attr_totals.total_cores", "cores used", 1.0))


def with_units(table: pd.DataFrame, res: Results) -> pd.DataFrame:
    """The summary table for the page: objective and total columns scaled and headed with their
    units (``SOPs per frame (millions)``, ``energy per frame (µJ)``); other columns unchanged."""
    out = table.copy()
    names = {}
    for col in out.columns:
        if col in res.objectives or col.startswith("total_"):
            label, scale = _unit(col)
            if label != col and pd.api.types.is_numeric_dtype(out[col]):
                out[col] = out[col] * scale
                names[col] = f"{col}: {label}" if col in res.objectives else label
        elif col.endswith("_reduction_vs_conventional"):
            names[col] = f"{col[:-len('_reduction_vs_conventional')]}: reduction vs {res.reference} (x)"
    return out.rename(columns=names)
