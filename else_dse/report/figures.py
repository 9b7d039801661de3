"""The report's seaborn figures, one function each, and the PNG they are saved as."""

from __future__ import annotations

import functools
import io
import math
import re
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import pandas as pd

from .labels import _best_text, _config_labels, _label, _unit
from .pareto import _category_param, _chosen_configs, _layer_configs, _pareto_pair, pareto_mask
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


@_with_plotting
def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=FIGURE_DPI)
    plt.close(fig)
    return buf.getvalue()
