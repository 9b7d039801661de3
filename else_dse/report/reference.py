"""What a report compares against: the conventional baseline, temporal-delta state and the
ELSE paper's claimed reductions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from .results import Results

if TYPE_CHECKING:
    from matplotlib.axes import Axes


#: The ELSE paper's (Zhu et al., ECCV 2024) claimed reductions over conventional processing.
PAPER_CLAIMS = {
    "detection": (3.14, 6.49),  # fewer event-triggered computations, object detection
    "pose": (2.43, 5.75),       # fewer event-triggered computations, pose estimation
    "state_vs_temporal": 2.0,   # > 2x less state memory than temporal suppression alone
}


def _network_task(attrs: Mapping[str, Any]) -> str | None:
    text = " ".join(str(v) for k, v in attrs.items() if k != "layers").lower()
    if any(w in text for w in ("blazeface", "posedet", "pose_detection", "face_detection", "detect")):
        return "detection"
    if any(w in text for w in ("landmark", "pose")):
        return "pose"
    return None


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
