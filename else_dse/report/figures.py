"""The report's seaborn figures, one function each, and the PNG they are saved as."""

from __future__ import annotations

import functools
import io
import math
import re
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd

from .labels import _SHORT, _best_text, _config_labels, _label, _trial_label, _unit
from .pareto import _category_param, _chosen_configs, _pareto_pair, pareto_mask, shown_configs
from .reference import PAPER_CLAIMS, _baseline_value, _mark_claims, _temporal_state
from .results import Results

if TYPE_CHECKING:
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


FIGURE_DPI = 110


def _which_note(fig: Figure, which: str) -> None:
    """State, under the figure, which configurations it shows (and the cap)."""
    fig.text(0.005, 0.003, f"shown: {which}", fontsize=7.5, color="#555", ha="left", va="bottom")


@_with_plotting
def fig_pareto(res: Results) -> Figure | None:
    """Pareto front(s): cost vs error (or energy vs latency) over trials or schemes."""
    return _fig_pareto_study(res) if res.is_study else _fig_pareto_datasets(res)


def _fig_best_so_far(res: Results, done: pd.DataFrame) -> Figure:
    """A single-objective study: the objective over trials and the running best."""
    obj = res.objectives[0]
    _, scale = _unit(obj)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    ok, bad = "fits and meets every constraint", "does not fit or violates a constraint"
    status = np.where(done["feasible"].astype(bool), ok, bad)
    sns.scatterplot(data=done.assign(y=done[obj] * scale, status=status), x="trial", y="y", hue="status",
                    palette={ok: "tab:blue", bad: "lightgrey"}, ax=ax, s=30)
    best = (done[obj].cummin() if res.directions[0] == "minimize" else done[obj].cummax()) * scale
    ax.plot(done["trial"], best, color="tab:orange", lw=2, label="best so far")
    _mark_claims(ax, res, obj, scale)
    ax.set(xlabel="trial number", ylabel=_label(obj), title=f"{_SHORT.get(obj.lower(), obj)} over the study")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _fig_pareto_study(res: Results) -> Figure | None:
    done = res.trials[res.trials["state"] == "COMPLETE"].dropna(subset=list(res.objectives))
    if done.empty:
        return None
    pairs = _pareto_pair(res)
    if not pairs:  # single objective: the objective over trials, running best
        return _fig_best_so_far(res, done)
    fig, axes = plt.subplots(len(pairs), 1, figsize=(10, 5.2 * len(pairs)), squeeze=False)
    feas = done[done["feasible"]]
    mask = pareto_mask(feas[list(res.objectives)].to_numpy(), res.directions) if len(feas) else []
    front = feas[mask] if len(feas) else feas
    n_front = len(front.drop_duplicates(list(res.objectives)))
    cat = _category_param(feas)
    for ax, (xm, ym) in zip(axes[:, 0], pairs):
        (_, sx), (_, sy) = _unit(xm), _unit(ym)
        bad = done[~done["feasible"]]
        if len(bad):   # no legend entry without a mark
            ax.scatter(bad[xm] * sx, bad[ym] * sy, c="lightgrey", s=18, marker="x",
                       label=f"does not fit or violates a constraint ({len(bad)})")
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
        for _, r in f2.drop_duplicates([xm, ym]).iterrows():   # what each front point is
            ax.annotate(_trial_label(res, int(r["trial"])), (r[xm] * sx, r[ym] * sy), textcoords="offset points",
                        xytext=(5, 5), fontsize=7, color="tab:orange")
        _mark_claims(ax, res, ym, sy)
        bx = _baseline_value(res, xm)
        by = _baseline_value(res, ym)
        if bx is not None and by is not None:  # one legend entry when the dashed line has it
            drawn = res.reference in ax.get_legend_handles_labels()[1]
            ax.scatter([bx * sx], [by * sy], marker="*", s=250, c="black", zorder=5,
                       label=None if drawn else res.reference)
        short = lambda m: "rel. error" if "error" in m.lower() else _SHORT.get(m.lower(), m.replace("_", " "))  # noqa: E731
        best = _best_text(res, pair_front, xm, ym, by)
        title = f"{short(ym)} per frame vs {short(xm)}" + (f":\n{best[2:]}" if best else "")
        ax.set(xlabel=_label(xm), ylabel=_label(ym), title=title)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.suptitle(res.title, fontsize=11)
    fig.tight_layout()
    return fig


def _fig_pareto_datasets(res: Results) -> Figure | None:
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


def _layer_ticks(ax: Axes, names: Sequence[str]) -> None:
    n = len(names)
    step = max(1, math.ceil(n / 30))
    ticks = list(range(0, n, step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([names[i] for i in ticks], rotation=75, ha="right", fontsize=7)


@_with_plotting
def fig_layers(res: Results) -> Figure | None:
    """Events and SOPs per layer for each scheme (log scale), labelled with scheme and threshold;
    the conventional reference (black) and dense (dotted grey) for comparison."""
    configs, which = shown_configs(res)
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
        ax.set(ylabel=_label(m), xlabel="layer",
               title=f"{_SHORT.get(m, m)} per layer and configuration (frame average)")
    legend: dict[str, Any] = {}
    for ax in axes[:, 0]:
        for h, t in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(t, h)
    handles, texts = list(legend.values()), list(legend)
    fig.legend(handles, texts, fontsize=8, loc="upper center", ncol=min(4, len(texts)), frameon=False)
    _layer_ticks(axes[-1, 0], names)
    fig.tight_layout(rect=(0, 0.02, 1, 1 - 0.35 * math.ceil(len(texts) / 4) / (3.8 * len(metrics) + 0.4)))
    _which_note(fig, which)
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
    # θ does not apply to conventional / dense processing: they are the reference line, not a series
    df = df[~df[hue].astype(str).str.match(r"^(conventional|dense)\b")] if hue in df else df
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


def _config_value(res: Results, config: str, name: str) -> float | None:
    """A configuration's network total ``name`` (a study stores it under ``totals.``)."""
    row = res.configs[res.configs["config"] == config] if "config" in res.configs else res.configs
    for col in (name, f"totals.{name}"):
        if col in row and len(row) and pd.notna(row[col].iloc[0]):
            return float(row[col].iloc[0])
    return None


def _cost_totals(res: Results, configs: Sequence[str], labels: dict[str, str]) -> pd.DataFrame:
    """Energy per component (µJ/frame) and latency (ms/frame) per configuration, the reference
    first (the feasible conventional baseline, when there is one); components that are zero
    everywhere are dropped (no legend entry without a bar)."""
    df = res.layers[res.layers["config"].isin(configs)]
    comps = [c for c in df.columns if re.fullmatch(r"energy_(?!pj).+_pj", c)]
    totals = df.groupby("config", sort=False)[comps].sum().reindex(configs) * 1e-6
    totals.index = [labels[c] for c in configs]
    totals.columns = [c[len("energy_"):-len("_pj")] for c in comps]
    lat = [_config_value(res, c, "total_latency_s") for c in configs]
    totals["latency_ms"] = [v * 1e3 if v is not None else np.nan for v in lat]
    base = {c: res.baseline.get(f"total_energy_{c}_pj") for c in totals.columns[:-1]}
    if all(v is not None for v in base.values()) and res.baseline.get("total_latency_s"):
        ref = pd.DataFrame({**{c: [v * 1e-6] for c, v in base.items()},
                            "latency_ms": [res.baseline["total_latency_s"] * 1e3]}, index=[res.reference])
        totals = pd.concat([ref, totals])
    keep = [c for c in totals.columns if c == "latency_ms" or totals[c].abs().sum() > 0]
    return totals[keep]


@_with_plotting
def fig_energy(res: Results) -> Figure | None:
    """Energy per frame by component and latency per frame, per configuration, beside the
    conventional reference; then energy by layer of the first configuration."""
    configs, which = shown_configs(res)
    if not configs or not any(re.fullmatch(r"energy_.+_pj", c) for c in res.layers.columns):
        return None
    labels = _config_labels(res, configs)
    totals = _cost_totals(res, configs, labels)
    comps = [c for c in totals.columns if c != "latency_ms"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2), gridspec_kw={"width_ratios": [1.2, 0.9, 1.5]})
    palette = dict(zip(comps, sns.color_palette("Set2", len(comps))))
    bottom = np.zeros(len(totals))
    for comp in comps:
        axes[0].bar(range(len(totals)), totals[comp], bottom=bottom, color=palette[comp], label=comp)
        bottom += totals[comp].fillna(0).to_numpy()
    axes[1].bar(range(len(totals)), totals["latency_ms"], color="tab:gray")
    ref = res.reference if res.reference in totals.index else None
    for ax in axes[:2]:
        ax.set_xticks(range(len(totals)))
        ax.set_xticklabels(totals.index, rotation=35, ha="right", fontsize=7.5)
        if ref is not None:
            ax.get_xticklabels()[0].set_fontweight("bold")
    axes[0].set(ylabel="energy per frame (µJ)", title="energy per frame by component")
    axes[0].legend(fontsize=8)
    axes[1].set(ylabel="latency per frame (ms)", title="latency per frame")
    first = res.layers[res.layers["config"] == configs[0]]
    lay_comps = [f"energy_{c}_pj" for c in comps]
    per_layer = first[["layer_index"] + lay_comps].set_index("layer_index") * 1e-6
    bottom = np.zeros(len(per_layer))
    for comp in comps:
        axes[2].bar(per_layer.index, per_layer[f"energy_{comp}_pj"], bottom=bottom, color=palette[comp], width=0.85)
        bottom += per_layer[f"energy_{comp}_pj"].to_numpy()
    axes[2].set(ylabel="energy per frame (µJ)", xlabel="layer", title=f"energy by layer, {labels[configs[0]]}")
    _layer_ticks(axes[2], list(first["layer"]))
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    _which_note(fig, which + (f"; first bar: {ref}" if ref else "; no conventional reference fits"))
    return fig


@_with_plotting
def fig_state(res: Results) -> Figure | None:
    """State memory: totals per configuration (with the paper's >2x-below-temporal mark when a
    temporal-delta reference is known), then per layer, persistent across frames vs within a frame,
    for each distinct per-layer state among the shown configurations (at most 3)."""
    configs, which = shown_configs(res)
    if not configs or "state_persistent_bytes" not in res.layers or "state_frame_bytes" not in res.layers:
        return None
    labels = _config_labels(res, configs)
    cols = ["state_persistent_bytes", "state_frame_bytes"]
    tot = res.layers[res.layers["config"].isin(configs)].groupby("config", sort=False)[cols].sum().reindex(configs)
    tot.index = [labels[c] for c in configs]
    base = {k: res.baseline.get(f"total_{k}") for k in cols}
    if res.is_study and all(v is not None for v in base.values()):
        tot = pd.concat([pd.DataFrame({k: [v] for k, v in base.items()}, index=[res.reference]), tot])
    tot = tot / 1024
    panels, seen = [], []
    for cfg in configs:
        d = res.layers[res.layers["config"] == cfg]
        key = tuple(np.round(d[cols].to_numpy(float).ravel(), 3))
        if key not in seen and len(panels) < 3:
            seen.append(key)
            panels.append(cfg)
    fig, axes = plt.subplots(len(panels) + 1, 1, figsize=(12, 2.9 * len(panels) + 0.3 * len(tot) + 2.0),
                             squeeze=False, gridspec_kw={"height_ratios": [0.3 * len(tot) + 0.8] + [2.9] * len(panels)})
    parts = [("state_persistent_bytes", "persistent across frames", "tab:red", 1.0),
             ("state_frame_bytes", "within frame", "tab:blue", 0.7)]
    parts = [p for p in parts if tot[p[0]].sum() > 0] or parts[1:]   # no legend entry without a bar
    ax, left = axes[0, 0], np.zeros(len(tot))
    for col, text, color, alpha in parts:
        ax.barh(range(len(tot)), tot[col], left=left, color=color, alpha=alpha, label=text)
        left += tot[col].to_numpy()
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
    for ax, cfg in zip(axes[1:, 0], panels):
        d = res.layers[res.layers["config"] == cfg]
        bottom = np.zeros(len(d))
        for col, text, color, alpha in parts:
            v = d[col].to_numpy(float) / 1024
            ax.bar(d["layer_index"], v, bottom=bottom, color=color, alpha=alpha, label=f"{text} ({v.sum():.0f} KiB)")
            bottom += v
        ax.set(ylabel="state (KiB)", title=f"per layer, {labels[cfg]}")
        ax.legend(fontsize=8, loc="upper right")
        _layer_ticks(ax, list(d["layer"]))
    axes[-1, 0].set_xlabel("layer")
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    _which_note(fig, which + (f"; per-layer panels: {len(panels)} distinct" if len(panels) < len(configs) else ""))
    return fig


_HW_WORDS = ("n_cores", "cores", "sram", "lanes", "clock", "mesh", "neurons_per_core")


def _hw_label(column: str, res: Results) -> str:
    """``sram_per_core (byte)`` for a hardware field, the unit label for an objective."""
    if column in res.objectives:
        return _label(column)
    from ..hardware import FIELDS

    name = column.removeprefix("param_").removeprefix("hardware.").removeprefix("hw.")
    unit = FIELDS[name][1] if name in FIELDS else ""
    return f"{name} ({unit})" if unit and unit != "-" else name


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
    configs, which = shown_configs(res)
    numbers = [int(c.split()[1]) for c in configs if c.startswith("trial ")]
    if not numbers:   # no per-layer tables stored: the Pareto front itself, capped
        front = done[pareto_mask(done[list(res.objectives)].to_numpy(), res.directions)].sort_values(
            res.objectives[0], ascending=res.directions[0] == "minimize")
        numbers = [int(n) for n in front["trial"].head(12)]
        which = f"the Pareto front ({len(numbers)} of {len(front)} trials, first by {res.objectives[0]})"
    best = done[done["trial"].isin(numbers)].set_index("trial").reindex(numbers).dropna(how="all").reset_index()
    if best.empty:
        return None
    labels = _config_labels(res, [f"trial {n}" for n in best["trial"]])
    table = best.set_index(best["trial"].map(lambda n: labels[f"trial {n}"]))[hw + list(res.objectives)]
    table = table.apply(pd.to_numeric, errors="coerce").dropna(axis=1, how="all")
    table = table.apply(lambda col: col * (_unit(col.name)[1] if col.name in res.objectives else 1.0))
    table.columns = [_hw_label(c, res) for c in table.columns]
    # colour = value / the column's largest |value| on a 0..1 scale: a 0.6% spread stays one colour
    norm = table / table.abs().max().replace(0, 1)
    fig, ax = plt.subplots(figsize=(1.5 * len(table.columns) + 4, 0.45 * len(table) + 2.4))
    annot = table.map(lambda v: f"{v:.3g}")
    sns.heatmap(norm, annot=annot, fmt="", cmap="viridis", vmin=0, vmax=1,
                cbar_kws={"label": "value / column maximum"}, ax=ax, annot_kws={"fontsize": 8})
    ax.set(title="hardware parameters and objectives", ylabel="")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    _which_note(fig, which)
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
def figures(res: Results, on_figure: Callable[[str], None] | None = None) -> dict[str, Figure]:
    """Every figure that applies to ``res`` (others are skipped); ``on_figure(name)`` after each."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.95)
    out = {}
    for name, (fn, _) in FIGURES.items():
        fig = fn(res)
        if fig is not None:
            out[name] = fig
        if on_figure is not None:
            on_figure(name)
    return out


@_with_plotting
def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI)
    plt.close(fig)
    return buf.getvalue()
