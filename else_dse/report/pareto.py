"""The Pareto front, the objective pairs to plot and the configurations picked from the front."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .labels import _trial_label
from .results import Results


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


def _x_rank(name: str) -> int:
    """Which objective goes on the x axis: error first, then latency, then memory (cost on y)."""
    low = name.lower()
    return 0 if "error" in low else 1 if "latency" in low else 2 if ("memory" in low or "state" in low) else 3


def _pareto_pair(res: Results) -> list[tuple[str, str]]:
    """Up to three (x, y) objective pairs to plot, in the conventional reading "cost vs error"."""
    objs = list(res.objectives)
    pairs = [(objs[i], objs[j]) for i in range(len(objs)) for j in range(i + 1, len(objs))]
    return [(a, b) if _x_rank(a) <= _x_rank(b) else (b, a) for a, b in pairs][:3]


def _category_param(trials: pd.DataFrame) -> str | None:
    """The study's only non-numeric parameter, when it has few values (else None)."""
    cats = [c for c in trials if c.startswith("param_") and not pd.api.types.is_numeric_dtype(trials[c])]
    if len(cats) == 1 and 1 < trials[cats[0]].nunique() <= 6:
        return cats[0]
    return None


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


#: the cap on :func:`shown_configs` (stated in every figure that uses it)
SHOWN_CAP = 7


def shown_configs(res: Results) -> tuple[list[str], str]:
    """The one set of configurations every per-configuration figure shows, and its description:
    every dataset; or for a study up to 4 evenly spaced distinct trials of the Pareto front plus
    the middle of the own front of each other uniform scheme, at most :data:`SHOWN_CAP`
    (conventional trials are the reference line/bar when the study stored a baseline)."""
    configs = _layer_configs(res)
    if not res.is_study:
        return configs, f"all {len(configs)} configurations"
    done = res.trials[(res.trials["state"] == "COMPLETE") & res.trials["feasible"]].dropna(
        subset=list(res.objectives))
    front = done[pareto_mask(done[list(res.objectives)].to_numpy(), res.directions)] if len(done) else done
    n_front = len(front.drop_duplicates(list(res.objectives)))
    return configs, (f"{len(configs)} configurations: up to 4 of the {n_front} distinct Pareto-front results "
                     f"(evenly spaced) and the middle of each other scheme's front; at most {SHOWN_CAP}")
