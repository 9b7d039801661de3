"""Design-space exploration with Optuna: search spaces, objectives, constraints, studies.

A :class:`Space` says which parts of a configuration are free and over what
range: the scheme and threshold of each layer (line delta along y or x, forward
or reverse, temporal delta, conventional), the quantization bits, the
activation threshold ``tau`` and any hardware field by name
(``"hardware.n_cores"``). :func:`define` checks a space, objectives and
constraints against a recording and a hardware template *before any trial
runs* and returns a :class:`Problem`; :func:`run` runs an Optuna study of it::

    import else_dse as ed
    from else_dse.search import Space, IntRange, Fits, ErrorBudget
    rec = ed.open_recording("data/poselandmark_carphone.nc")
    space = Space(schemes=("conventional", "line_y", "line_x", "temporal"),
                  threshold=IntRange(0, 4),
                  hardware={"hardware.n_cores": IntRange(64, 196)})
    study = ed.search.run(rec, space, ["energy", "error"], hardware="neuronflow",
                          constraints=[Fits(), ErrorBudget(0.05)], n_trials=200,
                          storage="sqlite:///pose.db", study_name="pose")

Objectives (all minimized; :data:`OBJECTIVES`): ``energy`` (pJ per frame),
``latency`` (s per frame), ``sops`` and ``events`` (per frame, summed over
layers), ``state_memory`` (bytes of state kept across frames), ``frame_memory``
(bytes of state within a frame), ``cores`` (cores used), ``error`` (relative
reconstruction error ``||X - R|| / ||X||``, mean over layers and frames) and
``max_error`` (largest ``|X - R|`` in code steps). The first five of the
cost model need ``hardware``.

Constraints (feasible when every value is <= 0): :class:`Fits` (the mapping fits
the hardware) and :class:`ErrorBudget` (total error, one layer's, or every
layer's). Each trial sets them with ``Trial.set_constraint`` (Optuna >= 5, which
deprecates ``constraints_func``; with older Optuna the samplers get a
``constraints_func``), so TPE and NSGA-II honour them and ``study.best_trials``
holds feasible trials only.

What a trial stores (user attributes, JSON): ``config`` (bits, tau, hardware
fields, the plan as ``{layer: scheme string}``), ``totals`` (every objective and
every scalar total of the cost model), ``layers`` (a per-layer table: scheme,
axis, direction, threshold, events, sops, errors and every per-layer cost
variable), ``constraints`` (``{name: value}``, also in Optuna's system attributes
``constraints:<name>``) and ``feasible``. The study stores ``objectives``,
``search`` (the space, objectives, constraints and hardware), ``recording`` and
``baseline_conventional`` (totals of conventional processing of every layer on the
template hardware, with ``fits`` and ``feasible``: the template may be too small for
it when hardware fields are searched) and ``baseline_conventional_layers`` (its
per-layer table) as user attributes, so reports never recompute; :func:`trials_table` reads them into
a DataFrame.

Speed: event statistics are computed per (recording content, layer, scheme,
threshold, bits) once per process and reused; thresholds of a layer are
computed all at once with :func:`else_dse.event_curve`. Samplers run against an
in-memory mirror of the study and each trial is written to the storage in a few
statements, so the storage costs little even with hundreds of parameters.

Storage and workers: ``storage=None`` is an SQLite file ``<study_name>.db`` in
the working directory; any Optuna RDB URL (``postgresql://...``) works, as does
``"journal:<path>"`` or an ``optuna.storages`` object. ``n_trials`` is the number
of *complete* trials the study should hold: a rerun resumes a study, and several
workers (``workers=N`` processes, or several machines calling :func:`run` on
the same study) share the work. Running trials send heartbeats; a trial whose
worker died is failed and retried (Optuna's ``RetryHeartbeatStaleTrialCallback``)
so no result is lost and none is stored twice. When two workers create the last
trials at the same moment, the one beyond ``n_trials`` is marked FAIL with the
user attribute ``surplus`` before it runs.

Config files: :func:`run_config` runs a study described by a TOML/YAML table
(:data:`CONFIG_HELP`), as ``else-dse search CONFIG`` does.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import math
import multiprocessing
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np
import optuna
import xarray as xr
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)
from optuna.trial import FrozenTrial, TrialState

from .cost import estimate
from .events import count_events, event_curve
from .hardware import FIELDS as HARDWARE_FIELDS
from .hardware import Hardware, HardwareError, load_template
from .recording import QuantizedRecording, Recording
from .schemes import Conventional, Dense, LineDelta, Plan, Scheme, TemporalDelta

__all__ = [
    "IntRange", "FloatRange", "Choice", "Space", "Fits", "ErrorBudget", "Problem", "Config",
    "Evaluation", "SearchError", "OBJECTIVES", "SCHEMES", "LINE_ORDERINGS", "SAMPLERS",
    "define", "run", "run_config", "work", "prepare", "plan_stats", "open_storage", "content_hash",
    "space_from_dict", "make_scheme", "scheme_choice", "clear_cache", "CONFIG_HELP", "trials_table",
]


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

#: per-layer scheme choices: name -> (kind, axis, direction)
SCHEMES: dict[str, tuple[str, str, str]] = {
    "conventional": ("conventional", "", ""),
    "dense": ("dense", "", ""),
    "line_y": ("line_delta", "y", "forward"),
    "line_y_reverse": ("line_delta", "y", "reverse"),
    "line_x": ("line_delta", "x", "forward"),
    "line_x_reverse": ("line_delta", "x", "reverse"),
    "temporal": ("temporal_delta", "", ""),
}
#: the four line orderings of ELSE (axis y/x, forward/reverse)
LINE_ORDERINGS = ("line_y", "line_y_reverse", "line_x", "line_x_reverse")
_ALIASES = {"line_y_forward": "line_y", "line_x_forward": "line_x", "temporal_delta": "temporal",
            "line_delta": "line_y", "else": "line_y"}
_THRESHOLDED = {"line_y", "line_y_reverse", "line_x", "line_x_reverse", "temporal"}


def scheme_choice(name: str) -> str | None:
    """The :data:`SCHEMES` name of ``name`` or one of its aliases (``line_y_forward``,
    ``temporal_delta``, ``else``...), case and ``-``/``_`` insensitive; None when unknown.
    The one table of scheme names shared by configs and the command line."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    return key if key in SCHEMES else None


def make_scheme(choice: str, threshold: int = 0, tau: int = 0, loop: str = "closed") -> Scheme:
    """The scheme object of a choice name (:data:`SCHEMES`)."""
    kind, axis, direction = SCHEMES[choice]
    if kind == "dense":
        return Dense()
    if kind == "conventional":
        return Conventional(tau=tau)
    if kind == "temporal_delta":
        return TemporalDelta(threshold=threshold, loop=loop, tau=tau)  # type: ignore[arg-type]
    return LineDelta(axis=axis, direction=direction, threshold=threshold, loop=loop, tau=tau)  # type: ignore[arg-type]


def _scheme_ok(choice: str, op: str) -> bool:
    return not (SCHEMES[choice][0] == "line_delta" and op == "fc")


# ---- the space -------------------------------------------------------------------------

@dataclass(frozen=True)
class Space:
    """Which parts of a configuration are free, and their ranges.

    ``layers``: the layers whose scheme and threshold are searched (``None``: every
    layer at least one of ``schemes`` applies to -- line deltas do not apply to fc
    layers); the other layers use ``fixed``. ``schemes``: the choices for each free
    layer (names of :data:`SCHEMES`), or ``{layer: choices}`` per layer.
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


def _hw_field(name: str) -> str:
    return name[len("hardware."):] if name.startswith("hardware.") else name


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
        return f"{self.metric}<={self.limit:g}" + ("" if self.layer is None else f"@{self.layer}")


Constraint = Union[Fits, ErrorBudget]


# ---- problem: validated bundle ------------------------------------------------------------

@dataclass(frozen=True)
class Config:
    """One point of the space: quantization, the plan and the hardware."""

    bits: int
    tau: int
    plan: Plan
    hardware: Hardware | None
    choices: tuple[tuple[str, str, int], ...]   # (layer, scheme choice, threshold) of every layer

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"bits": self.bits, "tau": self.tau,
                               "plan": {n: f"{c}:{t}" if c in _THRESHOLDED else c for n, c, t in self.choices}}
        if self.hardware is not None:
            out["hardware"] = self.hardware.to_dict()
        return out


@dataclass(frozen=True)
class Evaluation:
    """Objective values, constraint values (<= 0 feasible) and the JSON-able breakdown."""

    values: tuple[float, ...]
    constraints: tuple[float, ...]
    user_attrs: dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """A validated search problem: recording, space, objectives, constraints and hardware.

    Build it with :func:`define`. ``distributions`` are the Optuna parameters.
    """

    recording: Recording
    space: Space
    objectives: tuple[str, ...]
    constraints: tuple[Constraint, ...]
    hardware: Hardware | None
    distributions: Mapping[str, BaseDistribution]
    free: tuple[str, ...]                                    # free layers
    layer_choices: Mapping[str, tuple[str, ...]]             # free layer -> scheme choices
    layer_thresholds: Mapping[str, Domain]                   # free layer -> threshold domain
    fixed_schemes: Mapping[str, Scheme]                      # every non-free layer -> scheme
    content: str                                             # recording content hash

    # ---- parameters -> configuration
    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Draw every free parameter from ``trial``; returns ``{name: value}``."""
        out: dict[str, Any] = {}
        for name, dist in self.distributions.items():
            if isinstance(dist, IntDistribution):
                out[name] = trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
            elif isinstance(dist, FloatDistribution):
                out[name] = trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
            else:
                out[name] = trial.suggest_categorical(name, dist.choices)  # type: ignore[arg-type]
        return out

    def config(self, params: Mapping[str, Any]) -> Config:
        """The configuration of a parameter set (missing parameters: error naming them)."""
        missing = [n for n in self.distributions if n not in params]
        if missing:
            raise SearchError(f"parameters {missing} are missing; the space has {list(self.distributions)}")
        sp = self.space
        bits = int(params.get("bits", sp.bits))  # type: ignore[arg-type]
        tau = int(params.get("tau", sp.tau))  # type: ignore[arg-type]
        schemes: dict[str, Scheme] = {}
        choices = []
        for layer in self.recording.layers:
            n = layer.name
            if n in self.layer_choices:
                key_s, key_t = ("scheme", "threshold") if sp.shared else (f"scheme.{n}", f"threshold.{n}")
                opts = self.layer_choices[n]
                choice = str(params.get(key_s, opts[0]))
                thr = int(params.get(key_t, _values(self.layer_thresholds[n])[0]))
                if choice not in _THRESHOLDED:
                    thr = 0
                schemes[n] = make_scheme(choice, thr, tau, sp.loop)
                choices.append((n, choice, thr))
            else:
                s = _with_tau(self.fixed_schemes[n], tau)
                schemes[n] = s
                choices.append((n, _choice_name(s), int(getattr(s, "threshold", 0))))
        hw = self.hardware
        if hw is not None and sp.hardware:
            changes = {}
            for k in sp.hardware:
                f = _hw_field(k)
                changes[f] = params.get(f"hardware.{f}", sp.hardware[k])
            hw = _apply_hardware(hw, changes, sp.grow_mesh, sp.derive)
        return Config(bits, tau, Plan(schemes, default=Conventional(tau=tau)), hw, tuple(choices))

    # ---- evaluation
    def evaluate(self, config: Config) -> Evaluation:
        """Statistics (cached), cost, objectives, constraints and the stored breakdown."""
        stats = plan_stats(self.recording, config.plan, config.bits, self.space.calibration,
                           content=self.content, levels=self._levels)
        cost = estimate(stats, config.hardware) if config.hardware is not None else None
        return _evaluation(self, config, stats, cost)

    @functools.cached_property
    def _levels(self) -> dict[str, tuple[list[int], list[int]]]:
        """Per layer, every (threshold, tau) the space can ask for: one curve computes all."""
        tau = sorted(int(v) for v in _values(self.space.tau))
        out = {}
        for layer in self.recording.layers:
            dom = self.layer_thresholds.get(layer.name)
            out[layer.name] = (sorted(int(v) for v in _values(dom)) if dom is not None else [], tau)
        return out

    def baseline_evaluation(self) -> Evaluation:
        """Conventional processing (tau=0) of every layer, at the first bits value, on the
        hardware given to :func:`define` (the template, before any searched hardware field),
        evaluated like a trial: totals, per-layer table and this problem's constraints."""
        bits = int(_values(self.space.bits)[0])  # type: ignore[arg-type]
        choices = tuple((layer.name, "conventional", 0) for layer in self.recording.layers)
        cfg = Config(bits, 0, Plan({}, default=Conventional()), self.hardware, choices)
        stats = plan_stats(self.recording, cfg.plan, bits, self.space.calibration, content=self.content)
        cost = estimate(stats, self.hardware) if self.hardware is not None else None
        return _evaluation(self, cfg, stats, cost)

    def baseline(self, evaluation: Evaluation | None = None) -> dict[str, Any]:
        """Totals of :meth:`baseline_evaluation`, with ``fits`` (the mapping fits the hardware it
        was estimated on; True without hardware), ``feasible`` (it meets every constraint of the
        problem: a report must not compare trials against an infeasible baseline) and
        ``hardware`` (the name of that hardware; ``""`` without)."""
        ev = evaluation if evaluation is not None else self.baseline_evaluation()
        out = dict(ev.user_attrs["totals"])
        out["fits"] = bool(out.get("fits", True))
        out["feasible"] = bool(ev.user_attrs["feasible"])
        out["hardware"] = "" if self.hardware is None else str(self.hardware.name)
        return out

    def describe(self) -> dict[str, Any]:
        return {"space": self.space.describe(), "objectives": list(self.objectives),
                "constraints": [c.name for c in self.constraints],
                "parameters": list(self.distributions),
                "hardware": None if self.hardware is None else self.hardware.to_dict()}


def _choice_name(s: Scheme) -> str:
    if isinstance(s, LineDelta):
        return f"line_{s.axis}" + ("_reverse" if s.direction == "reverse" else "")
    return {"dense": "dense", "conventional": "conventional", "temporal_delta": "temporal"}[s.kind]


def _with_tau(s: Scheme, tau: int) -> Scheme:
    return s if isinstance(s, Dense) else dataclasses.replace(s, tau=tau)  # type: ignore[type-var]


def _norm_choice(where: str, c: Any) -> str:
    c = _ALIASES.get(c, c) if isinstance(c, str) else c
    if c not in SCHEMES:
        raise SearchError(f"{where}: unknown scheme {c!r}; allowed are {sorted(SCHEMES)}")
    return c


def define(recording: Recording, space: Space, objectives: str | Sequence[str], *,
           constraints: Sequence[Constraint] = (), hardware: Hardware | str | None = None) -> Problem:
    """Check everything against the recording and hardware, before any trial runs.

    Raises :class:`SearchError` naming the bad layer, field, objective or range and
    what is allowed.
    """
    if not isinstance(recording, Recording):
        raise SearchError(f"recording must be an else_dse.Recording, got {type(recording).__name__}")
    if not isinstance(space, Space):
        raise SearchError(f"space must be an else_dse.search.Space, got {type(space).__name__}")
    names = [layer.name for layer in recording.layers]
    ops = {layer.name: layer.op for layer in recording.layers}

    # objectives
    objs = (objectives,) if isinstance(objectives, str) else tuple(objectives)
    if not objs:
        raise SearchError(f"give at least one objective; allowed are {sorted(OBJECTIVES)}")
    for o in objs:
        if o not in OBJECTIVES:
            raise SearchError(f"unknown objective {o!r}; allowed are {sorted(OBJECTIVES)}")
    if len(set(objs)) != len(objs):
        raise SearchError(f"objectives repeat: {list(objs)}")

    # hardware
    if isinstance(hardware, str):
        try:
            hardware = load_template(hardware)
        except HardwareError as exc:
            raise SearchError(str(exc)) from None
    if hardware is not None and not isinstance(hardware, Hardware):
        raise SearchError(f"hardware must be an else_dse.Hardware, a template name or None, "
                          f"got {type(hardware).__name__}")
    need_hw = [o for o in objs if OBJECTIVES[o][1]]
    if hardware is None and (need_hw or space.hardware or any(isinstance(c, Fits) for c in constraints)):
        what = need_hw or (["hardware fields"] if space.hardware else ["the Fits constraint"])
        raise SearchError(f"{', '.join(what)} need hardware=; pass an else_dse.Hardware or a template "
                          f"name such as 'neuronflow'")

    # constraints
    cons = tuple(constraints)
    for c in cons:
        if isinstance(c, ErrorBudget):
            if c.metric not in _ERROR_METRICS:
                raise SearchError(f"ErrorBudget.metric must be one of {_ERROR_METRICS}, got {c.metric!r}")
            if isinstance(c.limit, bool) or not isinstance(c.limit, (int, float)) or not c.limit >= 0:
                raise SearchError(f"ErrorBudget.limit must be a number >= 0, got {c.limit!r}")
            if c.layer is not None and c.layer != "each" and c.layer not in names:
                raise SearchError(f"ErrorBudget: unknown layer {c.layer!r}; allowed are None (total), "
                                  f"'each' or a layer name {names}")
        elif not isinstance(c, Fits):
            raise SearchError(f"unknown constraint {c!r}; allowed are Fits() and ErrorBudget(limit, layer, metric)")
    if len({c.name for c in cons}) != len(cons):
        raise SearchError(f"constraints repeat: {[c.name for c in cons]}")

    dists: dict[str, BaseDistribution] = {}

    # quantization and tau
    if isinstance(recording, QuantizedRecording):
        if _values(space.bits) != [recording.bits] or not isinstance(space.bits, (int, np.integer)):
            raise SearchError(f"space.bits: the recording is already quantized at {recording.bits} bits; "
                              f"set bits={recording.bits} or pass the float recording")
    d = _distribution("space.bits", space.bits, integer=True, minimum=2)
    if any(not 2 <= int(v) <= 16 for v in _values(space.bits) if not isinstance(space.bits, FloatRange)):
        raise SearchError(f"space.bits: quantization bits must lie in 2..16, got {space.bits!r}")
    if d is not None:
        dists["bits"] = d
    if space.calibration not in ("max", "percentile"):
        raise SearchError(f"space.calibration must be 'max' or 'percentile', got {space.calibration!r}")
    if space.loop not in ("closed", "open"):
        raise SearchError(f"space.loop must be 'closed' or 'open', got {space.loop!r}")
    d = _distribution("space.tau", space.tau, integer=True, minimum=0)
    if d is not None:
        dists["tau"] = d

    # layers and schemes
    if not isinstance(space.fixed, (Plan, Scheme)):
        raise SearchError(f"space.fixed must be a scheme or a Plan, got {space.fixed!r}")
    if isinstance(space.fixed, Plan):
        unknown = [n for n in space.fixed.schemes if n not in names]
        if unknown:
            raise SearchError(f"space.fixed: unknown layer(s) {unknown}; allowed are {names}")
    if space.layers is not None:
        if isinstance(space.layers, str):
            raise SearchError(f"space.layers must be a sequence of layer names, got the string {space.layers!r}")
        unknown = [n for n in space.layers if n not in names]
        if unknown:
            raise SearchError(f"space.layers: unknown layer(s) {unknown}; allowed are {names}")
        if not space.layers:
            raise SearchError("space.layers is empty; give layer names or None for every layer")
    per_layer_schemes = isinstance(space.schemes, Mapping)
    if per_layer_schemes:
        unknown = [n for n in space.schemes if n not in names]  # type: ignore[union-attr]
        if unknown:
            raise SearchError(f"space.schemes: unknown layer(s) {unknown}; allowed are {names}")
        if space.shared:
            raise SearchError("space.shared=True draws one scheme for all layers; give schemes as a tuple")
    if isinstance(space.schemes, str):
        raise SearchError(f"space.schemes must be a tuple of names, got the string {space.schemes!r}; "
                          f"allowed names are {sorted(SCHEMES)}")
    per_layer_thr = isinstance(space.threshold, Mapping)
    if per_layer_thr:
        unknown = [n for n in space.threshold if n not in names]  # type: ignore[union-attr]
        if unknown:
            raise SearchError(f"space.threshold: unknown layer(s) {unknown}; allowed are {names}")
        if space.shared:
            raise SearchError("space.shared=True draws one threshold for all layers; give one domain")
        for n, dom in space.threshold.items():  # type: ignore[union-attr]
            _distribution(f"space.threshold[{n!r}]", dom, integer=True, minimum=0)

    def choices_of(n: str) -> tuple[str, ...]:
        raw = space.schemes.get(n) if per_layer_schemes else space.schemes  # type: ignore[union-attr]
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw = (raw,)
        out = tuple(_norm_choice(f"space.schemes[{n!r}]" if per_layer_schemes else "space.schemes", c)
                    for c in raw)
        if not out:
            raise SearchError(f"space.schemes{f'[{n!r}]' if per_layer_schemes else ''} is empty; "
                              f"allowed are {sorted(SCHEMES)}")
        if len(set(out)) != len(out):
            raise SearchError(f"space.schemes has repeated choices {list(out)}")
        return out

    candidates = list(space.layers) if space.layers is not None else (
        [n for n in names if n in space.schemes] if per_layer_schemes else names)  # type: ignore[operator]
    explicit = space.layers is not None or per_layer_schemes
    free: list[str] = []
    layer_choices: dict[str, tuple[str, ...]] = {}
    layer_thr: dict[str, Domain] = {}
    for n in candidates:
        opts = choices_of(n)
        if not opts:
            if space.layers is not None:
                raise SearchError(f"space.schemes has no choices for layer {n!r}")
            continue
        ok = tuple(c for c in opts if _scheme_ok(c, ops[n]))
        if space.shared and ok != opts or not ok:
            if explicit and (not ok or space.shared):
                bad = [c for c in opts if c not in ok]
                raise SearchError(f"layer {n!r}: scheme(s) {bad} do not apply to an {ops[n]} layer "
                                  f"(line delta is not defined for fc); allowed there are "
                                  f"{[c for c in SCHEMES if _scheme_ok(c, ops[n])]}")
            continue
        free.append(n)
        layer_choices[n] = ok
        thr = space.threshold.get(n, 0) if per_layer_thr else space.threshold  # type: ignore[union-attr]
        layer_thr[n] = thr
    if not free:
        raise SearchError(f"no layer is free: schemes {space.schemes!r} apply to none of the layers "
                          f"{names} (line delta is not defined for fc layers)")

    thresholded = any(c in _THRESHOLDED for n in free for c in layer_choices[n])
    if space.shared:
        opts = layer_choices[free[0]]
        if len(opts) > 1:
            dists["scheme"] = CategoricalDistribution(opts)
        d = _distribution("space.threshold", space.threshold, integer=True, minimum=0)  # type: ignore[arg-type]
        if d is not None and thresholded:
            dists["threshold"] = d
    else:
        for n in free:
            if len(layer_choices[n]) > 1:
                dists[f"scheme.{n}"] = CategoricalDistribution(layer_choices[n])
        for n in free:
            where = f"space.threshold[{n!r}]" if per_layer_thr else "space.threshold"
            d = _distribution(where, layer_thr[n], integer=True, minimum=0)
            if d is not None and any(c in _THRESHOLDED for c in layer_choices[n]):
                dists[f"threshold.{n}"] = d
    if not thresholded:
        d = _distribution("space.threshold", space.threshold if not per_layer_thr else 0, integer=True,  # type: ignore[arg-type]
                          minimum=0)
        if d is not None:
            raise SearchError(f"space.threshold is a range but none of the schemes {space.schemes!r} "
                              f"takes a threshold; allowed schemes with one are {sorted(_THRESHOLDED)}")

    fixed_plan = space.fixed if isinstance(space.fixed, Plan) else Plan({}, default=space.fixed)
    fixed = {}
    for layer in recording.layers:
        if layer.name in layer_choices:
            continue
        s = fixed_plan.scheme_for(layer.name)
        try:
            s.check_layer(layer)
        except ValueError as exc:
            raise SearchError(f"space.fixed: {exc}") from None
        fixed[layer.name] = s

    # hardware fields
    hw_fields = {}
    for k, dom in space.hardware.items():
        f = _hw_field(str(k))
        if f not in HARDWARE_FIELDS or f == "name":
            raise SearchError(f"space.hardware: unknown field {k!r}; allowed are "
                              f"{sorted('hardware.' + x for x in HARDWARE_FIELDS if x != 'name')}")
        if f in hw_fields:
            raise SearchError(f"space.hardware: field {f!r} given twice")
        kind = HARDWARE_FIELDS[f][0]
        d = _distribution(f"space.hardware[{k!r}]", dom, integer=kind in ("count", "int0"),
                          minimum=1 if kind == "count" else 0 if kind != "execution" else None)
        hw_fields[f] = dom
        if d is not None:
            dists[f"hardware.{f}"] = d
    if hardware is not None and hw_fields:
        # every corner of the hardware box must be a valid Hardware
        lows = {f: _corner(dom, 0) for f, dom in hw_fields.items()}
        highs = {f: _corner(dom, -1) for f, dom in hw_fields.items()}
        for corner in (lows, highs):
            try:
                _apply_hardware(hardware, corner, space.grow_mesh, space.derive)
            except HardwareError as exc:
                raise SearchError(f"space.hardware: {corner} gives an invalid hardware: {exc}") from None

    return Problem(recording, space, objs, cons, hardware, dists, tuple(free), layer_choices, layer_thr,
                   fixed, content_hash(recording))


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


# ---- statistics with a content-keyed cache ---------------------------------------------------

_HASHES: dict[int, tuple[Any, str]] = {}
_QRECS: dict[tuple[str, int, str], QuantizedRecording] = {}
_ROWS: dict[tuple, tuple[np.ndarray, ...]] = {}
_LOCK = threading.Lock()
_CURVE_VARS = ("events", "sops", "max_error", "rel_error")


def content_hash(recording: Recording) -> str:
    """A hash of the recording's geometry, codes or values and quantization (cached per object)."""
    key = id(recording)
    hit = _HASHES.get(key)
    if hit is not None and hit[0]() is recording:
        return hit[1]
    h = hashlib.blake2b(digest_size=16)
    h.update(recording.data.attrs.get("layers", "").encode())
    for v in sorted(recording.data.data_vars):
        da = recording.data[v]
        a = np.ascontiguousarray(da.values)
        h.update(f"{v}|{da.attrs.get('tensor')}|{a.dtype}|{a.shape}|{da.attrs.get('scale')}|"
                 f"{da.attrs.get('zero_point')}".encode())
        h.update(a.data)
    h.update(f"bits={recording.data.attrs.get('bits')}|{recording.data.attrs.get('calibration')}".encode())
    digest = h.hexdigest()
    import weakref
    try:
        _HASHES[key] = (weakref.ref(recording), digest)
    except TypeError:
        pass
    return digest


def _quantized(rec: Recording, bits: int, calibration: str, content: str) -> QuantizedRecording:
    if isinstance(rec, QuantizedRecording):
        return rec
    key = (content, bits, calibration)
    q = _QRECS.get(key)
    if q is None:
        q = rec.quantize(bits=bits, calibration=calibration)  # type: ignore[arg-type]
        with _LOCK:
            if len(_QRECS) >= 8:
                _QRECS.pop(next(iter(_QRECS)))
            _QRECS[key] = q
    return q


def _family(s: Scheme) -> Scheme:
    if isinstance(s, (LineDelta, TemporalDelta)):
        return dataclasses.replace(s, threshold=0)
    if isinstance(s, Conventional):
        return Conventional(tau=0)
    return s


def _level(s: Scheme) -> int:
    """The value event_curve varies for this scheme: the threshold, or tau of Conventional."""
    return int(s.tau) if isinstance(s, Conventional) else int(getattr(s, "threshold", 0))


def _layer_rows(qrec: QuantizedRecording, content: str, layer_name: str, scheme: Scheme,
                levels: tuple[Iterable[int], Iterable[int]] = ((), ())) -> tuple[np.ndarray, ...]:
    """(events, sops, max_error, rel_error) of one layer under one scheme, per frame (cached).

    On a miss, every level of ``levels = (thresholds, taus)`` (thresholds of a delta
    scheme; tau of conventional) is computed in the same :func:`event_curve` call.
    """
    base = (content, qrec.bits, qrec.calibration, layer_name)
    key = base + (scheme,)
    rows = _ROWS.get(key)
    if rows is not None:
        return rows
    if isinstance(scheme, Dense):
        ds = count_events(qrec.select_layers([layer_name]), scheme)
        rows = tuple(np.asarray(ds[v].values[0]) for v in _CURVE_VARS)
        _ROWS[key] = rows
        return rows
    fam = _family(scheme)
    want = sorted({_level(scheme)} | {int(v) for v in levels[1 if isinstance(scheme, Conventional) else 0]})
    want = [v for v in want if base + (_at_level(fam, v),) not in _ROWS] or [_level(scheme)]
    curve = event_curve(_one_layer(qrec, content, layer_name), layer_name, fam, want)
    arrays = [np.asarray(curve[v].values) for v in _CURVE_VARS]
    with _LOCK:
        for i, v in enumerate(want):
            _ROWS[base + (_at_level(fam, v),)] = tuple(a[i].copy() for a in arrays)
    return _ROWS[key]


_ONE: dict[tuple, QuantizedRecording] = {}


def _one_layer(qrec: QuantizedRecording, content: str, layer_name: str) -> QuantizedRecording:
    """The quantized recording of one layer (cached): the kernels then find its tensor at once."""
    key = (content, qrec.bits, qrec.calibration, layer_name)
    one = _ONE.get(key)
    if one is None:
        one = qrec.select_layers([layer_name])
        with _LOCK:
            if len(_ONE) > 4096:
                _ONE.clear()
            _ONE[key] = one
    return one


def _at_level(fam: Scheme, v: int) -> Scheme:
    if isinstance(fam, Conventional):
        return Conventional(tau=v)
    return dataclasses.replace(fam, threshold=v)  # type: ignore[type-var]


def plan_stats(recording: Recording, plan: Plan | Scheme, bits: int = 8, calibration: str = "max", *,
               content: str | None = None,
               levels: Mapping[str, tuple[Iterable[int], Iterable[int]]] | None = None) -> xr.Dataset:
    """``count_events(recording.quantize(bits), plan)`` from the per-layer cache.

    Equal to :func:`else_dse.count_events` (same variables, coordinates and
    attributes) but each (recording content, layer, scheme, bits) is computed once
    per process; thresholds come from :func:`else_dse.event_curve`. ``levels``
    (``{layer: (thresholds, taus)}``) are computed along with a missing entry.
    """
    content = content or content_hash(recording)
    qrec = _quantized(recording, bits, calibration, content)
    plan = plan if isinstance(plan, Plan) else Plan({}, default=plan)
    layers = qrec.layers
    schemes = plan.resolve(layers)
    rows = [_layer_rows(qrec, content, layer.name, s, (levels or {}).get(layer.name, ((), ())))
            for layer, s in zip(layers, schemes)]
    F = qrec.n_frames
    stack = lambda i: np.stack([r[i] for r in rows])  # noqa: E731
    LF = ("layer", "frame")
    data = {
        "events": (LF, stack(0).astype(np.int64)),
        "sops": (LF, stack(1).astype(np.int64)),
        "dense_events": (LF, np.repeat(np.array([[l.dense_events] for l in layers], np.int64), F, axis=1)),
        "dense_macs": (LF, np.repeat(np.array([[l.dense_macs] for l in layers], np.int64), F, axis=1)),
        "max_error": (LF, stack(2).astype(np.float64)),
        "rel_error": (LF, stack(3).astype(np.float64)),
    }
    coords: dict[str, Any] = {"layer": [layer.name for layer in layers], "frame": qrec.data["frame"].values}
    if "frame_label" in qrec.data.coords:
        coords["frame_label"] = ("frame", qrec.data["frame_label"].values)
    coords.update({
        "scheme": ("layer", [s.kind for s in schemes]),
        "axis": ("layer", [s.axis if isinstance(s, LineDelta) else "" for s in schemes]),
        "direction": ("layer", [s.direction if isinstance(s, LineDelta) else "" for s in schemes]),
        "loop": ("layer", [getattr(s, "loop", "") for s in schemes]),
        "threshold": ("layer", np.array([getattr(s, "threshold", 0) for s in schemes], np.int64)),
        "tau": ("layer", np.array([getattr(s, "tau", 0) for s in schemes], np.int64)),
        "op": ("layer", [layer.op for layer in layers]),
    })
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({"layers": qrec.data.attrs["layers"], "plan": repr(plan), "bits": qrec.bits,
                     "calibration": qrec.calibration})
    return ds


def clear_cache() -> None:
    """Forget every cached quantization and statistic of this process."""
    with _LOCK:
        _QRECS.clear()
        _ROWS.clear()
        _ONE.clear()
        _HASHES.clear()


# ---- evaluation ------------------------------------------------------------------------------

def _arrays(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Variables and coordinates as numpy arrays (without building DataArrays)."""
    return {str(k): v.values for k, v in ds.variables.items()}


def _totals(stats: xr.Dataset, cost: xr.Dataset | None) -> dict[str, Any]:
    st = _arrays(stats)
    per_layer_rel = st["rel_error"].mean(axis=1)
    out: dict[str, Any] = {
        "sops": float(st["sops"].mean(axis=1).sum()),
        "events": float(st["events"].mean(axis=1).sum()),
        "dense_macs": float(st["dense_macs"].mean(axis=1).sum()),
        "error": float(per_layer_rel.mean()),
        "max_error": float(st["max_error"].max()),
    }
    if cost is not None:
        for v, var in cost.variables.items():
            if var.ndim == 0:
                val = var.values.item()
                out[str(v)] = bool(val) if isinstance(val, (bool, np.bool_)) else float(val)
        for o, (_, need, name) in OBJECTIVES.items():
            if need:
                out[o] = float(out[name])
        out["overflow"] = str(cost.attrs.get("overflow", ""))
    return out


def _jsonable(a: np.ndarray) -> list[Any]:
    if a.dtype.kind == "b":
        return [bool(x) for x in a]
    if a.dtype.kind in "iu":
        return [int(x) for x in a]
    if a.dtype.kind == "f":
        return [float(x) if math.isfinite(x) else None for x in a]
    return [str(x) for x in a]


def _evaluation(problem: Problem, config: Config, stats: xr.Dataset, cost: xr.Dataset | None) -> Evaluation:
    totals = _totals(stats, cost)
    values = tuple(float(totals[o]) for o in problem.objectives)
    st = _arrays(stats)
    co = _arrays(cost) if cost is not None else {}
    rel = st["rel_error"].mean(axis=1)
    mx = st["max_error"].max(axis=1)
    names = [str(n) for n in st["layer"]]
    cons: dict[str, float] = {}
    for c in problem.constraints:
        if isinstance(c, Fits):
            assert cost is not None
            if bool(co["fits"]):
                v = 0.0
            else:
                hw = config.hardware
                assert hw is not None
                v = (max(0.0, float(co["total_cores"]) - hw.n_cores) / hw.n_cores
                     + float(co["overflow_sram_bytes"].sum()) / hw.sram_per_core
                     + float(co["overflow_neurons"].sum()) / hw.neurons_per_core)
                v = max(v, 1.0)
        else:
            per = rel if c.metric == "error" else mx
            if c.layer is None:
                err = float(per.mean()) if c.metric == "error" else float(per.max())
            elif c.layer == "each":
                err = float(per.max())
            else:
                err = float(per[names.index(c.layer)])
            v = err - float(c.limit)
        cons[c.name] = float(v)
    layers: dict[str, Any] = {
        "layer": names,
        "choice": [ch for _, ch, _ in config.choices],
        "scheme": [str(s) for s in st["scheme"]],
        "axis": [str(s) for s in st["axis"]],
        "direction": [str(s) for s in st["direction"]],
        "threshold": _jsonable(st["threshold"]),
        "tau": _jsonable(st["tau"]),
        "events": _jsonable(st["events"].mean(axis=1)),
        "sops": _jsonable(st["sops"].mean(axis=1)),
        "dense_macs": _jsonable(st["dense_macs"][:, 0]),
        "rel_error": _jsonable(rel),
        "max_error": _jsonable(mx),
    }
    if cost is not None:
        for v, var in cost.variables.items():
            if var.dims == ("layer",) and str(v) not in layers:
                layers[str(v)] = _jsonable(np.asarray(var.values))
    attrs = {"config": config.describe(), "totals": totals, "layers": layers, "constraints": cons,
             "feasible": all(v <= 0 for v in cons.values())}
    return Evaluation(values, tuple(cons.values()), attrs)


# ---- storage --------------------------------------------------------------------------------

SAMPLERS = ("auto", "tpe", "nsga2", "random")


def _sqlite_pragmas(dbapi_conn: Any, _rec: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def open_storage(storage: str | optuna.storages.BaseStorage | None, study_name: str = "else-dse", *,
                 heartbeat_interval: int | None = 10, grace_period: int | None = None,
                 max_retry: int = 3) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL (RDB: sqlite, postgresql, mysql; ``journal:<path>``),
    an existing storage object (returned as is), or None (SQLite ``<study_name>.db``).

    RDB storages get heartbeats (``heartbeat_interval`` seconds) and retry trials
    whose worker died (up to ``max_retry`` times); SQLite files use WAL journaling.
    """
    if storage is None:
        storage = f"sqlite:///{Path(f'{study_name}.db').resolve()}"
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str):
        raise SearchError(f"storage must be an Optuna storage URL, 'journal:<path>', a storage object "
                          f"or None, got {type(storage).__name__}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if storage.startswith("journal:"):
            from optuna.storages.journal import JournalFileBackend
            return optuna.storages.JournalStorage(JournalFileBackend(storage[len("journal:"):]))
        if "://" not in storage:
            raise SearchError(f"storage {storage!r} is not a URL; use e.g. 'sqlite:///study.db', "
                              "'postgresql://user@host/db' or 'journal:study.log'")
        is_sqlite = storage.startswith("sqlite")
        kwargs = {"connect_args": {"timeout": 60}} if is_sqlite else {"pool_pre_ping": True}
        cb = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry) if heartbeat_interval else None
        rdb = optuna.storages.RDBStorage(storage, engine_kwargs=kwargs, heartbeat_interval=heartbeat_interval,
                                         grace_period=grace_period, heartbeat_stale_trial_callback=cb)
        if is_sqlite and ":memory:" not in storage:
            import sqlalchemy
            sqlalchemy.event.listen(rdb.engine, "connect", _sqlite_pragmas)
            rdb.engine.dispose()
        return optuna.storages.get_storage(rdb)


def _heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    from optuna.storages._heartbeat import BaseHeartbeat
    if isinstance(storage, BaseHeartbeat):
        return storage.get_heartbeat_interval()
    return None


_SET_CONSTRAINT = hasattr(optuna.trial.Trial, "set_constraint")


def _constraint_attrs(names: Sequence[str], values: Sequence[float]) -> dict[str, Any]:
    """System attributes holding the constraint values, in the format of this Optuna version."""
    if _SET_CONSTRAINT:
        return {f"constraints:{n}": float(v) for n, v in zip(names, values)}
    return {"constraints": [float(v) for v in values]}


class _ConstraintValues:
    """Optuna ``constraints_func``: the values the trial stored, in the problem's order."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)

    def __call__(self, trial: FrozenTrial) -> list[float]:
        stored = trial.user_attrs.get("constraints", {})
        return [float(stored.get(n, 1.0)) for n in self.names]


def _make_sampler(sampler: str | optuna.samplers.BaseSampler, n_objectives: int, seed: int | None,
                  constraints: Sequence[Constraint]) -> optuna.samplers.BaseSampler:
    if isinstance(sampler, optuna.samplers.BaseSampler):
        return sampler
    # Optuna >= 5 reads constraints the trials set (Trial.set_constraint); older versions need
    # constraints_func
    cf = _ConstraintValues([c.name for c in constraints]) if constraints and not _SET_CONSTRAINT else None
    name = sampler
    if name == "auto":
        name = "tpe" if n_objectives == 1 else "nsga2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed, constraints_func=cf)
        if name == "nsga2":
            return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=cf)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
    raise SearchError(f"unknown sampler {sampler!r}; allowed are {SAMPLERS} or an optuna sampler object")


# ---- the study runner ----------------------------------------------------------------------

def _check_run_args(n_trials: Any, workers: Any, sampler: Any, storage: Any, seed: Any) -> None:
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise SearchError(f"n_trials must be an int >= 1, got {n_trials!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SearchError(f"workers must be an int >= 1, got {workers!r}")
    if not isinstance(sampler, optuna.samplers.BaseSampler) and sampler not in SAMPLERS:
        raise SearchError(f"unknown sampler {sampler!r}; allowed are {SAMPLERS} or an optuna sampler object")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise SearchError(f"seed must be an int or None, got {seed!r}")
    if workers > 1 and not (storage is None or isinstance(storage, str)):
        raise SearchError("workers > 1 needs a storage URL (or None for the SQLite default) that every "
                          "worker process can open, not a storage object")
    if workers > 1 and isinstance(storage, str) and ":memory:" in storage:
        raise SearchError("workers > 1 cannot share an in-memory SQLite database; use a file or a server")


def _recording_info(rec: Recording, content: str) -> dict[str, Any]:
    return {"hash": content, "n_frames": rec.n_frames, "layers": [layer.name for layer in rec.layers],
            "source": str(rec.attrs.get("source", rec.attrs.get("model", ""))),
            **{k: str(v) for k, v in rec.attrs.items() if k in ("network", "model", "media", "task")}}


def _check_enqueue(problem: Problem, enqueue: Sequence[Mapping[str, Any]]) -> None:
    for i, params in enumerate(enqueue):
        unknown = sorted(set(params) - set(problem.distributions))
        if unknown:
            raise SearchError(f"enqueue[{i}]: unknown parameter(s) {unknown}; the space has "
                              f"{list(problem.distributions)}")
        for k, v in params.items():
            if not _inside(problem.distributions[k], v):
                raise SearchError(f"enqueue[{i}]: {k}={v!r} is outside {problem.distributions[k]}")


def prepare(problem: Problem, storage: optuna.storages.BaseStorage, study_name: str,
            enqueue: Sequence[Mapping[str, Any]] = ()) -> optuna.Study:
    """Create (or load and check) the study; store its description once.

    ``enqueue``: parameter sets (complete or partial) to run first, queued only when
    the study is new; unknown parameter names are an error."""
    _check_enqueue(problem, enqueue)
    directions = ["minimize"] * len(problem.objectives)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study = optuna.create_study(storage=storage, study_name=study_name, directions=directions,
                                    load_if_exists=True)
    desc = problem.describe()
    stored = study.user_attrs.get("search")
    if stored is None:
        study.set_user_attr("search", desc)
        study.set_user_attr("objectives", list(problem.objectives))
        study.set_user_attr("recording", _recording_info(problem.recording, problem.content))
        base = problem.baseline_evaluation()
        study.set_user_attr("baseline_conventional", problem.baseline(base))
        study.set_user_attr("baseline_conventional_layers", base.user_attrs["layers"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(problem.objectives))
        if not study.get_trials(deepcopy=False):
            for params in enqueue:
                study.enqueue_trial(dict(params))
    else:
        if json.loads(json.dumps(desc)) != stored:
            diff = sorted(k for k in desc if json.loads(json.dumps(desc[k])) != stored.get(k))
            raise SearchError(f"study {study_name!r} exists with a different search ({', '.join(diff)} "
                              "differ); use another study_name or the same configuration to resume")
        rec = study.user_attrs.get("recording", {})
        if rec.get("hash") not in (None, problem.content):
            raise SearchError(f"study {study_name!r} was run on another recording (content hash "
                              f"{rec.get('hash')}, this one {problem.content})")
    return study


def _inside(dist: BaseDistribution, v: Any) -> bool:
    if isinstance(dist, CategoricalDistribution):
        return v in dist.choices
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    if isinstance(dist, IntDistribution):
        return int(v) == v and dist.low <= v <= dist.high and (int(v) - dist.low) % dist.step == 0
    return dist.low <= v <= dist.high  # type: ignore[attr-defined]


class _Heartbeat:
    def __init__(self, storage: optuna.storages.BaseStorage, trial_id: int, interval: int | None) -> None:
        self.storage, self.trial_id, self.interval = storage, trial_id, interval
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "_Heartbeat":
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()
        return self

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001 - a missed beat only risks a retry
                pass

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def _bulk(storage: optuna.storages.BaseStorage) -> Any:
    """The RDB backend when rows can be inserted in one statement per table, else None.

    Optuna writes each parameter and attribute in its own statements (a few ms each);
    a trial of a per-layer space has hundreds. For RDB storages the rows of a trial
    that this worker just created are inserted together instead (same tables, same
    JSON encoding as ``RDBStorage``); any other storage uses the public calls.
    """
    backend = getattr(storage, "_backend", storage)
    if not isinstance(backend, optuna.storages.RDBStorage):
        return None
    try:
        from optuna.storages._rdb import models  # noqa: F401
        from optuna.storages._rdb.storage import _create_scoped_session  # noqa: F401
    except ImportError:  # pragma: no cover - another Optuna layout: use the public API
        return None
    return backend


def _write(storage: optuna.storages.BaseStorage, trial_id: int, *, params: Mapping[str, Any] = {},
           distributions: Mapping[str, BaseDistribution] = {}, user_attrs: Mapping[str, Any] = {},
           system_attrs: Mapping[str, Any] = {}, fresh: bool = False) -> None:
    """Parameters and attributes of a RUNNING trial; in one transaction if ``fresh`` (new rows only)."""
    backend = _bulk(storage) if fresh else None
    if backend is None:
        for n, v in params.items():
            storage.set_trial_param(trial_id, n, distributions[n].to_internal_repr(v), distributions[n])
        for k, v in user_attrs.items():
            storage.set_trial_user_attr(trial_id, k, v)
        for k, v in system_attrs.items():
            storage.set_trial_system_attr(trial_id, k, v)
        return
    import sqlalchemy
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    tables = [
        (models.TrialParamModel, [dict(trial_id=trial_id, param_name=n,
                                       param_value=distributions[n].to_internal_repr(v),
                                       distribution_json=distribution_to_json(distributions[n]))
                                  for n, v in params.items()]),
        (models.TrialUserAttributeModel, [dict(trial_id=trial_id, key=k, value_json=json.dumps(v))
                                          for k, v in user_attrs.items()]),
        (models.TrialSystemAttributeModel, [dict(trial_id=trial_id, key=k, value_json=json.dumps(v))
                                            for k, v in system_attrs.items()]),
    ]
    with _create_scoped_session(backend.scoped_session, True) as session:
        for model, rows in tables:
            if rows:
                session.execute(sqlalchemy.insert(model.__table__), rows)


def _state_counts(storage: optuna.storages.BaseStorage, study_id: int) -> dict[TrialState, int]:
    """Trials per state: one COUNT query on RDB storages (no trial is loaded)."""
    backend = _bulk(storage)
    if backend is None:
        out = {s: 0 for s in TrialState}
        for t in storage.get_all_trials(study_id, deepcopy=False):
            out[t.state] += 1
        return out
    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    with _create_scoped_session(backend.scoped_session) as session:
        rows = (session.query(models.TrialModel.state, sqlalchemy.func.count(models.TrialModel.trial_id))
                .filter(models.TrialModel.study_id == study_id).group_by(models.TrialModel.state).all())
    out = {s: 0 for s in TrialState}
    out.update({TrialState(st) if not isinstance(st, TrialState) else st: int(n) for st, n in rows})
    return out


def _finish(storage: optuna.storages.BaseStorage, trial_id: int, ev: Evaluation,
            extra_system: Mapping[str, Any], fresh: bool = False) -> None:
    names = list(ev.user_attrs["constraints"])
    _write(storage, trial_id, user_attrs=ev.user_attrs, fresh=fresh,
           system_attrs={**extra_system, **_constraint_attrs(names, ev.constraints)})
    storage.set_trial_state_values(trial_id, TrialState.COMPLETE, list(ev.values))


def _trial_number(storage: optuna.storages.BaseStorage, trial_id: int) -> int:
    backend = _bulk(storage)
    if backend is None:
        return storage.get_trial_number_from_id(trial_id)
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    with _create_scoped_session(backend.scoped_session) as session:
        return int(session.query(models.TrialModel.number).filter(models.TrialModel.trial_id == trial_id).one()[0])


_ALIVE = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)


def _is_surplus(storage: optuna.storages.BaseStorage, study_id: int, trial_id: int, n_trials: int) -> bool:
    """Whether this trial is beyond the first ``n_trials`` live trials (by number): another
    worker created the last ones at the same time. Cheap unless the study is nearly full."""
    counts = _state_counts(storage, study_id)
    if sum(counts[s] for s in _ALIVE) <= n_trials:
        return False
    alive = storage.get_all_trials(study_id, deepcopy=False,
                                   states=(TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING))
    ids = [t._trial_id for t in sorted(alive, key=lambda t: t.number)]
    return trial_id in ids[n_trials:]


def work(problem: Problem, storage: optuna.storages.BaseStorage, study_name: str, n_trials: int, *,
         sampler: str | optuna.samplers.BaseSampler = "auto", seed: int | None = 0,
         progress_bar: bool = False, on_trial: Callable[[int], None] | None = None) -> int:
    """Run trials of a prepared study until it holds ``n_trials`` complete trials.

    The sampler runs on an in-memory mirror of the study, kept in sync with the
    storage; a new trial is written in one statement (RUNNING, with its parameters),
    then its results. Waiting trials (retries of trials whose worker died, or
    trials enqueued by the user) are run first. Returns the number of trials this
    worker completed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        shared = optuna.load_study(study_name=study_name, storage=storage,
                                   sampler=optuna.samplers.RandomSampler(seed=seed))
    study_id = storage.get_study_id_from_name(study_name)
    directions = storage.get_study_directions(study_id)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)     # no log line per mirrored trial
    mirror = optuna.create_study(directions=directions,
                                 sampler=_make_sampler(sampler, len(directions), seed, problem.constraints))
    interval = _heartbeat_interval(storage)
    seen: set[int] = set()            # shared trial numbers the mirror holds
    seen_complete: set[int] = set()   # complete shared trials known to this worker
    done = 0
    bar = None
    if progress_bar:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_trials, desc=f"study {study_name}", unit="trial", disable=None)
    try:
        while True:
            if interval:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(shared)
            counts = _state_counts(storage, study_id)
            n_complete = counts[TrialState.COMPLETE]
            if n_complete > len(seen_complete):        # trials of other workers (or of a past run)
                for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,)):
                    if t.number not in seen_complete:
                        seen_complete.add(t.number)
                        if t.number not in seen:
                            seen.add(t.number)
                            mirror.add_trial(t)
            if bar is not None:
                bar.n = min(n_complete, n_trials)
                bar.refresh()
            if n_complete >= n_trials:
                break
            popped = None
            waiting = (storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,))
                       if counts[TrialState.WAITING] else [])
            for t in sorted(waiting, key=lambda t: t.number):
                try:
                    if storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                        popped = t
                        break
                except optuna.exceptions.UpdateFinishedTrialError:
                    continue
            if popped is not None:
                number = _run_trial(problem, mirror, storage, study_id, n_trials, interval, seen, popped)
                if number is not None:
                    seen_complete.add(number)
                    done += 1
                    if on_trial is not None:
                        on_trial(number)
                continue
            if n_complete + counts[TrialState.RUNNING] >= n_trials:
                if not interval:
                    break
                time.sleep(min(1.0, interval / 2))   # wait for running trials (or their retry)
                continue
            number = _run_trial(problem, mirror, storage, study_id, n_trials, interval, seen)
            if number is not None:
                seen_complete.add(number)
                done += 1
                if on_trial is not None:
                    on_trial(number)
    finally:
        optuna.logging.set_verbosity(verbosity)
        if bar is not None:
            bar.close()
    return done


def _run_trial(problem: Problem, mirror: optuna.Study, storage: optuna.storages.BaseStorage, study_id: int,
               n_trials: int, interval: int | None, seen: set[int],
               popped: FrozenTrial | None = None) -> int | None:
    """One trial: sampled on the mirror, run, written to the storage; returns its number
    (None when it was surplus). ``popped``: a waiting trial this worker claimed (a retry of
    a trial whose worker died, or a trial enqueued with fixed parameters); its parameters
    are kept and the mirror's sampler fills in any that are missing."""
    if popped is not None:
        fixed = dict(popped.params) or dict(popped.system_attrs.get("fixed_params", {}))
        mirror.enqueue_trial(fixed, skip_if_exists=False)
    local = mirror.ask()
    params = problem.suggest(local)
    frozen = _mirror_trial(mirror, local)
    sys0 = {k: v for k, v in frozen.system_attrs.items() if k != "fixed_params"}
    if popped is None:
        bulk = _bulk(storage) is not None
        template = optuna.trial.FrozenTrial(
            number=0, state=TrialState.RUNNING, value=None, values=None,
            datetime_start=datetime.datetime.now(), datetime_complete=None,
            params={} if bulk else dict(frozen.params), distributions={} if bulk else dict(frozen.distributions),
            user_attrs={}, system_attrs=sys0, intermediate_values={}, trial_id=0)
        trial_id = storage.create_new_trial(study_id, template_trial=template)
        if bulk:
            _write(storage, trial_id, params=frozen.params, distributions=frozen.distributions, fresh=True)
        number = _trial_number(storage, trial_id)
    else:
        trial_id, number = popped._trial_id, popped.number
        missing = {n: v for n, v in frozen.params.items() if n not in popped.params}
        _write(storage, trial_id, params=missing, distributions=frozen.distributions, fresh=not popped.params)
        _write(storage, trial_id, system_attrs=sys0)
    seen.add(number)
    with _Heartbeat(storage, trial_id, interval):
        if _is_surplus(storage, study_id, trial_id, n_trials):
            storage.set_trial_user_attr(trial_id, "surplus", f"the study already held {n_trials} "
                                        "complete or running trials when this one was created")
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            mirror.tell(local, state=TrialState.FAIL)
            return None
        try:
            ev = problem.evaluate(problem.config(params))
        except BaseException:
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
            mirror.tell(local, state=TrialState.FAIL)
            raise
        if _SET_CONSTRAINT:
            for n, v in zip(ev.user_attrs["constraints"], ev.constraints):
                local.set_constraint(n, v)
        else:   # constraints_func reads them (the mirror does not need the breakdown)
            local.set_user_attr("constraints", ev.user_attrs["constraints"])
        mirror.tell(local, list(ev.values))
        sys1 = _mirror_trial(mirror, local).system_attrs
        extra = {k: v for k, v in sys1.items()
                 if not k.startswith("constraints") and k not in sys0 and k != "fixed_params"}
        for k, v in sys1.items():   # attributes the sampler changed after the trial was created
            if k in sys0 and sys0[k] != v:
                storage.set_trial_system_attr(trial_id, k, v)
        _finish(storage, trial_id, ev, extra, fresh=popped is None)
    return number


def _mirror_trial(mirror: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
    return mirror.get_trials(deepcopy=False)[trial.number]


def _worker_main(problem: Problem, storage_spec: Any, study_name: str, n_trials: int, sampler: Any,
                 seed: int | None, heartbeat_interval: int | None, grace_period: int | None) -> None:
    storage = open_storage(storage_spec, study_name, heartbeat_interval=heartbeat_interval,
                           grace_period=grace_period)
    work(problem, storage, study_name, n_trials, sampler=sampler, seed=seed)


def run(recording: Recording, space: Space, objectives: str | Sequence[str], *,
        hardware: Hardware | str | None = None, constraints: Sequence[Constraint] = (),
        n_trials: int = 100, storage: str | optuna.storages.BaseStorage | None = None,
        study_name: str = "else-dse", seed: int | None = 0,
        sampler: str | optuna.samplers.BaseSampler = "auto", workers: int = 1,
        heartbeat_interval: int | None = 10, grace_period: int | None = None,
        progress_bar: bool = False, enqueue: Sequence[Mapping[str, Any]] = ()) -> optuna.Study:
    """Run (or resume) a study until it holds ``n_trials`` complete trials; returns it.

    Everything is validated first (:func:`define`). ``sampler``: ``"auto"`` (TPE for
    one objective, NSGA-II for several), ``"tpe"``, ``"nsga2"``, ``"random"`` or an
    Optuna sampler; every sampler that reads trial constraints honours them.
    ``workers > 1`` starts that many processes on the study (worker ``i`` seeds its
    sampler with ``seed + i``; a sampler object is copied as is into every worker).
    With one worker and a seed the study is reproducible. ``heartbeat_interval``
    (seconds, RDB URLs): how often a running trial reports that its worker lives;
    after ``grace_period`` (default twice that) without one it is failed and
    retried. ``enqueue``: parameter sets to evaluate first (e.g. reference plans),
    queued when the study is new.

    >>> import numpy as np, else_dse as ed
    >>> layer = ed.Layer("c", "x", "conv", 1, 2, kernel=3, padding=1, input_shape=(1, 6, 6))
    >>> rec = ed.Recording.from_arrays([layer], {"x": np.random.default_rng(0).random((3, 1, 6, 6))})
    >>> study = ed.search.run(rec, Space(schemes=("line_y", "temporal")), ["sops", "error"],
    ...                       n_trials=4, storage=optuna.storages.InMemoryStorage())
    >>> len(study.trials), sorted(study.trials[0].user_attrs)
    (4, ['config', 'constraints', 'feasible', 'layers', 'totals'])
    """
    problem = define(recording, space, objectives, constraints=constraints, hardware=hardware)
    _check_run_args(n_trials, workers, sampler, storage, seed)
    if not isinstance(study_name, str) or not study_name:
        raise SearchError(f"study_name must be a non-empty string, got {study_name!r}")
    _make_sampler(sampler, len(problem.objectives), seed, problem.constraints)   # validates the name
    _check_enqueue(problem, enqueue)
    store = open_storage(storage, study_name, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    prepare(problem, store, study_name, enqueue)
    if workers == 1:
        work(problem, store, study_name, n_trials, sampler=sampler, seed=seed, progress_bar=progress_bar)
    else:
        spec = storage if storage is not None else f"sqlite:///{Path(f'{study_name}.db').resolve()}"
        backend = _bulk(store)
        if backend is not None:       # no open connection is inherited by the worker processes
            backend.engine.dispose()
        ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                          else "spawn")
        procs = [ctx.Process(target=_worker_main,
                             args=(problem, spec, study_name, n_trials, sampler,
                                   None if seed is None else seed + i, heartbeat_interval, grace_period))
                 for i in range(workers)]
        for p in procs:
            p.start()
        for p in procs:
            p.join()
        bad = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode != 0]
        if bad:
            raise RuntimeError(f"search workers failed (worker, exit code): {bad}; rerun to resume the study")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.load_study(study_name=study_name, storage=store,
                                 sampler=_make_sampler(sampler, len(problem.objectives), seed,
                                                       problem.constraints))


# ---- results as a table ------------------------------------------------------------------

def trials_table(study: optuna.Study, *, front: bool = False) -> "Any":
    """A pandas DataFrame of the complete trials (``front=True``: the feasible Pareto
    front, or the best trial): number, objective values, feasibility, every stored
    total (``total.<name>``), bits, tau, hardware parameters and the count of layers per
    scheme choice. Read from the stored user attributes, nothing is recomputed."""
    import pandas as pd

    names = list(study.user_attrs.get("objectives") or [f"objective_{i}" for i in range(len(study.directions))])
    if front:
        trials = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    else:
        trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    rows = []
    for t in trials:
        row: dict[str, Any] = {"trial": t.number, **dict(zip(names, t.values or ())),
                               "feasible": bool(t.user_attrs.get("feasible", True))}
        cfg = t.user_attrs.get("config", {})
        row["bits"], row["tau"] = cfg.get("bits"), cfg.get("tau")
        for k, v in t.params.items():
            if k.startswith("hardware.") or k in ("scheme", "threshold"):
                row[k] = v
        plan = cfg.get("plan", {})
        choices = [str(v).split(":")[0] for v in plan.values()]
        thresholds = [int(str(v).split(":")[1]) for v in plan.values() if ":" in str(v)]
        for c in SCHEMES:
            row[f"n_{c}"] = choices.count(c)
        row["mean_threshold"] = float(np.mean(thresholds)) if thresholds else 0.0
        for k, v in t.user_attrs.get("totals", {}).items():
            if isinstance(v, (int, float, bool)):
                row[f"total.{k}"] = v
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(names[0]).reset_index(drop=True) if len(df) else df


# ---- configuration files (the CLI's ``else-dse search CONFIG``) ------------------------------

CONFIG_HELP = """\
A study config (TOML or YAML) has these keys (paths relative to the config file):

    recording = "../data/poselandmark_carphone.nc"
    frames = 8                     # optional: the first N frames, or a list of frame indices
    hardware = "neuronflow"        # template name or .toml path (needed by cost objectives)
    objectives = ["sops", "error"] # names of else_dse.search.OBJECTIVES
    sampler = "auto"               # auto | tpe | nsga2 | random

    [study]
    name = "quick"                 # default: the config file's stem
    storage = "sqlite:///quick.db" # default: <name>.db next to the config
    trials = 50
    seed = 0
    workers = 1

    [space]                        # else_dse.search.Space
    layers = ["conv0", "conv1"]    # optional; default every layer the schemes apply to
    schemes = ["conventional", "line_y", "line_x", "temporal"]
    threshold = [0, 4]             # int (fixed), [low, high], {low, high, step}, {choices = [...]}
    shared = false
    bits = 8
    tau = 0
    loop = "closed"
    [space.hardware]
    n_cores = [64, 196]
    sram_per_core = {low = 8192, high = 65536, step = 8192}

    [[constraints]]                # optional
    type = "fits"
    [[constraints]]
    type = "error"                 # ErrorBudget
    limit = 0.05
    layer = "each"                 # optional: a layer name, "each", or absent for the total
    metric = "error"               # or "max_error"
"""


def _parse_domain(where: str, v: Any) -> Domain:
    if isinstance(v, Mapping):
        if set(v) == {"choices"}:
            return Choice(*v["choices"])
        unknown = set(v) - {"low", "high", "step", "log"}
        if unknown or not {"low", "high"} <= set(v):
            raise SearchError(f"{where}: a range table has keys low, high and optional step, log; "
                              f"or the single key choices; got {sorted(v)}")
        if all(isinstance(v.get(k, 1), int) and not isinstance(v.get(k, 1), bool) for k in ("low", "high", "step")):
            return IntRange(v["low"], v["high"], v.get("step", 1), bool(v.get("log", False)))
        return FloatRange(float(v["low"]), float(v["high"]), v.get("step"), bool(v.get("log", False)))
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise SearchError(f"{where}: a range is [low, high]; for a set of values use "
                              f"{{choices = [...]}}; got {v!r}")
        if all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            return IntRange(v[0], v[1])
        return FloatRange(float(v[0]), float(v[1]))
    return v


def _parse_constraints(items: Any) -> list[Constraint]:
    out: list[Constraint] = []
    for i, c in enumerate(items or []):
        if not isinstance(c, Mapping) or "type" not in c:
            raise SearchError(f"constraints[{i}]: a table with type = 'fits' or 'error', got {c!r}")
        if c["type"] == "fits":
            out.append(Fits())
        elif c["type"] in ("error", "error_budget"):
            if "limit" not in c:
                raise SearchError(f"constraints[{i}]: an error budget needs limit")
            out.append(ErrorBudget(c["limit"], c.get("layer"), c.get("metric", "error")))
        else:
            raise SearchError(f"constraints[{i}]: unknown type {c['type']!r}; allowed are 'fits', 'error'")
    return out


def space_from_dict(d: Mapping[str, Any]) -> Space:
    """A :class:`Space` from a config table (see :data:`CONFIG_HELP`)."""
    allowed = {f.name for f in dataclasses.fields(Space)} - {"fixed"} | {"fixed"}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise SearchError(f"[space]: unknown key(s) {unknown}; allowed are {sorted(allowed)}")
    kw: dict[str, Any] = {}
    if "layers" in d:
        kw["layers"] = tuple(d["layers"])
    if "schemes" in d:
        s = d["schemes"]
        kw["schemes"] = ({k: tuple(v) if isinstance(v, (list, tuple)) else (v,) for k, v in s.items()}
                         if isinstance(s, Mapping) else tuple(s) if isinstance(s, (list, tuple)) else (s,))
    if "threshold" in d:
        t = d["threshold"]
        kw["threshold"] = (_parse_domain("space.threshold", t) if not isinstance(t, Mapping) or
                           set(t) <= {"low", "high", "step", "log", "choices"} else
                           {k: _parse_domain(f"space.threshold.{k}", v) for k, v in t.items()})
    for k in ("bits", "tau"):
        if k in d:
            kw[k] = _parse_domain(f"space.{k}", d[k])
    for k in ("shared", "loop", "calibration"):
        if k in d:
            kw[k] = d[k]
    if "hardware" in d:
        kw["hardware"] = {k: _parse_domain(f"space.hardware.{k}", v) for k, v in d["hardware"].items()}
    if "fixed" in d:
        kw["fixed"] = make_scheme(_norm_choice("space.fixed", d["fixed"]))
    return Space(**kw)


def run_config(cfg: Mapping[str, Any], *, base_dir: str | Path = ".", storage: str | None = None,
               study_name: str | None = None, n_trials: int | None = None, n_jobs: int | None = None,
               seed: int | None = None, progress_bar: bool = False) -> optuna.Study:
    """Run the study a config describes (:data:`CONFIG_HELP`); keyword arguments override it."""
    from .recording import open_recording

    base = Path(base_dir)
    allowed = {"recording", "frames", "hardware", "objectives", "sampler", "study", "space", "constraints"}
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise SearchError(f"config: unknown key(s) {unknown}; allowed are {sorted(allowed)}")
    if "recording" not in cfg:
        raise SearchError("config: 'recording' (path of a .nc or .zarr recording) is required")
    rec = open_recording(base / cfg["recording"])
    frames = cfg.get("frames")
    if frames is not None:
        rec = rec.select_frames(slice(0, int(frames)) if isinstance(frames, int) else list(frames))
    study_cfg = dict(cfg.get("study", {}))
    unknown = sorted(set(study_cfg) - {"name", "storage", "trials", "seed", "workers"})
    if unknown:
        raise SearchError(f"[study]: unknown key(s) {unknown}; allowed are name, storage, trials, seed, workers")
    name = study_name or study_cfg.get("name") or "else-dse"
    url = storage or study_cfg.get("storage") or f"sqlite:///{(base / f'{name}.db').resolve()}"
    hw = cfg.get("hardware")
    if isinstance(hw, str) and hw.endswith(".toml"):
        hw = str(base / hw)
    return run(rec, space_from_dict(cfg.get("space", {})), cfg.get("objectives", ["sops", "error"]),
               hardware=hw, constraints=_parse_constraints(cfg.get("constraints")),
               n_trials=int(n_trials or study_cfg.get("trials", 50)), storage=url, study_name=name,
               seed=seed if seed is not None else study_cfg.get("seed", 0),
               sampler=cfg.get("sampler", "auto"), workers=int(n_jobs or study_cfg.get("workers", 1)),
               progress_bar=progress_bar)
