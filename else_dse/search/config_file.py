"""Study config files (TOML/YAML tables), as ``else-dse search CONFIG`` runs them."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import optuna

from .objectives import Constraint, ErrorBudget, Fits
from .runner import run
from ..schemes import Scheme
from .space import Choice, Domain, FloatRange, IntRange, SearchError, Space, _choice


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
        kw["fixed"] = Scheme.parse(_choice("space.fixed", d["fixed"]))
    return Space(**kw)


def run_config(cfg: Mapping[str, Any], *, base_dir: str | Path = ".", storage: str | None = None,
               study_name: str | None = None, n_trials: int | None = None, n_jobs: int | None = None,
               seed: int | None = None, progress_bar: bool = False) -> optuna.Study:
    """Run the study a config describes (:data:`CONFIG_HELP`); keyword arguments override it."""
    from ..recording import open_recording

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
