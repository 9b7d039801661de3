"""The report's closed-loop section: the open-loop proxy of verified trials beside the closed-loop truth.

Reads the study ``<name>:verify`` that :func:`else_dse.search.verify` writes (one
trial per verified trial: closed-loop totals, fidelity and the open-loop values);
nothing is recomputed.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any, Mapping

import pandas as pd

from ..search.objectives import violated
from .labels import _trial_label
from .results import Results

if TYPE_CHECKING:
    import optuna

#: fidelity key -> column header (task metrics against the float run, closed loop)
_TASK = (("detection.recall", "recall vs float (closed loop)"),
         ("detection.mean_iou", "mean IoU vs float (closed loop)"),
         ("detection.keypoint_px", "keypoint displacement (px, closed loop)"),
         ("landmark.pck@0.05", "PCK@0.05 vs float (closed loop)"),
         ("landmark.nme", "landmark error (ROI-normalized, closed loop)"))


def _num(d: Mapping[str, Any], *keys: str) -> float:
    for k in keys:
        v = d.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return math.nan


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else math.nan


def _met(attrs: Mapping[str, Any]) -> Any:
    """``yes``, ``no: <violated constraints>``, or NaN (no constraint, or not evaluated)."""
    cons = attrs.get("constraints")
    if not isinstance(cons, Mapping) or not cons:
        return math.nan
    bad = violated(cons)
    return "yes" if not bad else "no: " + ", ".join(bad)


OPEN_MET, CLOSED_MET = "meets the constraints, open loop", "meets the constraints, closed loop"


def verified_table(res: Results, vstudy: "optuna.Study") -> pd.DataFrame:
    """One row per verified trial: configuration, open-loop proxy and closed-loop truth, with units.

    SOP reductions are against conventional processing in the same loop: open loop against the
    report's reference, closed loop against the closed-loop conventional baseline ``verify`` stored.
    ``proxy / truth (SOP reduction)`` > 1: the proxy promised more than the deployed network gives."""
    from ..search.verify import verified_trials

    base_open = _num(res.baseline, "sops", "total_sops")
    base_closed = _num(vstudy.user_attrs.get("baseline_conventional") or {}, "sops")
    rows = []
    for t in verified_trials(vstudy):
        number = int(t.user_attrs["verified_trial"])
        closed, fid = t.user_attrs.get("totals") or {}, t.user_attrs.get("fidelity") or {}
        open_ = (t.user_attrs.get("open_loop") or {}).get("totals") or {}
        label = _trial_label(res, number) if res.is_study else ""
        red_open, red_closed = _ratio(base_open, _num(open_, "sops")), _ratio(base_closed, _num(closed, "sops"))
        row: dict[str, Any] = {
            "configuration": f"{label} (trial {number})" if label else f"trial {number}",
            "SOPs open loop (M/frame)": _num(open_, "sops") * 1e-6,
            "SOPs closed loop (M/frame)": _num(closed, "sops") * 1e-6,
            "SOP reduction open loop (x vs conventional)": red_open,
            "SOP reduction closed loop (x vs closed-loop conventional)": red_closed,
            "proxy / truth (SOP reduction, x)": _ratio(red_open, red_closed),
            "energy open loop (µJ/frame)": _num(open_, "total_energy_pj") * 1e-6,
            "energy closed loop (µJ/frame)": _num(closed, "total_energy_pj") * 1e-6,
            "latency closed loop (ms/frame)": _num(closed, "total_latency_s") * 1e3,
            "open-loop error (rel. ||X-R||/||X||, mean over layers)": _num(open_, "error"),
            OPEN_MET: _met(t.user_attrs.get("open_loop") or {}),
            CLOSED_MET: _met(t.user_attrs),
        }
        for key, header in _TASK:
            if key in fid:
                row[header] = math.nan if fid[key] is None else float(fid[key])
        rel = [float(v) for k, v in fid.items() if k.startswith("rel_l2[") and v is not None]
        row["output error (rel. L2 vs float, mean over outputs)"] = sum(rel) / len(rel) if rel else math.nan
        rows.append(row)
    return pd.DataFrame(rows).dropna(axis=1, how="all")


def constraint_text(table: pd.DataFrame, rechecked: bool = True) -> str:
    """What closed loop does to the study's constraints, in one sentence (empty when the study
    has none); the report says it in its closed-loop section and in its first lines."""
    if not rechecked:
        return ("The study's constraints were not evaluated in closed loop: it was written before "
                "studies stored their constraints.")
    if table.empty or OPEN_MET not in table or CLOSED_MET not in table:
        return ""
    lost = table[(table[OPEN_MET] == "yes") & table[CLOSED_MET].astype(str).str.startswith("no")]
    kept = int((table[CLOSED_MET] == "yes").sum())
    text = f"{kept} of {len(table)} verified trials meet every constraint of the study in closed loop."
    if len(lost):
        names = "; ".join(f"{c} ({w[4:]})" for c, w in zip(lost["configuration"], lost[CLOSED_MET]))
        text += f" {len(lost)} that met them on the open-loop proxy do not: {names}."
    return text


def verified_section(table: pd.DataFrame, vstudy_name: str, rechecked: bool = True) -> str:
    """The HTML section (empty table: a line saying nothing was verified); ``rechecked``: the
    verify study evaluated the study's constraints in closed loop."""
    head = (f'<section id="closed-loop"><h2>closed loop: proxy vs truth</h2><p>Trials replayed in closed loop '
            f"by <code>else-dse verify</code> (study {html.escape(vstudy_name)}): what the open-loop proxy "
            "(events counted on the recording of the unsuppressed network) said, beside what the deployed "
            "network sends and computes, with the task metrics against the float run.</p>")
    if table.empty:
        return head + "<p>No trial verified yet.</p></section>"
    gap = table["proxy / truth (SOP reduction, x)"].dropna() if "proxy / truth (SOP reduction, x)" in table else []
    note = ""
    if len(gap):
        i = (gap - 1).abs().idxmax()
        note = (f"<p class=note>Largest gap: {html.escape(str(table.loc[i, 'configuration']))}, the proxy's SOP "
                f"reduction is {gap[i]:.3f}x the closed loop's.</p>")
    text = constraint_text(table, rechecked)
    note += f"<p class=note>{html.escape(text)}</p>" if text else ""
    shown = table.drop_duplicates([c for c in table.columns if c != "configuration"])
    if len(shown) < len(table):
        note += (f"<p class=note>{len(table) - len(shown)} of {len(table)} verified trials repeat the result of "
                 "an earlier one (the same configuration) and are not shown again; verified.csv has them all.</p>")
    body = shown.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0, na_rep="n/a")
    return head + note + "<div class=wide>" + body + "</div></section>"
