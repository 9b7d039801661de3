"""Opening Optuna storages and writing a trial's rows to an RDB storage in bulk."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState

from .space import SearchError

if TYPE_CHECKING:
    from .evaluate import Evaluation


# ---- storage --------------------------------------------------------------------------------


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
