"""A validated search problem (:func:`define`) and the configuration of one trial."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import optuna
from optuna.distributions import (BaseDistribution, CategoricalDistribution, FloatDistribution,
                                  IntDistribution)

from ..cost import estimate_values
from ..hardware import FIELDS as HARDWARE_FIELDS
from ..hardware import Hardware, HardwareError, load_template
from ..recording import QuantizedRecording, Recording
from ..schemes import Conventional, Plan, Scheme
from .closed_loop import ClosedLoop, value_range_of
from .evaluate import Evaluation, StatsCache, evaluation
from .objectives import (_ERROR_METRICS, OBJECTIVES, TASK_OBJECTIVES, Constraint, ErrorBudget, Fits, TaskBudget,
                         task_values)
from ..schemes import NAMES
from .space import (Config, Domain, FloatRange, SearchError, Space, _apply_hardware, _choice, _corner,
                    _distribution, _hw_field, _scheme_ok, _values)


# ---- problem: validated bundle ------------------------------------------------------------

@dataclass(frozen=True)
class Problem:
    """A validated search problem: recording, space, objectives, constraints and hardware.

    Build it with :func:`define`. ``distributions`` are the Optuna parameters;
    ``cache`` holds the event statistics of the recording (:class:`StatsCache`).
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
    cache: StatsCache = field(compare=False, repr=False)      # statistics, owned by the problem
    drawn: dict[tuple[str, int, int], Scheme] = field(default_factory=dict, compare=False, repr=False)
    #: the hardware of each set of searched hardware values met so far (a validated copy costs 0.15 ms)
    hardwares: dict[tuple, Hardware] = field(default_factory=dict, compare=False, repr=False)
    layout: list[tuple[str, tuple[str, str, str, int] | None]] = field(default_factory=list, compare=False,
                                                                       repr=False)   # see _layout
    #: with a model and frames: every trial is replayed in closed loop (its stats are the closed-loop ones)
    closed_loop: ClosedLoop | None = field(default=None, compare=False, repr=False)

    @property
    def content(self) -> str:
        """The recording's content hash (:func:`~else_dse.search.content_hash`; the cache's key)."""
        return self.cache.content

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
        for n, keys in self._layout():
            if keys is None:
                schemes[n] = self.fixed_schemes[n].adjusted(tau=tau)
            else:
                key_s, key_t, choice0, thr0 = keys
                schemes[n] = self._drawn(str(params.get(key_s, choice0)), int(params.get(key_t, thr0)), tau)
        hw = self.hardware
        if hw is not None and sp.hardware:
            changes = {}
            for k in sp.hardware:
                f = _hw_field(k)
                changes[f] = params.get(f"hardware.{f}", sp.hardware[k])
            key = tuple((f, type(v), v) for f, v in changes.items())     # 1 and 1.0 are distinct values
            built = self.hardwares.get(key)
            if built is None:
                if len(self.hardwares) >= 4096:      # bounded: a float field rarely repeats
                    self.hardwares.clear()
                built = self.hardwares[key] = _apply_hardware(hw, changes, sp.grow_mesh, sp.derive)
            hw = built
        return Config(bits, tau, Plan(schemes, default=Conventional(tau=tau)), hw)

    def _layout(self) -> list[tuple[str, tuple[str, str, str, int] | None]]:
        """Per layer in order: its name and, for a free layer, the parameter names of its
        scheme and threshold and their values when a parameter set lacks them (None: a fixed
        layer). Built on the first call and kept in ``layout``."""
        if not self.layout:
            shared = self.space.shared
            self.layout[:] = [      # one assignment: threads building it at once agree
                (n, ((("scheme", "threshold") if shared else (f"scheme.{n}", f"threshold.{n}"))
                     + (self.layer_choices[n][0], _values(self.layer_thresholds[n])[0]))
                 if n in self.layer_choices else None)
                for n in (layer.name for layer in self.recording.layers)]
        return self.layout

    def _drawn(self, choice: str, threshold: int, tau: int) -> Scheme:
        """The scheme of a drawn choice and threshold, built once (``drawn``: at most one entry
        per choice, threshold and tau of the space)."""
        key = (choice, threshold, tau)
        s = self.drawn.get(key)
        if s is None:
            s = Scheme.parse(choice).adjusted(threshold=threshold, tau=tau, loop=self.space.loop)
            self.drawn[key] = s
        return s

    def prefill(self, n_trials: int) -> int:
        """Compute the statistics of every scheme each layer can be drawn with, at every bits
        and tau of the space, at once on every kernel thread (:meth:`StatsCache.prefill`)
        instead of one curve at a time as trials first ask for them; skipped when that is
        more curves than ``n_trials`` trials (those still to run) could ask for, or in closed
        loop (which counts the replays). Returns the number of curves computed."""
        if self.closed_loop is not None or n_trials < 1:
            return 0
        taus = [int(t) for t in _values(self.space.tau)]
        schemes: dict[str, list[Scheme]] = {}
        for n, keys in self._layout():
            if keys is None:
                schemes[n] = [self.fixed_schemes[n].adjusted(tau=t) for t in taus]
            else:
                schemes[n] = [self._drawn(c, keys[3], t) for c in self.layer_choices[n] for t in taus]
        bits = [int(b) for b in _values(self.space.bits)]  # type: ignore[arg-type]
        return self.cache.prefill(schemes, bits, limit=n_trials * len(schemes))

    # ---- evaluation
    def evaluate(self, config: Config) -> Evaluation:
        """Statistics (cached), cost, objectives, constraints and the stored breakdown; with a
        model and frames, of the closed-loop replay (:class:`ClosedLoop`, replays cached)."""
        if self.closed_loop is not None:
            return self.closed_loop.evaluate(self.objectives, self.constraints, config)
        stats = self.cache.arrays(config.plan, config.bits)
        cost = estimate_values(stats, config.hardware) if config.hardware is not None else None
        return evaluation(self.objectives, self.constraints, config, stats, cost)

    def baseline_evaluation(self) -> Evaluation:
        """Conventional processing (tau=0) of every layer, at the first bits value, on the
        hardware given to :func:`define` (the template, before any searched hardware field),
        evaluated like a trial: totals, per-layer table and this problem's constraints."""
        bits = int(_values(self.space.bits)[0])  # type: ignore[arg-type]
        cfg = Config(bits, 0, Plan({layer.name: Conventional() for layer in self.recording.layers}),
                     self.hardware)
        if self.closed_loop is not None:
            return self.closed_loop.evaluate(self.objectives, self.constraints, cfg)
        stats = self.cache.arrays(cfg.plan, bits)
        cost = estimate_values(stats, self.hardware) if self.hardware is not None else None
        return evaluation(self.objectives, self.constraints, cfg, stats, cost)

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
        """JSON-able: space, objectives, constraint names, parameters and hardware (stored with a study)."""
        out = {"space": self.space.describe(), "objectives": list(self.objectives),
               "constraints": [c.name for c in self.constraints],
               "parameters": list(self.distributions),
               "hardware": None if self.hardware is None else self.hardware.to_dict()}
        if self.closed_loop is not None:    # only then: open-loop studies resume as before
            out["closed_loop"] = {"model": self.closed_loop.model.name, "n_frames": self.closed_loop.n_frames,
                                  "value_range": list(self.closed_loop.value_range)}
        return out



def _check_layer_names(field: str, given: Any, names: Sequence[str]) -> None:
    """Raise if ``given`` (layer names, or a mapping keyed by them) names a layer not in ``names``."""
    unknown = [n for n in given if n not in names]
    if unknown:
        raise SearchError(f"{field}: unknown layer(s) {unknown}; allowed are {names}")

def define(recording: Recording, space: Space, objectives: str | Sequence[str], *,
           constraints: Sequence[Constraint] = (), hardware: Hardware | str | None = None,
           model: str | Path | ClosedLoop | None = None, frames: Iterable[Any] | None = None,
           value_range: tuple[float, float] | None = None) -> Problem:
    """Check everything against the recording and hardware, before any trial runs.

    ``model`` and ``frames`` (the model and the frames the recording was made from):
    every trial is replayed in closed loop on them (:class:`~else_dse.search.closed_loop.ClosedLoop`),
    as task objectives (:data:`~else_dse.search.objectives.TASK_OBJECTIVES`) and
    :class:`TaskBudget` need; ``value_range`` defaults to the recording's preprocessing.
    ``model`` may also be a :class:`~else_dse.search.closed_loop.ClosedLoop` (reused, with
    its frames: pass no ``frames``).
    Raises :class:`SearchError` naming the bad layer, field, objective or range and
    what is allowed.
    """
    if not isinstance(recording, Recording):
        raise SearchError(f"recording must be an else_dse.Recording, got {type(recording).__name__}")
    if not isinstance(space, Space):
        raise SearchError(f"space must be an else_dse.search.Space, got {type(space).__name__}")
    names = [layer.name for layer in recording.layers]
    objs = _check_objectives(objectives)
    hardware = _check_hardware(hardware, objs, space, constraints)
    cons = _check_constraints(constraints, names)
    dists = _quantization(recording, space)
    _check_layer_args(space, names)
    free, layer_choices, layer_thr = _free_layers(space, recording)
    dists.update(_scheme_distributions(space, free, layer_choices, layer_thr))
    fixed = _fixed_schemes(space, recording, layer_choices)
    dists.update(_hardware_distributions(space, hardware))
    cache = StatsCache(recording, space.calibration, levels=_levels(recording, space, layer_thr))
    loop = _closed_loop(recording, objs, cons, space, model, frames, value_range)
    return Problem(recording, space, objs, cons, hardware, dists, tuple(free), layer_choices, layer_thr,
                   fixed, cache, closed_loop=loop)


def _new_closed_loop(recording: Recording, space: Space, model: str | Path | None, frames: Iterable[Any] | None,
                     value_range: tuple[float, float] | None) -> ClosedLoop:
    if model is None or frames is None:
        raise SearchError(f"closed loop needs both model= and frames=, got only "
                          f"{'model' if frames is None else 'frames'}")
    vr = value_range if value_range is not None else value_range_of(str(recording.attrs.get("preprocessing", "")))
    if vr is None:
        raise SearchError("value_range: the recording does not say its input value range (attr "
                          "'preprocessing'); pass value_range=(lo, hi)")
    return ClosedLoop(model, frames, value_range=vr, calibration=space.calibration)


def _closed_loop(recording: Recording, objs: Sequence[str], cons: Sequence[Constraint], space: Space,
                 model: str | Path | ClosedLoop | None, frames: Iterable[Any] | None,
                 value_range: tuple[float, float] | None) -> ClosedLoop | None:
    """The closed-loop evaluator of a model and frames (checked against the recording), or None."""
    task = [o for o in objs if o in TASK_OBJECTIVES] + [c.name for c in cons if isinstance(c, TaskBudget)]
    if model is None and frames is None:
        if task:
            raise SearchError(f"{', '.join(task)} need model= and frames= (the model and frames of the "
                              "recording) to be replayed in closed loop")
        return None
    if isinstance(model, ClosedLoop):
        if frames is not None or value_range is not None or model.calibration != space.calibration:
            raise SearchError("model: a ClosedLoop brings its own frames and value range (give frames=None, "
                              "value_range=None) and must use the space's calibration")
        loop = model
    else:
        loop = _new_closed_loop(recording, space, model, frames, value_range)
    info = {**recording.attrs, "n_frames": recording.n_frames, "layers": [la.name for la in recording.layers]}
    loop.check(info, "search")
    found = loop.run(Conventional(), int(_values(space.bits)[0])).fidelity  # type: ignore[arg-type]
    missing = [t.split("<=")[0] for t in task if t.split("<=")[0] not in task_values(found)]
    if missing:
        raise SearchError(f"{', '.join(missing)}: the outputs of {Path(model).name} have no such metric "
                          f"(fidelity gives {sorted(found)}); task_recall/task_iou need a detector, "
                          "task_pck the pose landmark network")
    return loop


def _check_objectives(objectives: str | Sequence[str]) -> tuple[str, ...]:
    """The objective names (known, at least one, no repeats)."""
    objs = (objectives,) if isinstance(objectives, str) else tuple(objectives)
    if not objs:
        raise SearchError(f"give at least one objective; allowed are {sorted(OBJECTIVES)}")
    for o in objs:
        if o not in OBJECTIVES:
            raise SearchError(f"unknown objective {o!r}; allowed are {sorted(OBJECTIVES)}")
    if len(set(objs)) != len(objs):
        raise SearchError(f"objectives repeat: {list(objs)}")
    return objs


def _check_hardware(hardware: Hardware | str | None, objs: Sequence[str], space: Space,
                    constraints: Sequence[Constraint]) -> Hardware | None:
    """The hardware (a template name is loaded); cost objectives, hardware fields and Fits need one."""
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
    return hardware


def _check_constraints(constraints: Sequence[Constraint], names: Sequence[str]) -> tuple[Constraint, ...]:
    """The constraints: known kinds, valid budgets and layer names, no repeats."""
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
        elif isinstance(c, TaskBudget):
            if c.metric not in TASK_OBJECTIVES:
                raise SearchError(f"TaskBudget.metric must be one of {list(TASK_OBJECTIVES)}, got {c.metric!r}")
            if isinstance(c.limit, bool) or not isinstance(c.limit, (int, float)) or not c.limit >= 0:
                raise SearchError(f"TaskBudget.limit must be a number >= 0, got {c.limit!r}")
        elif not isinstance(c, Fits):
            raise SearchError(f"unknown constraint {c!r}; allowed are Fits(), ErrorBudget(limit, layer, metric) "
                              "and TaskBudget(metric, limit)")
    if len({c.name for c in cons}) != len(cons):
        raise SearchError(f"constraints repeat: {[c.name for c in cons]}")
    return cons


def _quantization(recording: Recording, space: Space) -> dict[str, BaseDistribution]:
    """The distributions of bits and tau; checks bits, calibration and loop."""
    dists: dict[str, BaseDistribution] = {}
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
    return dists


def _check_layer_args(space: Space, names: Sequence[str]) -> None:
    """Layer names of space.fixed, layers, schemes and threshold, and what ``shared`` allows."""
    if not isinstance(space.fixed, (Plan, Scheme)):
        raise SearchError(f"space.fixed must be a scheme or a Plan, got {space.fixed!r}")
    if isinstance(space.fixed, Plan):
        _check_layer_names("space.fixed", space.fixed.schemes, names)
    if space.layers is not None:
        if isinstance(space.layers, str):
            raise SearchError(f"space.layers must be a sequence of layer names, got the string {space.layers!r}")
        _check_layer_names("space.layers", space.layers, names)
        if not space.layers:
            raise SearchError("space.layers is empty; give layer names or None for every layer")
    if isinstance(space.schemes, Mapping):
        _check_layer_names("space.schemes", space.schemes, names)
        if space.shared:
            raise SearchError("space.shared=True draws one scheme for all layers; give schemes as a tuple")
    if isinstance(space.schemes, str):
        raise SearchError(f"space.schemes must be a tuple of names, got the string {space.schemes!r}; "
                          f"allowed names are {list(NAMES)}")
    if isinstance(space.threshold, Mapping):
        _check_layer_names("space.threshold", space.threshold, names)
        if space.shared:
            raise SearchError("space.shared=True draws one threshold for all layers; give one domain")
        for n, dom in space.threshold.items():
            _distribution(f"space.threshold[{n!r}]", dom, integer=True, minimum=0)


def _choices_of(space: Space, n: str) -> tuple[str, ...]:
    """The scheme names layer ``n`` chooses among (empty when the space gives it none)."""
    per_layer = isinstance(space.schemes, Mapping)
    raw = space.schemes.get(n) if per_layer else space.schemes  # type: ignore[union-attr]
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = (raw,)
    out = tuple(_choice(f"space.schemes[{n!r}]" if per_layer else "space.schemes", c) for c in raw)
    if not out:
        raise SearchError(f"space.schemes{f'[{n!r}]' if per_layer else ''} is empty; allowed are {list(NAMES)}")
    if len(set(out)) != len(out):
        raise SearchError(f"space.schemes has repeated choices {list(out)}")
    return out


def _free_layers(space: Space, recording: Recording
                 ) -> tuple[list[str], dict[str, tuple[str, ...]], dict[str, Domain]]:
    """The free layers, their scheme choices (those that apply to the layer) and threshold domains."""
    names = [layer.name for layer in recording.layers]
    ops = {layer.name: layer.op for layer in recording.layers}
    per_layer_schemes = isinstance(space.schemes, Mapping)
    candidates = list(space.layers) if space.layers is not None else (
        [n for n in names if n in space.schemes] if per_layer_schemes else names)  # type: ignore[operator]
    explicit = space.layers is not None or per_layer_schemes
    free: list[str] = []
    layer_choices: dict[str, tuple[str, ...]] = {}
    layer_thr: dict[str, Domain] = {}
    for n in candidates:
        opts = _choices_of(space, n)
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
                                  f"{[c for c in NAMES if _scheme_ok(c, ops[n])]}")
            continue
        free.append(n)
        layer_choices[n] = ok
        layer_thr[n] = (space.threshold.get(n, 0) if isinstance(space.threshold, Mapping)  # type: ignore[assignment]
                        else space.threshold)
    if not free:
        raise SearchError(f"no layer is free: schemes {space.schemes!r} apply to none of the layers "
                          f"{names} (line delta is not defined for fc layers)")
    return free, layer_choices, layer_thr


def _scheme_distributions(space: Space, free: Sequence[str], layer_choices: Mapping[str, tuple[str, ...]],
                          layer_thr: Mapping[str, Domain]) -> dict[str, BaseDistribution]:
    """The scheme and threshold parameters: one of each (shared) or one per free layer."""
    dists: dict[str, BaseDistribution] = {}
    per_layer_thr = isinstance(space.threshold, Mapping)
    thresholded = any(Scheme.parse(c).thresholded for n in free for c in layer_choices[n])
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
            if d is not None and any(Scheme.parse(c).thresholded for c in layer_choices[n]):
                dists[f"threshold.{n}"] = d
    if not thresholded:
        d = _distribution("space.threshold", space.threshold if not per_layer_thr else 0, integer=True,  # type: ignore[arg-type]
                          minimum=0)
        if d is not None:
            raise SearchError(f"space.threshold is a range but none of the schemes {space.schemes!r} "
                              f"takes a threshold; allowed schemes with one are "
                              f"{[c for c in NAMES if Scheme.parse(c).thresholded]}")
    return dists


def _fixed_schemes(space: Space, recording: Recording, layer_choices: Mapping[str, Any]) -> dict[str, Scheme]:
    """The scheme of every layer that is not free (``space.fixed``), checked against the layer."""
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
    return fixed


def _hardware_distributions(space: Space, hardware: Hardware | None) -> dict[str, BaseDistribution]:
    """The hardware field parameters; every corner of the hardware box must be a valid Hardware."""
    dists: dict[str, BaseDistribution] = {}
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
        lows = {f: _corner(dom, 0) for f, dom in hw_fields.items()}
        highs = {f: _corner(dom, -1) for f, dom in hw_fields.items()}
        for corner in (lows, highs):
            try:
                _apply_hardware(hardware, corner, space.grow_mesh, space.derive)
            except HardwareError as exc:
                raise SearchError(f"space.hardware: {corner} gives an invalid hardware: {exc}") from None
    return dists


def _levels(recording: Recording, space: Space, layer_thr: Mapping[str, Domain]
            ) -> dict[str, tuple[list[int], list[int]]]:
    """Per layer, every (threshold, tau) the space can ask for: one curve computes all."""
    tau = sorted(int(v) for v in _values(space.tau))
    return {layer.name: (sorted(int(v) for v in _values(layer_thr[layer.name]))
                         if layer.name in layer_thr else [], tau) for layer in recording.layers}
