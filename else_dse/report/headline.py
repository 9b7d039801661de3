"""The report's "read this first" lines: does anything fit, on what schedule, and the best
reductions against the feasible conventional baseline, with the hardware they need."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .labels import _SHORT, _trial_label
from .results import Results

_T = "attr_totals."
_HW = "attr_config.hardware."


def _num(row: Any, key: str) -> float | None:
    v = row.get(key) if hasattr(row, "get") else None
    return None if v is None or pd.isna(v) else float(v)


def _base(res: Results, *keys: str) -> float | None:
    return next((float(res.baseline[k]) for k in keys if res.baseline.get(k)), None)


def _hardware_text(row: Any, used: bool = True) -> str:
    name = row.get(_HW + "name", "?")
    cores, total = _num(row, _HW + "n_cores"), _num(row, _T + "total_cores")
    if not cores:
        used = "? cores"
    elif used and total is not None:
        used = f"{total:.0f} of {cores:.0f} cores" if total <= cores else f"needs {total:.0f} cores, has {cores:.0f}"
    else:
        used = f"{cores:.0f} cores"
    mesh = (f", {row.get(_HW + 'mesh_x'):.0f}x{row.get(_HW + 'mesh_y'):.0f} mesh"
            if _num(row, _HW + "mesh_x") else "")
    return f"{name}, {used}{mesh}"


def _reduction_text(res: Results, row: Any) -> str:
    """``1.05x fewer SOPs, 1.02x lower energy, 1.01x lower latency`` of a trial vs the reference."""
    parts = []
    for what, verb, keys, mine in (
            ("SOPs", "fewer", ("total_sops", "sops"), (_T + "total_sops", _T + "sops", "sops")),
            ("energy", "lower", ("total_energy_pj", "energy"), (_T + "total_energy_pj", "energy")),
            ("latency", "lower", ("total_latency_s", "latency"), (_T + "total_latency_s", "latency"))):
        base = _base(res, *keys)
        value = next((_num(row, k) for k in mine if _num(row, k) is not None), None)
        if base is None or value is None:
            continue
        parts.append(f"{base / value:.2f}x {verb} {what}" if value > 0 else f"no {what} left")
    return ", ".join(parts)


def _per_frame(res: Results) -> str:
    sops, energy, lat = (_base(res, "total_sops", "sops"), _base(res, "total_energy_pj", "energy"),
                         _base(res, "total_latency_s", "latency"))
    parts = [f"{sops / 1e6:.3g} M SOPs" if sops else "", f"{energy * 1e-6:.4g} µJ" if energy else "",
             f"{lat * 1e3:.3g} ms" if lat else ""]
    return ", ".join(p for p in parts if p) + " per frame"


def _fit_line(res: Results, done: pd.DataFrame) -> str:
    if _T + "fits" not in done:
        return f"{len(done)} complete trials; no hardware cost was estimated (no fit to check)."
    fits = done[done[_T + "fits"].fillna(False).astype(bool)]
    if fits.empty:
        closest = done.sort_values(_T + "total_cores").iloc[0] if _T + "total_cores" in done else done.iloc[0]
        return (f"NO trial fits the hardware ({_hardware_text(closest)}): the closest, trial "
                f"{int(closest['trial'])} ({_trial_label(res, int(closest['trial']))}), overflows: "
                f"{closest.get(_T + 'overflow') or 'see its totals'}.{_overflow_text(closest)}")
    n_feas = int(done["feasible"].sum())
    cores = fits[_T + "total_cores"] if _T + "total_cores" in fits else pd.Series(dtype=float)
    use = f"; they use {cores.min():.0f}-{cores.max():.0f} cores" if len(cores.dropna()) else ""
    many = _HW + "n_cores" in done and done[_HW + "n_cores"].nunique() > 1
    chip = (f"{fits.iloc[0].get(_HW + 'name', '?')}, {done[_HW + 'n_cores'].min():.0f}-"
            f"{done[_HW + 'n_cores'].max():.0f} cores searched" if many else _hardware_text(fits.iloc[0], False))
    return (f"{len(fits)} of {len(done)} complete trials fit the hardware ({chip}{use}); "
            f"{n_feas} meet every constraint.")


def _schedule_line(done: pd.DataFrame) -> str | None:
    if _HW + "schedule" not in done:
        return None
    sched = str(done[_HW + "schedule"].iloc[0])
    execution = str(done.get(_HW + "execution", pd.Series(["event"])).iloc[0])
    if sched == "auto":
        sched = "step" if execution == "timestep" else "streamed"
    what = {"streamed": "consecutive layers on different cores overlap line by line",
            "sequential": "layers run one after another",
            "step": "all layers work in parallel within a time step, then a barrier"}.get(sched, sched)
    return (f"Schedule: {sched} ({what}), the same for every scheme ({execution} execution); static energy "
            "is charged over each configuration's own latency and shown as its own component."
            + _hops_text(str(done[_HW + "hop_timing"].iloc[0]) if _HW + "hop_timing" in done else None))


_HOPS = {"pipelined": "a core receives one event per hop time, a route's length adds once",
         "serialized": "every event's whole route is charged to the receiving core"}


def _hops_text(hop_timing: str | None) -> str:
    """`` Hops: pipelined (...).`` -- how NoC time adds up (docs/hardware.md "Hop timing"), or ``""``."""
    if hop_timing is None:
        return ""
    return f" Hops: {hop_timing} ({_HOPS.get(hop_timing, hop_timing)})."


def _overflow_text(row: Any) -> str:
    """How a mapping larger than the chip is costed (docs/hardware.md "Overflow"), or ``""``."""
    cores, total = _num(row, _HW + "n_cores"), _num(row, _T + "total_cores")
    layout = row.get(_HW + "overflow_layout") if hasattr(row, "get") else None
    if not cores or total is None or total <= cores or layout is None or pd.isna(layout):
        return ""
    chips = -(-int(total) // int(cores))
    where = "a near-square grid" if layout == "grid" else "one column"
    return f" It is costed on {chips} copies of the chip in {where} (overflow_layout {layout})."


def read_first(res: Results) -> list[str]:
    """The first lines of a study's report, in words (empty for dataset reports)."""
    if not res.is_study:
        return _datasets_first(res)
    done = res.trials[res.trials["state"] == "COMPLETE"]
    if done.empty:
        return ["No trial completed."]
    lines = [_fit_line(res, done)]
    sched = _schedule_line(done)
    if sched:
        lines.append(sched)
    if res.baseline_unfit:
        lines.append(f"No reduction is shown: {res.baseline_unfit}.")
        return lines
    if not _base(res, "total_sops", "sops"):
        return lines
    lines.append(f"Reference: {res.reference} ({_per_frame(res)}).")
    feas = done[done["feasible"]].dropna(subset=list(res.objectives))
    if feas.empty:
        lines.append("No trial fits and meets every constraint: no reduction is shown.")
        return lines
    err = next((c for c in ("error", _T + "error") if c in feas), None)
    first = res.objectives[0]
    ascending = res.directions[0] == "minimize"
    picks = []
    if err is not None:
        lossless = feas[feas[err] <= 0]
        if len(lossless):
            picks.append(("Lossless (error 0)", lossless.sort_values(first, ascending=ascending).iloc[0]))
    best = feas.sort_values(first, ascending=ascending).iloc[0]
    at = f" (rel. error {best[err]:.2g})" if err is not None else ""
    picks.append((f"Best {_SHORT.get(first.lower(), first.replace('_', ' '))}{at}", best))
    for title, row in picks:
        n = int(row["trial"])
        what = _trial_label(res, n)
        lines.append(f"{title}: {what + ' ' if what else ''}(trial {n}): {_reduction_text(res, row)} than the "
                     f"reference{_cost_text(row)}.")
    return lines


def _cost_text(row: Any) -> str:
    """``; energy 388 µJ per frame, of which static 104 µJ; latency 0.56 ms per frame; on ...``."""
    energy, static, lat = (_num(row, _T + k) for k in ("total_energy_pj", "total_energy_static_pj",
                                                       "total_latency_s"))
    parts = []
    if energy is not None:
        parts.append(f"energy {energy * 1e-6:.4g} µJ per frame"
                     + (f", of which static {static * 1e-6:.3g} µJ" if static is not None else ""))
    if lat is not None:
        parts.append(f"latency {lat * 1e3:.3g} ms per frame")
    if _num(row, _HW + "n_cores") is not None:
        parts.append(f"on {_hardware_text(row)}")
    return "".join(f"; {p}" for p in parts)


#: reference totals shown in words: (key, name, scale, unit)
_REFERENCE = (("total_sops", "SOPs", 1e-6, "M"), ("total_events", "events", 1e-3, "k"),
              ("total_energy_pj", "energy", 1e-6, "µJ"), ("total_energy_static_pj", "of which static", 1e-6, "µJ"),
              ("total_latency_s", "latency", 1e3, "ms"),
              ("total_state_persistent_bytes", "persistent state", 1 / 1024, "KiB"),
              ("total_state_frame_bytes", "within-frame state", 1 / 1024, "KiB"),
              ("temporal:total_state_persistent_bytes", "temporal-delta persistent state", 1 / 1024, "KiB"))


def reference_text(res: Results) -> str:
    """The reference's totals with units, per frame: ``SOPs 22.5 M, energy 868 µJ, ... per frame``."""
    parts = [f"{name} {res.baseline[key] * scale:.4g} {unit}" for key, name, scale, unit in _REFERENCE
             if res.baseline.get(key) is not None]
    return ", ".join(parts) + " per frame" if parts else ""


def _datasets_first(res: Results) -> list[str]:
    """Fit and schedule of cost datasets (event-only reports have no cost: nothing to say)."""
    lines = []
    if "fits" in res.configs:
        fits = res.configs["fits"].fillna(0).astype(bool)
        lines.append(f"{int(fits.sum())} of {len(fits)} configurations fit the hardware"
                     + ("" if fits.all() else ": " + "; ".join(
                         f"{c} does not" for c in res.configs.loc[~fits, "config"])) + ".")
    schedules = sorted({str(ds.attrs["schedule"]) for ds in res.datasets.values() if "schedule" in ds.attrs})
    if schedules:
        hops = sorted({str(ds.attrs["hop_timing"]) for ds in res.datasets.values() if "hop_timing" in ds.attrs})
        lines.append(f"Schedule: {', '.join(schedules)}, the same for every scheme; static energy is charged "
                     "over each configuration's own latency." + (_hops_text(", ".join(hops)) if hops else ""))
    return lines
