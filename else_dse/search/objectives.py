"""Objectives (all minimized) and constraints (feasible when <= 0) of a search."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Union


# ---- objectives and constraints ----------------------------------------------------------

#: objective name -> (unit, needs the cost model, source variable)
OBJECTIVES: dict[str, tuple[str, bool, str]] = {
    "energy": ("pJ/frame", True, "total_energy_pj"),
    "latency": ("s/frame", True, "total_latency_s"),
    "sops": ("SOPs/frame", False, "sops"),
    "events": ("events/frame", False, "events"),
    "state_memory": ("bytes", True, "total_state_persistent_bytes"),
    "frame_memory": ("bytes", True, "total_state_frame_bytes"),
    "cores": ("cores", True, "total_cores"),
    "error": ("relative", False, "error"),
    "max_error": ("code steps", False, "max_error"),
    "task_recall": ("1 - recall", False, "task_recall"),
    "task_iou": ("1 - mean IoU", False, "task_iou"),
    "task_pck": ("1 - PCK@0.05", False, "task_pck"),
    "output_error": ("relative L2", False, "output_error"),
}
_ERROR_METRICS = ("error", "max_error")

#: task objectives (evaluated by closed-loop replay) -> the fidelity key they are 1 minus;
#: ``output_error`` is the mean of the ``rel_l2[<output>]`` keys
TASK_OBJECTIVES: dict[str, str] = {"task_recall": "detection.recall", "task_iou": "detection.mean_iou",
                                   "task_pck": "landmark.pck@0.05", "output_error": "rel_l2"}


def task_values(fidelity: Mapping[str, float]) -> dict[str, float]:
    """Every task objective ``fidelity`` (:func:`else_dse.tasks.fidelity`) has a value for:
    ``1 - metric`` (a NaN metric -- nothing matched, no frame counted -- is the worst, 1),
    ``output_error`` the mean relative L2 error over the output tensors."""
    out: dict[str, float] = {}
    for name, key in TASK_OBJECTIVES.items():
        if key == "rel_l2":
            errs = [float(v) for k, v in fidelity.items() if k.startswith("rel_l2[")]
            if errs:
                out[name] = sum(errs) / len(errs)
        elif key in fidelity:
            v = float(fidelity[key])
            out[name] = 1.0 if math.isnan(v) else 1.0 - v
    return out


@dataclass(frozen=True)
class Fits:
    """The mapping fits the hardware (cores, neurons and SRAM per core)."""

    @property
    def name(self) -> str:
        """``fits``: the constraint's key in stored trials."""
        return "fits"

    def to_dict(self) -> dict[str, Any]:
        """The constraint as a study stores it (:func:`constraint_from_dict` reads it)."""
        return {"type": "fits"}


@dataclass(frozen=True)
class ErrorBudget:
    """Error within ``limit``: in total (``layer=None``), of one layer, or of each layer
    (``layer="each"``). ``metric``: ``"error"`` (relative, mean over frames; the total
    is the mean over layers) or ``"max_error"`` (code steps, max over frames)."""

    limit: float
    layer: str | None = None
    metric: str = "error"

    @property
    def name(self) -> str:
        """``error<=0.05``, ``max_error<=2@conv1``: the constraint's key in stored trials."""
        return f"{self.metric}<={self.limit:g}" + ("" if self.layer is None else f"@{self.layer}")

    def to_dict(self) -> dict[str, Any]:
        """The constraint as a study stores it (:func:`constraint_from_dict` reads it)."""
        return {"type": "error", "limit": float(self.limit), "layer": self.layer, "metric": self.metric}


@dataclass(frozen=True)
class TaskBudget:
    """A task objective within ``limit`` (e.g. ``TaskBudget("task_recall", 0.01)``: recall >= 0.99),
    evaluated by closed-loop replay like the task objectives (:data:`TASK_OBJECTIVES`)."""

    metric: str
    limit: float

    @property
    def name(self) -> str:
        """``task_recall<=0.01``: the constraint's key in stored trials."""
        return f"{self.metric}<={self.limit:g}"

    def to_dict(self) -> dict[str, Any]:
        """The constraint as a study stores it (:func:`constraint_from_dict` reads it)."""
        return {"type": "task", "metric": self.metric, "limit": float(self.limit)}


Constraint = Union[Fits, ErrorBudget, TaskBudget]


def violated(values: Mapping[str, float | None]) -> list[str]:
    """The names of the stored constraint values (feasible when <= 0) that are violated; a
    missing (None) value counts as violated."""
    return [str(k) for k, v in values.items() if v is None or float(v) > 0]


def constraint_from_dict(d: Mapping[str, Any]) -> Constraint:
    """The constraint of a ``to_dict`` mapping (the study attribute ``constraints``)."""
    kind = d.get("type") if isinstance(d, Mapping) else None
    if kind == "fits":
        return Fits()
    if kind == "error":
        return ErrorBudget(float(d["limit"]), d.get("layer"), str(d.get("metric", "error")))
    if kind == "task":
        return TaskBudget(str(d["metric"]), float(d["limit"]))
    raise ValueError(f"a stored constraint must have type 'fits', 'error' or 'task', got {d!r}")
