"""Objectives (all minimized) and constraints (feasible when <= 0) of a search."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


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
}
_ERROR_METRICS = ("error", "max_error")


@dataclass(frozen=True)
class Fits:
    """The mapping fits the hardware (cores, neurons and SRAM per core)."""

    @property
    def name(self) -> str:
        """``fits``: the constraint's key in stored trials."""
        return "fits"


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


Constraint = Union[Fits, ErrorBudget]
