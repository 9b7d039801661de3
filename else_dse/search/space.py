"""Search spaces: value ranges, per-layer scheme names, the :class:`Space` and hardware fields."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

import numpy as np
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

from ..hardware import Hardware
from ..schemes import LINE_ORDERINGS, NAMES, Conventional, Plan, Scheme


class SearchError(ValueError):
    """A bad search configuration; the message names the field and what is allowed."""


# ---- ranges ------------------------------------------------------------------------

@dataclass(frozen=True)
class IntRange:
    """Integers ``low..high`` (inclusive) in steps of ``step``; ``log`` samples log-uniformly."""

    low: int
    high: int
    step: int = 1
    log: bool = False


@dataclass(frozen=True)
class FloatRange:
    """Floats in ``[low, high]``; ``step`` discretizes, ``log`` samples log-uniformly."""

    low: float
    high: float
    step: float | None = None
    log: bool = False


@dataclass(frozen=True)
class Choice:
    """One of a few values (numbers or strings)."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        if len(values) == 1 and isinstance(values[0], (list, tuple)):
            values = tuple(values[0])
        object.__setattr__(self, "values", tuple(values))


Domain = Union[int, float, str, IntRange, FloatRange, Choice]


def _distribution(where: str, dom: Domain, *, integer: bool = False,
                  minimum: float | None = None) -> BaseDistribution | None:
    """The Optuna distribution of a free domain, None for a fixed value; raises on bad ranges."""
    if isinstance(dom, IntRange):
        for f in ("low", "high", "step"):
            v = getattr(dom, f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise SearchError(f"{where}: IntRange.{f} must be an int, got {v!r}")
        if dom.high < dom.low:
            raise SearchError(f"{where}: empty range IntRange(low={dom.low}, high={dom.high}); "
                              "allowed: low <= high")
        if dom.step < 1 or (dom.log and dom.step != 1):
            raise SearchError(f"{where}: step must be >= 1 (and 1 with log=True), got {dom.step}")
        if (dom.high - dom.low) % dom.step:
            raise SearchError(f"{where}: high - low = {dom.high - dom.low} is not a multiple of "
                              f"step={dom.step}")
        if minimum is not None and dom.low < minimum:
            raise SearchError(f"{where}: low must be >= {minimum}, got {dom.low}")
        if dom.log and dom.low < 1:
            raise SearchError(f"{where}: a log range needs low >= 1, got {dom.low}")
        return IntDistribution(int(dom.low), int(dom.high), log=dom.log, step=int(dom.step))
    if isinstance(dom, FloatRange):
        if integer:
            raise SearchError(f"{where}: takes integers; use IntRange or Choice, got {dom!r}")
        lo, hi = float(dom.low), float(dom.high)
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
            raise SearchError(f"{where}: empty or non-finite range FloatRange(low={dom.low}, "
                              f"high={dom.high}); allowed: finite low <= high")
        if minimum is not None and lo < minimum:
            raise SearchError(f"{where}: low must be >= {minimum}, got {lo}")
        if dom.log and (lo <= 0 or dom.step is not None):
            raise SearchError(f"{where}: a log range needs low > 0 and no step")
        return FloatDistribution(lo, hi, log=dom.log, step=dom.step)
    if isinstance(dom, Choice):
        if not dom.values:
            raise SearchError(f"{where}: empty Choice(); give at least one value")
        if len(set(dom.values)) != len(dom.values):
            raise SearchError(f"{where}: Choice has repeated values {list(dom.values)}")
        for v in dom.values:
            if not isinstance(v, (int, float, str, bool)) or v is None:
                raise SearchError(f"{where}: Choice values must be numbers or strings, got {v!r}")
            if integer and (isinstance(v, bool) or not isinstance(v, (int, np.integer))):
                raise SearchError(f"{where}: takes integers, got {v!r} in {dom!r}")
            if minimum is not None and isinstance(v, (int, float)) and v < minimum:
                raise SearchError(f"{where}: values must be >= {minimum}, got {v!r}")
        return CategoricalDistribution(dom.values)
    if isinstance(dom, bool) or not isinstance(dom, (int, float, str, np.integer, np.floating)):
        raise SearchError(f"{where}: must be a value, IntRange, FloatRange or Choice, got {dom!r}")
    if integer and not isinstance(dom, (int, np.integer)):
        raise SearchError(f"{where}: takes an integer, got {dom!r}")
    if minimum is not None and isinstance(dom, (int, float, np.integer, np.floating)) and dom < minimum:
        raise SearchError(f"{where}: must be >= {minimum}, got {dom!r}")
    return None


def _values(dom: Domain) -> list[Any]:
    """Every value of an integer/choice domain (for precomputing curves)."""
    if isinstance(dom, IntRange):
        return list(range(dom.low, dom.high + 1, dom.step))
    if isinstance(dom, Choice):
        return list(dom.values)
    return [dom]


# ---- schemes by name ---------------------------------------------------------------------

def _choice(where: str, c: Any) -> str:
    """The :attr:`~else_dse.Scheme.name` of a scheme choice given by name or alias."""
    if not isinstance(c, str) or ":" in c:
        raise SearchError(f"{where}: a scheme choice is a name, got {c!r}; allowed are {list(NAMES)}")
    try:
        return Scheme.parse(c).name
    except ValueError:
        raise SearchError(f"{where}: unknown scheme {c!r}; allowed are {list(NAMES)}") from None


def _scheme_ok(choice: str, op: str) -> bool:
    return not (Scheme.parse(choice).kind == "line_delta" and op == "fc")


# ---- the space -------------------------------------------------------------------------

@dataclass(frozen=True)
class Space:
    """Which parts of a configuration are free, and their ranges.

    ``layers``: the layers whose scheme and threshold are searched (``None``: every
    layer at least one of ``schemes`` applies to -- line deltas do not apply to fc
    layers); the other layers use ``fixed``. ``schemes``: the choices for each free
    layer (names of :data:`else_dse.schemes.NAMES`), or ``{layer: choices}`` per layer.
    ``threshold``: the delta threshold in code steps (int, :class:`IntRange` or
    :class:`Choice`, or ``{layer: domain}``). ``shared=True`` draws one scheme and one
    threshold for all free layers instead of one per layer. ``bits``, ``tau``:
    quantization bits (2..16) and activation threshold. ``hardware``: ``{field: domain}``
    with field names of :class:`~else_dse.Hardware` (``"n_cores"`` or
    ``"hardware.n_cores"``). ``grow_mesh``: when ``n_cores`` is free and the mesh
    fields are not, a mesh too small for the drawn ``n_cores`` grows to the smallest
    near-square ``mesh_x * mesh_y >= n_cores`` (otherwise such a draw is an error).
    ``fixed``: the scheme (or plan) of the layers that are not free. ``derive``: a
    function applied to every drawn hardware (e.g. SRAM energy growing with SRAM
    size); a module-level function, so that worker processes can use it.
    """

    layers: tuple[str, ...] | None = None
    schemes: tuple[str, ...] | Mapping[str, tuple[str, ...]] = ("conventional",) + LINE_ORDERINGS + ("temporal",)
    threshold: Domain | Mapping[str, Domain] = IntRange(0, 4)
    shared: bool = False
    loop: str = "closed"
    bits: Domain = 8
    tau: Domain = 0
    calibration: str = "max"
    hardware: Mapping[str, Domain] = field(default_factory=dict)
    fixed: Scheme | Plan = field(default_factory=Conventional)
    grow_mesh: bool = True
    derive: Callable[[Hardware], Hardware] | None = None

    def describe(self) -> dict[str, Any]:
        """A JSON-able description (stored with the study)."""
        def dom(d: Any) -> Any:
            if isinstance(d, (IntRange, FloatRange)):
                return {"type": type(d).__name__, **dataclasses.asdict(d)}
            if isinstance(d, Choice):
                return {"type": "Choice", "values": list(d.values)}
            if isinstance(d, Mapping):
                return {str(k): dom(v) for k, v in d.items()}
            if isinstance(d, tuple):
                return list(d)
            return d
        return {"layers": None if self.layers is None else list(self.layers),
                "schemes": dom(self.schemes), "threshold": dom(self.threshold), "shared": self.shared,
                "loop": self.loop, "bits": dom(self.bits), "tau": dom(self.tau),
                "calibration": self.calibration,
                "hardware": {_hw_field(k): dom(v) for k, v in self.hardware.items()},
                "fixed": repr(self.fixed), "grow_mesh": self.grow_mesh,
                "derive": None if self.derive is None else
                f"{getattr(self.derive, '__module__', '')}.{getattr(self.derive, '__qualname__', repr(self.derive))}"}


@dataclass(frozen=True)
class Config:
    """One point of the space: quantization, the plan (naming every layer) and the hardware."""

    bits: int
    tau: int
    plan: Plan
    hardware: Hardware | None

    def describe(self) -> dict[str, Any]:
        """JSON-able: bits, tau, the plan as ``{layer: Scheme.to_dict()}`` and the hardware."""
        out: dict[str, Any] = {"bits": self.bits, "tau": self.tau,
                               "plan": {n: s.to_dict() for n, s in self.plan.schemes.items()}}
        if self.hardware is not None:
            out["hardware"] = self.hardware.to_dict()
        return out


def _hw_field(name: str) -> str:
    return name[len("hardware."):] if name.startswith("hardware.") else name


def _apply_hardware(hw: Hardware, changes: Mapping[str, Any], grow_mesh: bool,
                    derive: Callable[[Hardware], Hardware] | None = None) -> Hardware:
    """``hw.replace(**changes)``; with ``grow_mesh`` a mesh too small for ``n_cores`` grows;
    then ``derive`` (if any)."""
    changes = dict(changes)
    if grow_mesh and "n_cores" in changes and not {"mesh_x", "mesh_y"} & set(changes):
        n = int(changes["n_cores"])
        if hw.mesh_x * hw.mesh_y < n:
            x = math.isqrt(n - 1) + 1
            changes.update(mesh_x=x, mesh_y=-(-n // x))
    out = hw.replace(**changes)
    if derive is not None:
        out = derive(out)
        if not isinstance(out, Hardware):
            raise SearchError(f"space.derive must return an else_dse.Hardware, got {type(out).__name__}")
    return out


def _corner(dom: Domain, i: int) -> Any:
    if isinstance(dom, (IntRange, FloatRange)):
        return dom.low if i == 0 else dom.high
    if isinstance(dom, Choice):
        return dom.values[i]
    return dom
