"""The shared study storage (else_dse.search.storage: an Optuna journal in a table of the
database) on a real PostgreSQL server and on SQLite: two workers on one study, a worker
killed mid-trial (SIGKILL) then resumed, and Ctrl-C (SIGINT) with one and two workers.
The PostgreSQL cases skip (with the reason) only when the PostgreSQL binaries or psycopg
are missing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest

from else_dse import search
from else_dse.search import IntRange, Space

sys.path.insert(0, str(Path(__file__).parent))
from conftest_pg import PostgresUnavailable, postgres_url  # noqa: E402
from test_search import synthetic  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
TS = optuna.trial.TrialState

SPACE = Space(schemes=("conventional", "line_y", "line_x", "temporal"), threshold=IntRange(0, 4))
OBJECTIVES = ["sops", "error"]

WORKER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import optuna
    import else_dse as ed
    from else_dse import search
    from else_dse.search import IntRange, Space
    url, study, nc, n, seed, out, ready, go, slow, marks = sys.argv[1:]
    rec = ed.open_recording(nc)
    space = Space(schemes=("conventional", "line_y", "line_x", "temporal"), threshold=IntRange(0, 4))
    if float(slow) > 0:                       # make trials long enough to be killed mid-trial
        evaluate = search.Problem.evaluate
        started = []
        def slow_evaluate(self, config):
            started.append(1)                 # tell the test: a trial is being evaluated now
            Path(marks, f"eval{len(started)}").touch()
            time.sleep(float(slow))
            return evaluate(self, config)
        search.Problem.evaluate = slow_evaluate
    if out == "-":                            # the whole run() as a user would call it
        problem = search.define(rec, space, ["sops", "error"])
        first = {k: "temporal" for k in problem.distributions if k.startswith("scheme.")}
        search.run(rec, space, ["sops", "error"], n_trials=int(n), storage=url, study_name=study,
                   seed=int(seed), heartbeat_interval=1, grace_period=2, enqueue=[first] * 6)
        sys.exit(0)
    problem = search.define(rec, space, ["sops", "error"])
    storage = search.open_storage(url)
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.02)
    done = []
    search.work(problem, storage, study, int(n), seed=int(seed), on_trial=done.append)
    Path(out).write_text(json.dumps(done))
""")


@pytest.fixture(scope="module")
def postgres():
    try:
        with postgres_url() as url:
            yield url
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))


_DB = iter(range(10**6))


@pytest.fixture(params=["postgresql", "sqlite"])
def pg_url(request, tmp_path_factory):
    """A storage URL: the PostgreSQL server (README form ``postgresql://user@host/db``) or a SQLite file."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres")
    return f"sqlite:///{tmp_path_factory.mktemp('sq')}/s{next(_DB)}.db"


@pytest.fixture(scope="module")
def rec_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("pgrec") / "rec.nc"
    synthetic().save(path)
    return path


def _worker(tmp_path, *args) -> subprocess.Popen:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stored(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=search.open_storage(url)).get_trials(deepcopy=False)


def _check_results(trials, n: int) -> None:
    """Exactly n complete trials, each with its stored breakdown matching its values."""
    complete = [t for t in trials if t.state == TS.COMPLETE]
    assert len(complete) == n
    assert len({t.number for t in trials}) == len(trials)
    for t in complete:
        assert set(t.params) == set(search.define(synthetic(), SPACE, OBJECTIVES).distributions)
        totals = t.user_attrs["totals"]
        assert t.values == pytest.approx([totals["sops"], totals["error"]])
        assert len(t.user_attrs["layers"]["layer"]) == 4


def test_two_workers_share_one_study_on_postgres(pg_url, rec_path, tmp_path):
    import sqlalchemy

    n = 24
    problem = search.define(synthetic(), SPACE, OBJECTIVES)
    search.prepare(problem, search.open_storage(pg_url), "two")
    go = tmp_path / "go"
    procs = [_worker(tmp_path, pg_url, "two", rec_path, n, seed, tmp_path / f"out{seed}",
                     tmp_path / f"ready{seed}", go, 0.1, tmp_path) for seed in (1, 2)]
    # 0.1 s per evaluation: on a loaded machine one worker could otherwise finish all n
    # trials before the other is scheduled at all
    deadline = time.time() + 90
    while not all((tmp_path / f"ready{s}").exists() for s in (1, 2)):
        assert time.time() < deadline and all(p.poll() is None for p in procs), \
            [p.communicate() for p in procs if p.poll() is not None]
        time.sleep(0.05)
    go.touch()
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
    done = [json.loads((tmp_path / f"out{s}").read_text()) for s in (1, 2)]
    assert done[0] and done[1], "both workers must have run trials"
    assert not set(done[0]) & set(done[1]), "a trial was run by both workers"
    trials = _stored(pg_url, "two")
    _check_results(trials, n)
    complete = {t.number for t in trials if t.state == TS.COMPLETE}
    assert complete == set(done[0]) | set(done[1]), "a result was lost or stored by nobody"
    for t in trials:   # the only other trials a race may leave are marked surplus
        assert t.state == TS.COMPLETE or "surplus" in t.user_attrs
    # stored once: one journal row creates each trial with its parameters and attributes
    engine = sqlalchemy.create_engine(search.normalize_url(pg_url))
    with engine.connect() as con:
        logs = [json.loads(r) for r in con.execute(sqlalchemy.text(
            f"select log from {search.storage.TABLE} order by id")).scalars()]
    engine.dispose()
    created = [log for log in logs if "params" in log and log.get("study_id") is not None]
    keys = [(json.dumps(log["params"], sort_keys=True), log["datetime_start"]) for log in created]
    assert len(keys) == len(set(keys)) == len(trials)
    # run(workers=2) extends the same study with two forked workers
    study = search.run(synthetic(), SPACE, OBJECTIVES, n_trials=n + 8, storage=pg_url, study_name="two",
                       workers=2, heartbeat_interval=1)
    _check_results(study.get_trials(deepcopy=False), n + 8)


def test_killed_worker_is_resumed_without_losing_results(pg_url, rec_path, tmp_path):
    n = 12
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = _worker(tmp_path, pg_url, "kill", rec_path, n, 0, "-", "-", "-", 0.5, marks)
    deadline = time.time() + 90
    while True:                      # wait for 3 complete trials, then kill during the next evaluation
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "the worker did not get going"
        try:
            n_complete = sum(t.state == TS.COMPLETE for t in _stored(pg_url, "kill"))
        except KeyError:             # study not created yet
            n_complete = 0
        if n_complete >= 3:
            break
        time.sleep(0.1)
    seen = len(list(marks.iterdir()))
    while len(list(marks.iterdir())) == seen:
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)           # within the 0.5 s evaluation of a claimed (enqueued) trial
    proc.wait(timeout=30)
    trials = _stored(pg_url, "kill")
    stale = [t for t in trials if t.state == TS.RUNNING]
    assert len(stale) == 1                           # the killed trial was left running
    killed = stale[0].number
    before = {t.number for t in trials if t.state == TS.COMPLETE}
    assert 3 <= len(before) < n

    study = search.run(synthetic(), SPACE, OBJECTIVES, n_trials=n, storage=pg_url, study_name="kill",
                       heartbeat_interval=1, grace_period=2)
    trials = study.get_trials(deepcopy=False)
    _check_results(trials, n)
    by_number = {t.number: t for t in trials}
    assert by_number[killed].state == TS.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TS.COMPLETE
    fixed = by_number[killed].system_attrs["fixed_params"]           # the same configuration, rerun
    assert fixed and {k: retries[0].params[k] for k in fixed} == fixed
    assert before <= {t.number for t in trials if t.state == TS.COMPLETE}   # nothing stored was lost
    assert [t.number for t in trials if t.state != TS.COMPLETE] == [killed]


CONFIG = """
recording = "{rec}"
objectives = ["sops", "error"]
sampler = "nsga2"
[study]
name = "ctrlc"
storage = "{url}"
trials = {trials}
workers = {workers}
[space]
schemes = ["conventional", "line_y", "line_x", "temporal"]
threshold = [0, 4]
"""


def _default_sigint() -> None:
    """SIGINT as a terminal's foreground job has it: a shell starts background jobs with SIGINT
    ignored, which a child would inherit, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


TRIALS = 100_000    # more than any run reaches before the interrupt: the study must not finish first


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_keeps_trials_prints_one_line_and_resumes(rec_path, tmp_path, workers):
    url = f"sqlite:///{tmp_path}/c.db"
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(rec=rec_path, url=url, workers=workers, trials=TRIALS))
    cmd = [sys.executable, "-m", "else_dse.cli", "search", str(cfg), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,          # its own process group, as a terminal's
                            preexec_fn=_default_sigint)      # job, even when pytest runs in the background
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline
        try:
            if sum(t.state == TS.COMPLETE for t in _stored(url, "ctrlc")) >= 5:
                break
        except KeyError:
            pass
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)                       # Ctrl-C reaches every process of the group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    trials = _stored(url, "ctrlc")
    kept = sum(t.state == TS.COMPLETE for t in trials)
    assert f"keeps {kept} of {TRIALS} complete trials" in lines[0] and "again to resume" in lines[0]
    assert not [t for t in trials if t.state == TS.RUNNING]  # nothing left running
    study = search.run(synthetic(), SPACE, OBJECTIVES, n_trials=kept + 3, storage=url, study_name="ctrlc",
                       sampler="nsga2")                       # the resume runs at once
    assert sum(t.state == TS.COMPLETE for t in study.trials) == kept + 3
