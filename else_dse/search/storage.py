"""Study storages on Optuna's public interfaces: a journal in a table of your database.

Optuna's ``RDBStorage`` writes every parameter and attribute of a trial in its own
statements; a per-layer trial has hundreds of them (close to a second per trial
on SQLite). Here a study lives in Optuna's public :class:`optuna.storages.JournalStorage`
over :class:`SQLJournalBackend`: one table (``else_dse_journal``) of JSON
operation logs in the database of the URL (SQLite file or PostgreSQL server), so
a finished trial is one row. Workers on several processes or machines share it
like Optuna's journal file or Redis backends: every worker replays the same
logs in the same order.

A database that already holds Optuna's own RDB tables (and no journal) is opened
with ``RDBStorage``, so studies written by plain Optuna still load.

A trial's log carries the JSON of every parameter's distribution (a third of a
per-layer trial's row). A row whose distributions equal those of an earlier row
stores ``{"else_dse:distributions_of": <that row's id>}`` instead, and reading puts
them back: Optuna gets the same logs, and only this backend reads the table
(workers sharing a study need this version of else-dse or a later one; tables
written before, with every row in full, read as they are).

Finished trials are not batched: each is written when it is finished, so a killed
worker loses only the trial it was evaluating, and every other worker sees each
trial at once. A batch would save little: most of a trial's storage time is the
JSON encoding of its breakdown and Optuna's replay of the row (its distributions,
parameters and attributes), which a batch pays all the same; only the commit per
row would be shared, at the price of losing every finished trial of an unwritten
batch when a worker is killed. (On the pose benchmark a trial's storage takes about
3 ms; SQLite writes its two rows in about 0.6 ms, mostly the write-ahead log's
checkpoints, whose cost grows with the bytes written, not with the commits.)
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

import optuna
from optuna.storages.journal import BaseJournalBackend

from .space import SearchError

TABLE = "else_dse_journal"
_SAME = "else_dse:distributions_of"   # a row's distributions are those of the row with this id
_LOCK_KEY = 0x656C7365   # PostgreSQL advisory lock that orders appends ("else")


_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")


def _sqlite_file(url: str) -> str:
    """The database of an SQLite URL as ``sqlite3.connect`` takes it (SQLAlchemy's forms:
    ``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite://`` or ``:memory:`` for
    a database in memory); a query string is refused."""
    if url in ("sqlite://", "sqlite+pysqlite://"):
        return ":memory:"
    for prefix in _SQLITE_PREFIXES:
        if url.startswith(prefix) and "?" not in url:
            return url[len(prefix):] or ":memory:"
    raise SearchError(f"storage {url!r}: an SQLite URL is sqlite:///relative/path.db, "
                      "sqlite:////absolute/path.db or sqlite:///:memory: (no query string)")


def _sqlite_connect(url: str) -> Any:
    """A connection (any thread may use it; the backend's lock serializes them) with a 60 s busy
    timeout; a database file in write-ahead-log mode (readers do not block the writer)."""
    import sqlite3

    path = _sqlite_file(url)
    con = sqlite3.connect(path, timeout=60, check_same_thread=False)
    if path != ":memory:":
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
    return con


def normalize_url(url: str) -> str:
    """A PostgreSQL URL without a driver (``postgresql://user@host/db``) gets psycopg 3, the
    driver the ``postgres`` extra installs; other URLs are returned as they are."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class SQLJournalBackend(BaseJournalBackend):
    """Optuna journal logs in one table of an SQL database: SQLite through the standard
    library's ``sqlite3`` (one connection per process), PostgreSQL through SQLAlchemy.

    Appends are serialized (SQLite's write lock; a PostgreSQL advisory lock), so
    log order is commit order and every reader sees the same sequence. Safe to use
    from forked processes (a child opens its own connection) and from threads.
    """

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.is_postgres = self.url.startswith("postgresql")
        if not (self.is_sqlite or self.is_postgres):
            raise SearchError(f"storage {url!r}: journal tables need an sqlite:// or postgresql:// URL")
        if self.is_sqlite:
            _sqlite_file(self.url)                  # a bad URL fails before any file is made
        self._connect()
        if self.is_sqlite:
            with self._connection() as con:
                con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} "
                            "(id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, log TEXT NOT NULL)")
                con.commit()
        else:
            import sqlalchemy as sa

            meta = sa.MetaData()
            sa.Table(TABLE, meta, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                     sa.Column("log", sa.Text, nullable=False))
            meta.create_all(self.engine, checkfirst=True)

    def _connect(self) -> None:
        self._lock = threading.Lock()           # a fresh one after a fork: no thread of the parent holds it
        if self.is_sqlite:
            self._sqlite = _sqlite_connect(self.url)
        else:
            import sqlalchemy as sa

            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        self._pid = os.getpid()
        self._seen: tuple[int, int | None] = (0, None)   # (logs read, id of the last one)
        self._dists: dict[int, dict[str, Any]] = {}      # row id -> distributions of that row
        self._last: tuple[int, dict[str, Any]] | None = None   # the latest row with distributions

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Any]:
        """A DBAPI connection for one operation (SQLite: this process's own, held under the lock;
        reads there open no transaction. PostgreSQL: from the pool, returned after, which rolls
        back what is left open, e.g. a read's transaction)."""
        if os.getpid() != self._pid:        # a forked worker: no connection of the parent is reused
            if not self.is_sqlite:
                self.engine.dispose(close=False)
            self._connect()
        if self.is_sqlite:
            with self._lock:
                yield self._sqlite
            return
        con = self.engine.raw_connection()
        try:
            yield con
        finally:
            con.close()

    def _query(self, sql: str, arg: Any) -> list[tuple[int, str]]:
        with self._connection() as con:
            cur = con.cursor()
            try:
                cur.execute(sql, (arg,))
                rows = cur.fetchall()
            finally:
                cur.close()
        return rows

    def _decode(self, row_id: int, text: str) -> dict[str, Any]:
        """The log of a row, its distributions put back if the row refers to an earlier row's."""
        log = json.loads(text)
        ref = log.pop(_SAME, None)
        if ref is not None:
            if ref not in self._dists:      # read from the middle of the table: fetch that row
                ph = "?" if self.is_sqlite else "%s"
                found = self._query(f"SELECT id, log FROM {TABLE} WHERE id = {ph}", ref)
                if found:
                    self._decode(*found[0])
            if ref not in self._dists:
                raise SearchError(f"{TABLE} row {row_id} takes its distributions from row {ref}, which "
                                  "holds none; the table is damaged")
            log["distributions"] = self._dists[ref]
        elif isinstance(log.get("distributions"), dict) and log["distributions"]:
            self._dists[row_id] = log["distributions"]
            self._last = (row_id, log["distributions"])
        return log

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """Logs number ``log_number_from`` on, in order.

        Rows are read through the driver's own connection (SQLAlchemy's public
        ``Engine.raw_connection``): JournalStorage reads after every operation, and
        most reads find nothing new. Row ids grow in commit order (appends are
        serialized), so a read that continues where the last one ended asks for the
        ids after the last one seen instead of counting rows from the start."""
        ph = "?" if self.is_sqlite else "%s"
        count, last = self._seen
        if log_number_from == count and last is not None:
            sql, arg = f"SELECT id, log FROM {TABLE} WHERE id > {ph} ORDER BY id", last
        else:
            sql = f"SELECT id, log FROM {TABLE} ORDER BY id {'LIMIT -1 ' if self.is_sqlite else ''}OFFSET {ph}"
            arg = log_number_from
        rows = self._query(sql, arg)
        if rows:
            self._seen = (log_number_from + len(rows), rows[-1][0])
        return [self._decode(row_id, text) for row_id, text in rows]

    def _text(self, log: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        """The row text of ``log`` and the distributions it carries in full (None: a reference)."""
        dists = log.get("distributions")
        if not isinstance(dists, dict) or not dists:
            return json.dumps(log), None
        if self._last is not None and self._last[1] == dists:
            return json.dumps({**{k: v for k, v in log.items() if k != "distributions"},
                               _SAME: self._last[0]}), None
        return json.dumps(log), dists

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        """Append ``logs`` in one transaction, after every earlier append has committed."""
        ph = "?" if self.is_sqlite else "%s"
        with self._connection() as con:
            cur = con.cursor()
            try:
                if self.is_postgres:
                    cur.execute(f"SELECT pg_advisory_xact_lock({ph})", (_LOCK_KEY,))
                full = []
                for log in logs:
                    text, dists = self._text(log)
                    if self.is_postgres:
                        cur.execute(f"INSERT INTO {TABLE} (log) VALUES ({ph}) RETURNING id", (text,))
                        row_id = int(cur.fetchone()[0])
                    else:
                        cur.execute(f"INSERT INTO {TABLE} (log) VALUES ({ph})", (text,))
                        row_id = int(cur.lastrowid)
                    if dists is not None:
                        full.append((row_id, dists))
                con.commit()
            except BaseException:
                con.rollback()          # nothing of a failed append stays
                raise
            finally:
                cur.close()
        for row_id, dists in full:      # committed: later rows may refer to it
            self._dists[row_id] = dists
            self._last = (row_id, dists)


def _has_rdb_tables(url: str) -> bool:
    """Whether the database holds Optuna's own RDB tables and no journal table."""
    if url.startswith("sqlite"):
        import sqlite3

        con = sqlite3.connect(_sqlite_file(url), timeout=60)     # no pragma: an Optuna file stays as it is
        try:
            names = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            con.close()
    else:
        import sqlalchemy as sa

        engine = sa.create_engine(normalize_url(url))
        try:
            names = set(sa.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    return "studies" in names and TABLE not in names


def _sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite URL (:func:`_sqlite_file`; None: not SQLite, or in memory)."""
    if not url.startswith("sqlite"):
        return None
    path = _sqlite_file(url)
    return None if path == ":memory:" else Path(path)


def open_storage(storage: str | optuna.storages.BaseStorage | None, study_name: str = "else-dse", *,
                 create: bool = True) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL (``sqlite:///path.db``, ``postgresql://user@host/db``:
    a :class:`SQLJournalBackend` journal; ``journal:<path>``: Optuna's journal file), an
    existing storage object (returned as is), or None (SQLite ``<study_name>.db``).

    ``create=False`` (reports) refuses a SQLite file or journal file that does not exist
    instead of creating an empty one.
    """
    if storage is None:
        storage = f"sqlite:///{Path(f'{study_name}.db').resolve()}"
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    if not isinstance(storage, str):
        raise SearchError(f"storage must be a URL, 'journal:<path>', an Optuna storage object or None, "
                          f"got {type(storage).__name__}")
    if storage.startswith("journal:"):
        path = Path(storage[len("journal:"):])
        if not create and not path.exists():
            raise SearchError(f"{path}: no such journal file")
        from optuna.storages.journal import JournalFileBackend
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if "://" not in storage:
        raise SearchError(f"storage {storage!r} is not a URL; use e.g. 'sqlite:///study.db', "
                          "'postgresql://user@host/db' or 'journal:study.log'")
    path = _sqlite_path(storage)
    if path is not None and not path.exists():
        if not create:
            raise SearchError(f"{path}: no such study database")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if _has_rdb_tables(storage):
            return optuna.storages.RDBStorage(normalize_url(storage))
        return optuna.storages.JournalStorage(SQLJournalBackend(storage))
    except ImportError as exc:
        raise SearchError(f"storage {storage!r}: {exc}; for PostgreSQL install the extra: "
                          "pip install 'else-dse[postgres]'") from None
