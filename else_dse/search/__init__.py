"""Design-space exploration with Optuna: search spaces, objectives, constraints, studies.

A :class:`Space` says which parts of a configuration are free and over what
range: the scheme and threshold of each layer (by name, :data:`else_dse.schemes.NAMES`
as :data:`SCHEMES`: line delta along y or x, forward or reverse, temporal delta,
conventional), the quantization bits, the
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
cost model need ``hardware``. Task objectives (:data:`TASK_OBJECTIVES`), evaluated
by closed-loop replay on the recording's model and frames (``run(..., model=,
frames=)``; ``model``/``media`` in a config file): ``task_recall`` (1 - detection
recall), ``task_iou`` (1 - mean IoU of matched detections), ``task_pck``
(1 - landmark PCK@0.05) and ``output_error`` (mean over output tensors of the
relative L2 error), all against the float run (:func:`else_dse.tasks.fidelity`,
docs/tasks.md; a NaN metric counts as the worst, 1). With a model and frames
*every* objective is closed loop: each trial is replayed under its plan
(:class:`ClosedLoop`, the float run once, replays cached by plan, bits and
calibration) and its events, SOPs, errors and cost are those of what the deployed
network sends (user attribute ``loop`` says so; ``fidelity`` holds the task metrics).

Constraints (feasible when every value is <= 0): :class:`Fits` (the mapping fits
the hardware), :class:`ErrorBudget` (total error, one layer's, or every
layer's) and :class:`TaskBudget` (a task objective within a limit; closed loop). Each trial sets them with Optuna's ``Trial.set_constraint`` (system
attributes ``constraints:<name>``; Optuna 5.x), so TPE and NSGA-II honour them
and ``study.best_trials`` holds feasible trials only.

What a trial stores (user attributes, JSON): ``config`` (bits, tau, hardware
fields, the plan as ``{layer: {kind, axis, direction, threshold, tau, loop}}``,
:meth:`else_dse.Scheme.to_dict`), ``totals`` (every objective and
every scalar total of the cost model), ``layers`` (a per-layer table: choice
(the scheme's name), scheme (kind), axis, direction, loop, threshold, tau,
events, sops, errors and every per-layer cost variable; numeric columns are stored
as exact base64 strings of their numpy bytes, :mod:`else_dse.search.layer_columns`:
:func:`trial_layers` reads them back as arrays), ``constraints`` (``{name: value}``, also in Optuna's system attributes
``constraints:<name>``) and ``feasible``. The study stores ``objectives``,
``search`` (the space, objectives, constraints and hardware), ``recording`` and
``baseline_conventional`` (totals of conventional processing of every layer on the
template hardware, with ``fits`` and ``feasible``: the template may be too small for
it when hardware fields are searched) and ``baseline_conventional_layers`` (its
per-layer table) as user attributes, so reports never recompute; :func:`trials_table` reads them into
a DataFrame.

Speed: event statistics are computed per (recording content, bits, layer,
scheme) once and kept in the problem's bounded :class:`StatsCache`; thresholds
of a layer are computed all at once with :func:`else_dse.event_curve`, and
before the first trial :func:`run` computes the curves of every layer and scheme
the space can draw, one layer per core (:meth:`Problem.prefill`). Samplers
run against an in-memory mirror of the study, and a finished trial is written to
the storage as one journal row (:mod:`else_dse.search.storage`), so the storage
costs little even with hundreds of parameters.

Storage and workers: ``storage=None`` is an SQLite file ``<study_name>.db`` in
the working directory; ``sqlite:///path.db`` and ``postgresql://user@host/db``
hold the study as an Optuna journal in a table of that database
(:class:`SQLJournalBackend`; open it again with :func:`open_storage`); a database
written by Optuna's own ``RDBStorage`` still opens; ``"journal:<path>"`` (Optuna's
journal file) and ``optuna.storages`` objects work too. ``n_trials`` is the number
of *complete* trials the study should hold: a rerun resumes a study, and several
workers (``workers=N`` processes, or several machines calling :func:`run` on
the same study) share the work (:mod:`else_dse.search.worker`): a trial is
stored once, when it is finished; a claimed waiting trial whose worker died is
failed and retried; when two workers finish the last trials at the same moment,
the one beyond ``n_trials`` is marked FAIL with the user attribute ``surplus``.

Verification: :func:`verify` (``else-dse verify``) replays chosen trials of an
open-loop study in closed loop and stores the closed-loop events, SOPs, cost totals
and task metrics beside the open-loop values in the study ``<name>:verify`` of the
same storage (:mod:`else_dse.search.verify`); the report shows them side by side.

Config files: :func:`run_config` runs a study described by a TOML/YAML table
(:data:`CONFIG_HELP`), as ``else-dse search CONFIG`` does.
"""

from __future__ import annotations

import optuna  # noqa: F401 - the namespace of the run() example below, as in the single module

from .config_file import CONFIG_HELP, ConstraintSection, StudyConfig, StudySection, run_config, space_from_dict
from .evaluate import Evaluation, StatsCache, content_hash, evaluation
from .closed_loop import ClosedLoop, ClosedLoopRun
from .objectives import OBJECTIVES, TASK_OBJECTIVES, Constraint, ErrorBudget, Fits, TaskBudget
from .layer_columns import trial_layers
from .problem import Problem, define
from .runner import Interrupted, prepare, run, trials_table
from .worker import SAMPLERS, make_sampler, work
from ..schemes import LINE_ORDERINGS
from ..schemes import NAMES as SCHEMES
from .space import Choice, Config, Domain, FloatRange, IntRange, SearchError, Space
from .storage import SQLJournalBackend, normalize_url, open_storage
from .verify import verify, verify_study_name

__all__ = [
    "IntRange", "FloatRange", "Choice", "Space", "Fits", "ErrorBudget", "TaskBudget", "Problem", "Config",
    "ClosedLoop", "ClosedLoopRun", "verify", "verify_study_name", "TASK_OBJECTIVES",
    "Evaluation", "SearchError", "Interrupted", "SQLJournalBackend", "normalize_url", "make_sampler", "OBJECTIVES", "SCHEMES", "LINE_ORDERINGS", "SAMPLERS",
    "define", "run", "run_config", "work", "prepare", "StatsCache", "evaluation", "open_storage",
    "content_hash", "trial_layers", "space_from_dict", "StudyConfig", "StudySection", "ConstraintSection", "CONFIG_HELP", "trials_table",
]

# doctest.testmod(else_dse.search) collects only objects defined in this module; the examples
# of the submodules' public functions are listed here so that it still runs them
__test__ = {"run": run}
