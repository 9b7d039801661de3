"""else_dse.search: spaces, validation, cached statistics, constraints, reproducibility, storage."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import numpy as np
import optuna
import pytest
import xarray as xr

import else_dse as ed
from else_dse import search
from else_dse.search import layer_columns
from else_dse.search import Choice, ErrorBudget, Fits, IntRange, SearchError, Space

optuna.logging.set_verbosity(optuna.logging.WARNING)


def synthetic(frames: int = 4, seed: int = 0) -> ed.Recording:
    """Four layers (strided conv with asymmetric padding, depthwise, 1x1 conv, fc) on
    smooth non-negative activations with frame-to-frame noise."""
    rng = np.random.default_rng(seed)
    layers = [
        ed.Layer("c0", "x", "conv", 3, 8, kernel=3, stride=2, padding=(0, 1, 0, 1), input_shape=(3, 16, 16)),
        ed.Layer("d1", "t1", "depthwise", 8, 8, kernel=3, padding=1, groups=8, input_shape=(8, 8, 8)),
        ed.Layer("c2", "t2", "conv", 8, 16, kernel=1, input_shape=(8, 8, 8)),
        ed.Layer("fc", "t3", "fc", 16 * 4 * 4, 10, input_shape=(16, 4, 4)),
    ]
    arrays = {}
    for layer in layers:
        shape = layer.input_shape
        base = rng.normal(size=(1,) + shape).cumsum(-1).cumsum(-2) * 0.1
        arrays[layer.input] = np.maximum(base + 0.05 * rng.normal(size=(frames,) + shape), 0).astype(np.float32)
    return ed.Recording.from_arrays(layers, arrays)


@pytest.fixture(scope="module")
def rec() -> ed.Recording:
    return synthetic()


SMALL_HW = {"n_cores": 64, "mesh_x": 8, "mesh_y": 8}


def small_hardware() -> ed.Hardware:
    return ed.load_template("neuronflow").replace(**SMALL_HW)


# ---- the space proposes only valid configurations -----------------------------------------

def test_space_proposes_only_valid_configurations(rec):
    space = Space(schemes=("conventional", "dense", "temporal") + search.LINE_ORDERINGS,
                  threshold=IntRange(1, 7, 2), bits=Choice(4, 6, 8), tau=IntRange(0, 2),
                  hardware={"hardware.n_cores": IntRange(16, 400, 8), "sram_per_core": Choice(8192, 65536),
                            "hardware.lanes": IntRange(1, 8), "clock_hz": search.FloatRange(1e8, 1e9, log=True)})
    problem = search.define(rec, space, ["energy", "error"], hardware="neuronflow")
    fc_choices = problem.distributions["scheme.fc"].choices
    assert set(fc_choices) == {"conventional", "dense", "temporal"}       # no line delta on fc
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(150):
        params = problem.suggest(study.ask())
        cfg = problem.config(params)
        schemes = cfg.plan.resolve(rec.layers)                        # raises on an invalid plan
        assert 2 <= cfg.bits <= 16 and cfg.bits in (4, 6, 8) and 0 <= cfg.tau <= 2
        assert list(cfg.plan.schemes) == [layer.name for layer in rec.layers]      # every layer named
        for layer, s in zip(rec.layers, schemes):
            choice = s.name
            assert choice in search.SCHEMES and ed.Scheme.parse(choice).kind == s.kind
            if isinstance(s, (ed.LineDelta, ed.TemporalDelta)):
                assert s.threshold in (1, 3, 5, 7) and s.tau == cfg.tau and s.loop == "closed"
            if layer.op == "fc":
                assert not isinstance(s, ed.LineDelta)
            seen.add(choice)
        hw = cfg.hardware
        assert 16 <= hw.n_cores <= 400 and hw.mesh_x * hw.mesh_y >= hw.n_cores      # mesh grown
        assert hw.sram_per_core in (8192, 65536) and 1 <= hw.lanes <= 8 and 1e8 <= hw.clock_hz <= 1e9
    assert seen == set(search.SCHEMES)


def test_layers_not_free_keep_the_fixed_scheme_and_shared_draws_one(rec):
    space = Space(layers=("c0", "c2"), schemes=search.LINE_ORDERINGS, threshold=IntRange(0, 3),
                  shared=True, fixed=ed.TemporalDelta(threshold=2))
    problem = search.define(rec, space, "sops")
    assert problem.free == ("c0", "c2") and set(problem.distributions) == {"scheme", "threshold"}
    cfg = problem.config({"scheme": "line_x_reverse", "threshold": 3})
    assert cfg.plan.scheme_for("c0") == ed.LineDelta(axis="x", direction="reverse", threshold=3)
    assert cfg.plan.scheme_for("c2") == cfg.plan.scheme_for("c0")
    assert cfg.plan.scheme_for("d1") == ed.TemporalDelta(threshold=2)
    assert cfg.plan.scheme_for("fc") == ed.TemporalDelta(threshold=2)
    # every layer (None) with only line orderings leaves the fc layer out
    problem = search.define(rec, Space(schemes=("line_y", "line_x")), "sops")
    assert problem.free == ("c0", "d1", "c2")


# ---- cached statistics equal count_events --------------------------------------------------

def test_plan_stats_equal_count_events_for_random_plans(rec):
    space = Space(schemes=("conventional", "dense", "temporal") + search.LINE_ORDERINGS,
                  threshold=IntRange(0, 5), bits=Choice(4, 8), tau=IntRange(0, 2))
    problem = search.define(rec, space, ["sops", "error"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=5))
    for _ in range(12):
        cfg = problem.config(problem.suggest(study.ask()))
        cached = problem.cache.stats(cfg.plan, cfg.bits)
        direct = ed.count_events(rec.quantize(bits=cfg.bits), cfg.plan)
        xr.testing.assert_identical(cached, direct)



def test_prefill_computes_every_row_the_space_asks_for_on_threads(rec):
    space = Space(schemes=("conventional", "dense", "temporal") + search.LINE_ORDERINGS,
                  threshold=IntRange(0, 3), bits=Choice(4, 8), tau=IntRange(0, 1))
    problem = search.define(rec, space, ["sops", "error"])
    problem.cache.threads = 2
    assert problem.prefill(n_trials=1) == 0 and len(problem.cache._rows) == 0   # more curves than 1 trial asks for
    n = problem.prefill(n_trials=50)
    # per bits: each layer's conventional curve (every tau at once), temporal and 4 line orderings
    # per tau (fc has no line delta)
    assert n == 2 * (4 * (1 + 2 * 5) - 4 * 2)
    rows = len(problem.cache._rows)
    assert problem.prefill(n_trials=50) == 0                     # nothing left to compute
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    for _ in range(12):
        cfg = problem.config(problem.suggest(study.ask()))
        if any(isinstance(s, ed.Dense) for s in cfg.plan.resolve(rec.layers)):
            continue                                             # dense rows are counted on demand
        xr.testing.assert_identical(problem.cache.stats(cfg.plan, cfg.bits),
                                    ed.count_events(rec.quantize(bits=cfg.bits), cfg.plan))
    assert len(problem.cache._rows) == rows                      # every row was there
    assert problem.prefill(n_trials=0) == 0                      # no trial left to run: nothing to prefill
    single = search.define(rec, space, ["sops", "error"])
    single.cache.threads = 1
    assert single.prefill(50) == 0 and len(single.cache._rows) == 0   # one thread: on demand as before


def test_run_prefills_for_the_trials_still_to_run(rec, tmp_path, monkeypatch):
    asked = []
    real = search.Problem.prefill
    monkeypatch.setattr(search.Problem, "prefill", lambda self, n: asked.append(n) or real(self, n))
    url = f"sqlite:///{tmp_path / 'p.db'}"
    for _ in range(2):     # a new study, then a rerun of the full study (which only resumes)
        search.run(rec, Space(schemes=("line_y", "temporal")), ["sops", "error"], n_trials=4, storage=url)
    assert asked == [4, 0]

def test_cache_is_keyed_on_content_not_identity(rec):
    other = synthetic(seed=1)
    assert search.content_hash(rec) == search.content_hash(synthetic())
    assert search.content_hash(rec) != search.content_hash(other)
    assert search.StatsCache(rec).content == search.content_hash(rec)      # hashed on its own thread
    plan = ed.Plan({"c0": ed.LineDelta(threshold=1)})
    a = search.StatsCache(rec).stats(plan)
    b = search.StatsCache(other).stats(plan)
    xr.testing.assert_identical(b, ed.count_events(other.quantize(), plan))
    assert not a["events"].equals(b["events"])


def test_cache_is_bounded_and_owned_by_the_problem(rec):
    cache = search.StatsCache(rec, max_rows=5, levels={"c0": ([0, 1, 2, 3], [])})
    for t in range(4):
        plan = ed.Plan({"c0": ed.LineDelta(threshold=t)}, default=ed.Conventional())
        xr.testing.assert_identical(cache.stats(plan), ed.count_events(rec.quantize(), plan))
    assert len(cache._rows) <= 5
    p1 = search.define(rec, Space(schemes=("line_y",)), "sops")
    p2 = search.define(rec, Space(schemes=("line_y",)), "sops")
    assert p1.cache is not p2.cache and p1.content == p2.content
    import pickle                       # spawned worker processes get the problem pickled, without cache entries
    q = pickle.loads(pickle.dumps(p1))
    assert q.cache.content == p1.content and len(q.cache._rows) == 0


# ---- trials store their breakdown; constraints hold on the front --------------------------------

def test_trials_store_cost_breakdown_and_constraints_hold_on_front(rec, tmp_path):
    hw = small_hardware()
    space = Space(schemes=("conventional", "line_y", "line_x", "temporal"), threshold=IntRange(0, 6),
                  hardware={"hardware.sram_per_core": IntRange(1024, 16384, 1024)})
    budget = ErrorBudget(0.02, layer="each")
    study = search.run(rec, space, ["energy", "latency"], hardware=hw, constraints=[Fits(), budget],
                       n_trials=40, storage=f"sqlite:///{tmp_path}/s.db", study_name="front", seed=1)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 40
    assert study.user_attrs["objectives"] == ["energy", "latency"]
    assert study.metric_names == ["energy", "latency"]
    assert study.user_attrs["baseline_conventional"]["sops"] > 0
    feasible = [t.user_attrs["feasible"] for t in trials]
    assert any(feasible) and not all(feasible)              # the constraints bite
    front = study.best_trials
    assert front
    for t in front:
        assert t.user_attrs["feasible"] and all(v <= 0 for v in t.constraints.values())
        # recompute this trial from scratch: the stored breakdown is the truth
        cfg = search.define(rec, space, ["energy", "latency"], hardware=hw,
                            constraints=[Fits(), budget]).config(t.params)
        stats = ed.count_events(rec.quantize(bits=8), cfg.plan)
        cost = ed.estimate(stats, cfg.hardware)
        assert bool(cost["fits"]) and t.user_attrs["totals"]["fits"] is True
        assert stats["rel_error"].mean("frame").max() <= 0.02
        assert t.values == pytest.approx([float(cost["total_energy_pj"]), float(cost["total_latency_s"])])
        layers = search.trial_layers(t)
        assert layers["layer"] == [layer.name for layer in rec.layers]
        assert layers["energy_pj"] == pytest.approx(cost["energy_pj"].values.tolist())
        assert layers["sops"] == pytest.approx(stats["sops"].mean("frame").values.tolist())
        assert t.user_attrs["config"]["hardware"]["sram_per_core"] == t.params["hardware.sram_per_core"]
        json.dumps(dict(t.user_attrs))
    table = search.trials_table(study, front=True)
    assert sorted(table["trial"]) == sorted(t.number for t in front) and table["feasible"].all()
    assert (table[["n_" + c for c in search.SCHEMES]].sum(axis=1) == len(rec.layers)).all()
    assert len(search.trials_table(study)) == 40
    # the report reads every trial's stored table back exactly (layers.csv)
    from else_dse import report
    import pandas as pd
    report.write((f"sqlite:///{tmp_path}/s.db", "front"), tmp_path / "r")
    csv = pd.read_csv(tmp_path / "r" / "layers.csv")
    for t in trials[:5]:
        want, got = search.trial_layers(t), csv[csv["trial"] == t.number]
        assert list(got["layer"]) == want["layer"] and list(got["choice"]) == want["choice"]
        for name in ("energy_pj", "sops", "busy_s", "threshold"):
            np.testing.assert_array_equal(got[name].to_numpy(), want[name])


def test_fixed_seed_gives_the_same_best_trials(rec, tmp_path):
    space = Space(schemes=("conventional", "line_y", "line_x", "temporal"), threshold=IntRange(0, 4))

    def best(name: str, seed: int, sampler: str):
        st = search.run(rec, space, ["sops", "error"] if sampler == "nsga2" else "sops",
                        constraints=[ErrorBudget(0.05)], n_trials=25, sampler=sampler,
                        storage=f"sqlite:///{tmp_path}/r.db", study_name=name, seed=seed)
        if sampler == "nsga2":
            return sorted((tuple(t.values), tuple(sorted(t.params.items()))) for t in st.best_trials)
        return (st.best_value, sorted(st.best_params.items()))

    for sampler in ("nsga2", "tpe"):
        a = best(f"a-{sampler}", 7, sampler)
        assert a == best(f"b-{sampler}", 7, sampler)
        assert a != best(f"c-{sampler}", 8, sampler)


def test_resume_extends_a_study_and_default_storage_is_sqlite(rec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = Space(schemes=("line_y", "temporal"), threshold=IntRange(0, 3))
    study = search.run(rec, space, "sops", n_trials=5, study_name="resume")
    assert (tmp_path / "resume.db").exists()
    first = [(t.number, t.params) for t in study.trials]
    study = search.run(rec, space, "sops", n_trials=12, study_name="resume")
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 12 and len(study.trials) == 12
    assert [(t.number, t.params) for t in study.trials[:5]] == first
    # a different search on the same study name is refused
    with pytest.raises(SearchError, match="different search"):
        search.run(rec, Space(schemes=("line_x",)), "sops", n_trials=13, study_name="resume")


def test_run_config_from_a_table(rec, tmp_path):
    rec.save(tmp_path / "rec.nc")
    cfg = {"recording": "rec.nc", "frames": 3, "hardware": "neuronflow", "objectives": ["sops", "state_memory"],
           "study": {"name": "cfg", "trials": 6, "seed": 2},
           "space": {"schemes": ["line_y", "temporal"], "threshold": [0, 2], "bits": {"choices": [6, 8]},
                     "hardware": {"n_cores": {"low": 64, "high": 196, "step": 4}}},
           "constraints": [{"type": "error", "limit": 0.1}]}
    study = search.run_config(cfg, base_dir=tmp_path)
    assert len(study.trials) == 6 and (tmp_path / "cfg.db").exists()
    assert study.user_attrs["recording"]["n_frames"] == 3
    assert {"bits", "hardware.n_cores"} <= set(study.trials[0].params)
    with pytest.raises(SearchError, match="unknown key"):
        search.run_config({**cfg, "spaec": {}}, base_dir=tmp_path)


# ---- bad configurations fail before any trial runs ------------------------------------------

BAD = [
    (dict(space=Space(layers=("c0", "nope"))), "unknown layer.*'nope'.*allowed are"),
    (dict(space=Space(threshold=IntRange(3, 1))), "empty range.*low <= high"),
    (dict(space=Space(threshold={"c0": IntRange(0, 2), "zz": 1})), "unknown layer.*'zz'"),
    (dict(objectives=["sops", "energyy"]), "unknown objective 'energyy'; allowed are"),
    (dict(space=Space(schemes=("line_z",))), "unknown scheme 'line_z'; allowed are"),
    (dict(space=Space(layers=("fc",), schemes=("line_y",))), "layer 'fc'.*do not apply to an fc layer"),
    (dict(space=Space(hardware={"hardware.n_coers": IntRange(1, 4)})), "unknown field 'hardware.n_coers'"),
    (dict(space=Space(hardware={"sram_per_core": IntRange(0, 4)})), "low must be >= 1"),
    (dict(space=Space(bits=IntRange(2, 20))), "bits must lie in 2..16"),
    (dict(space=Space(schemes=("conventional",), threshold=IntRange(0, 3))), "none of the schemes"),
    (dict(objectives=["energy"], hardware=None), "energy need hardware="),
    (dict(constraints=[ErrorBudget(0.1, layer="c9")]), "ErrorBudget: unknown layer 'c9'"),
    (dict(sampler="cmaes"), "unknown sampler 'cmaes'"),
    (dict(n_trials=0), "n_trials must be an int >= 1"),
    (dict(workers=2, storage="sqlite:///:memory:"), "in-memory"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m.split(".")[0][:28] for _, m in BAD])
def test_bad_configuration_errors_before_any_trial(rec, tmp_path, change, message):
    kwargs = dict(space=Space(), objectives=["sops"], hardware="neuronflow",
                  storage=f"sqlite:///{tmp_path}/bad.db", n_trials=3)
    kwargs.update(change)
    space, objectives = kwargs.pop("space"), kwargs.pop("objectives")
    with pytest.raises(SearchError, match=message):
        search.run(rec, space, objectives, study_name="bad", **kwargs)
    db = tmp_path / "bad.db"
    if db.exists():   # nothing was stored
        with sqlite3.connect(db) as con:
            assert con.execute("select count(*) from trials").fetchone()[0] == 0


def test_other_storages_journal_file_and_storage_object(rec, tmp_path):
    space = Space(schemes=("line_y", "temporal"), threshold=IntRange(0, 2))
    study = search.run(rec, space, "events", n_trials=4, storage=f"journal:{tmp_path}/j.log", study_name="j")
    assert (tmp_path / "j.log").exists() and len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 4
    study = search.run(rec, space, "events", n_trials=3, storage=optuna.storages.InMemoryStorage(),
                       study_name="m")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert all(t.values[0] == t.user_attrs["totals"]["events"] for t in study.trials)


def test_enqueued_reference_plans_run_first_and_are_checked(rec, tmp_path):
    space = Space(schemes=("conventional", "line_y"), threshold=IntRange(0, 3))
    problem = search.define(rec, space, ["sops", "error"])
    ref = {k: ("line_y" if k.startswith("scheme.") else 2) for k in problem.distributions}
    study = search.run(rec, space, ["sops", "error"], n_trials=6, storage=f"sqlite:///{tmp_path}/e.db",
                       study_name="e", enqueue=[ref, {"scheme.c0": "conventional"}])
    first, second = study.trials[0], study.trials[1]
    assert first.params == ref
    assert second.params["scheme.c0"] == "conventional" and set(second.params) == set(ref)
    stats = ed.count_events(rec.quantize(), problem.config(ref).plan)
    assert first.values[0] == pytest.approx(float(stats["sops"].mean("frame").sum()))
    with pytest.raises(SearchError, match="outside"):
        search.run(rec, space, ["sops", "error"], n_trials=6, storage=f"sqlite:///{tmp_path}/e2.db",
                   study_name="e", enqueue=[{"threshold.c0": 9}])
    with pytest.raises(SearchError, match="unknown parameter"):
        search.run(rec, space, ["sops", "error"], n_trials=6, storage=f"sqlite:///{tmp_path}/e2.db",
                   study_name="e", enqueue=[{"threshold.zz": 1}])
    assert not (tmp_path / "e2.db").exists()          # refused before any storage was opened


def test_journal_reads_continue_where_they_ended_across_writers(tmp_path):
    """Two backends on one file append in turn; every read from any position, continuing or not,
    returns exactly the logs from that position on, in commit order."""
    url = f"sqlite:///{tmp_path}/j.db"
    a, b = search.SQLJournalBackend(url), search.SQLJournalBackend(url)
    written = []
    for i in range(12):
        logs = [{"op": i, "k": j} for j in range(1 + i % 3)]
        (a if i % 2 else b).append_logs(logs)
        written += logs
        assert list(a.read_logs(len(written) - len(logs))) == logs          # continues where it ended
        assert list(b.read_logs(0)) == written
    for start in (0, 5, len(written) - 1, len(written), len(written) + 3):
        assert list(a.read_logs(start)) == written[start:]
    assert list(b.read_logs(3)) == written[3:] and list(b.read_logs(len(written))) == []


def test_sqlite_journal_urls_in_memory_and_refused_forms(rec, tmp_path):
    """The SQLite journal takes SQLAlchemy's URL forms (relative, absolute, in memory) and
    refuses a query string in one line, before any file is made."""
    from else_dse.search.storage import _sqlite_file
    assert _sqlite_file("sqlite:///rel/s.db") == "rel/s.db"
    assert _sqlite_file(f"sqlite:///{tmp_path}/a.db") == f"{tmp_path}/a.db"
    assert _sqlite_file("sqlite://") == _sqlite_file("sqlite:///:memory:") == ":memory:"
    with pytest.raises(SearchError, match="no query string"):
        search.SQLJournalBackend(f"sqlite:///{tmp_path}/q.db?timeout=5")
    assert not (tmp_path / "q.db").exists()
    with pytest.raises(SearchError, match="no such study database"):
        search.open_storage(f"sqlite+pysqlite:///{tmp_path}/r.db", create=False)
    assert not (tmp_path / "r.db").exists()
    store = search.open_storage("sqlite:///:memory:")
    study = search.run(rec, Space(schemes=("line_y", "temporal")), "sops", n_trials=3, storage=store,
                       study_name="m")
    assert len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 3


def test_a_study_written_by_plain_optuna_opens_with_its_own_storage(tmp_path):
    """A SQLite file with Optuna's RDB tables (no journal) opens as RDBStorage, untouched."""
    url = f"sqlite:///{tmp_path}/plain.db"
    plain = optuna.create_study(storage=url, study_name="p")
    plain.add_trial(optuna.trial.create_trial(params={"x": 1}, distributions={
        "x": optuna.distributions.IntDistribution(0, 3)}, value=2.0))
    mode = sqlite3.connect(f"{tmp_path}/plain.db").execute("PRAGMA journal_mode").fetchone()[0]
    store = search.open_storage(url, create=False)
    assert isinstance(store, optuna.storages.RDBStorage)
    assert optuna.load_study(study_name="p", storage=store).trials[0].params == {"x": 1}
    assert sqlite3.connect(f"{tmp_path}/plain.db").execute("PRAGMA journal_mode").fetchone()[0] == mode
    tables = {n for (n,) in sqlite3.connect(f"{tmp_path}/plain.db").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "else_dse_journal" not in tables


def test_journal_rows_refer_to_the_distributions_of_an_earlier_row(tmp_path):
    """A row whose distributions equal an earlier row's (from any writer) stores a reference;
    every reader, from the start or the middle, gets the logs as written."""
    url = f"sqlite:///{tmp_path}/d.db"
    a, b = search.SQLJournalBackend(url), search.SQLJournalBackend(url)
    one = {"x": '{"name": "IntDistribution", "attributes": {"low": 0, "high": 4}}'}
    two = {**one, "y": '{"name": "CategoricalDistribution", "attributes": {"choices": ["a", "b"]}}'}
    written = []
    for i, dists in enumerate([one, one, two, two, one, one]):
        log = {"op_code": 4, "study_id": 0, "distributions": dict(dists), "params": {"x": i}}
        writer, other = (a, b) if i % 2 else (b, a)
        writer.append_logs([log, {"op_code": 6, "trial_id": i}])
        written += [log, {"op_code": 6, "trial_id": i}]
        assert list(other.read_logs(0)) == written
    rows = [json.loads(t) for (t,) in sqlite3.connect(f"{tmp_path}/d.db").execute(
        "SELECT log FROM else_dse_journal WHERE log LIKE '%op_code\": 4%' ORDER BY id")]
    assert ["distributions" in r for r in rows] == [True, False, True, False, True, False]
    for start in (0, 3, 7, len(written)):
        assert list(search.SQLJournalBackend(url).read_logs(start)) == written[start:]
    con = sqlite3.connect(f"{tmp_path}/d.db")
    con.execute("DELETE FROM else_dse_journal WHERE id = 1")      # the row the second one refers to
    con.commit()
    with pytest.raises(SearchError, match=r"row 3 takes its distributions from row 1, which holds none"):
        list(search.SQLJournalBackend(url).read_logs(0))


def test_evaluation_from_estimate_values_equals_the_dataset(rec):
    space = Space(schemes=("conventional", "line_y", "line_x", "temporal"), threshold=IntRange(0, 2),
                  hardware={"hardware.n_cores": IntRange(8, 64)})
    problem = search.define(rec, space, ["energy", "error"], hardware=small_hardware(),
                            constraints=[Fits(), ErrorBudget(0.05, layer="each")])
    study = optuna.create_study(directions=["minimize"] * 2, sampler=optuna.samplers.RandomSampler(seed=2))
    for _ in range(6):
        cfg = problem.config(problem.suggest(study.ask()))
        stats = problem.cache.stats(cfg.plan, cfg.bits)
        ds = search.evaluation(problem.objectives, problem.constraints, cfg, stats, ed.estimate(stats, cfg.hardware))
        values = search.evaluation(problem.objectives, problem.constraints, cfg, stats,
                                   ed.cost.estimate_values(stats, cfg.hardware))
        assert json.dumps(values.user_attrs) == json.dumps(ds.user_attrs)           # keys in the same order too
        assert (values.values, values.constraints) == (ds.values, ds.constraints)
        arrays = problem.cache.arrays(cfg.plan, cfg.bits)       # the trial's path: no Dataset at all
        xr.testing.assert_identical(arrays.dataset(), stats)
        fast = search.evaluation(problem.objectives, problem.constraints, cfg, arrays,
                                 ed.cost.estimate_values(arrays, cfg.hardware))
        assert json.dumps(fast.user_attrs) == json.dumps(ds.user_attrs) and fast.values == ds.values
    with pytest.raises(ed.cost.CostError, match="lacks variable 'sops'"):
        ed.cost.estimate_values(dataclasses.replace(arrays, data={k: v for k, v in arrays.data.items()
                                                                  if k != "sops"}), cfg.hardware)
    xr.testing.assert_identical(ed.cost.estimate_values(stats, cfg.hardware).dataset(),
                                ed.estimate(stats, cfg.hardware))


def test_layer_columns_round_trip_exactly_and_read_plain_lists():
    cols = {"layer": ["a", "b", "c"], "scheme": np.array(["line_delta", "dense", "temporal_delta"]),
            "energy_pj": np.array([1 / 3, np.nan, -np.inf]), "f32": np.array([0.1, 2.5, 3], np.float32),
            "cores": np.array([1, 2**40, -3]), "fits": np.array([True, False, True]),
            "busy_s": np.array([5e-324, 1e308, -0.0])}
    assert all(type(x) is str for x in layer_columns.encode(cols)["scheme"])   # numpy text as plain str
    stored = json.loads(json.dumps(layer_columns.encode(cols)))       # through the storage's JSON
    assert layer_columns.is_encoded(stored) and isinstance(stored["energy_pj"], str)
    back = layer_columns.decode(stored)
    assert list(back) == list(cols) and back["layer"] == cols["layer"]
    assert back["scheme"] == ["line_delta", "dense", "temporal_delta"]
    for name in ("energy_pj", "f32", "cores", "fits", "busy_s"):
        assert back[name].dtype == cols[name].dtype
        assert back[name].tobytes() == cols[name].tobytes()               # bit for bit (NaN, -0.0)
    assert search.trial_layers({"layers": stored})["cores"].tolist() == [1, 2**40, -3]
    plain = {"layer": ["a"], "sops": [1.5]}                               # a table stored before
    assert layer_columns.decode(plain) == plain and not layer_columns.is_encoded(plain)
    with pytest.raises(ValueError, match="column 'sops': not '<dtype>:<base64>'"):
        layer_columns.decode({"encoding": layer_columns.ENCODING, "sops": "<f8:***"})
    with pytest.raises(ValueError, match="column 'layer': not '<dtype>:<base64>' .*not numeric"):
        layer_columns.decode({"encoding": layer_columns.ENCODING, "layer": "<U1:YQAAAA=="})
    with pytest.raises(KeyError, match="no per-layer table"):
        search.trial_layers({"totals": {}})


def test_two_worker_processes_on_an_sqlite_file(rec, tmp_path):
    space = Space(schemes=("line_y", "line_x", "temporal"), threshold=IntRange(0, 3))
    study = search.run(rec, space, ["sops", "error"], n_trials=14, storage=f"sqlite:///{tmp_path}/w.db",
                       study_name="w", workers=2, seed=3)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 14
    assert all(t.state == optuna.trial.TrialState.COMPLETE or "surplus" in t.user_attrs for t in trials)
    assert all(t.values == [t.user_attrs["totals"]["sops"], t.user_attrs["totals"]["error"]] for t in complete)


def test_a_set_stop_event_ends_the_worker_between_trials(rec):
    """The parent of N workers stops them with an event, never with a signal inside a driver."""
    import threading
    problem = search.define(rec, Space(schemes=("line_y", "temporal")), "sops")
    store = optuna.storages.InMemoryStorage()
    search.prepare(problem, store, "stop", ())
    stop, seen = threading.Event(), []
    with pytest.raises(KeyboardInterrupt):
        search.work(problem, store, "stop", 50, stop=stop, on_trial=lambda n: (seen.append(n), len(seen) == 3 and stop.set()))
    trials = store.get_all_trials(store.get_study_id_from_name("stop"))
    assert len(seen) == 3 and [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3


def test_the_loop_freezes_long_lived_objects_and_unfreezes_them(rec):
    """Full collections skip what existed before the loop and what each trial leaves (the study
    grows; gc.freeze after every trial) while the loop runs, and only then: the freeze is undone
    when the loop ends, normally or by an interrupt, and a process that froze objects itself
    keeps its own freeze."""
    import gc
    import threading
    problem = search.define(rec, Space(schemes=("line_y", "temporal")), "sops")
    store = optuna.storages.InMemoryStorage()
    search.prepare(problem, store, "gc", ())
    assert gc.get_freeze_count() == 0
    during: list[int] = []
    search.work(problem, store, "gc", 3, on_trial=lambda n: during.append(gc.get_freeze_count()))
    assert len(during) == 3 and min(during) > 0 and gc.get_freeze_count() == 0
    assert during[2] > during[0]                      # the trials kept are frozen too
    stop = threading.Event()
    with pytest.raises(KeyboardInterrupt):
        search.work(problem, store, "gc", 50, stop=stop, on_trial=lambda n: stop.set())
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        search.work(problem, store, "gc", 6, on_trial=lambda n: during.append(gc.get_freeze_count()))
        assert during[-1] <= frozen and gc.get_freeze_count() <= frozen   # none added (some freed)
    finally:
        gc.unfreeze()


def test_worker_sync_counts_every_trial_and_rereads_only_unfinished_ones(rec):
    """sync reads only trials after the leading finished ones, yet counts all complete trials,
    mirrors each once and returns the unfinished ones, also when a waiting trial finishes later."""
    from optuna.trial import TrialState
    from else_dse.search.worker import _Worker
    problem = search.define(rec, Space(schemes=("line_y", "temporal")), "sops")
    store = optuna.storages.InMemoryStorage()
    study = search.prepare(problem, store, "sync", ())
    search.work(problem, store, "sync", 2)
    study.enqueue_trial({})                                       # number 2, waiting
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))   # number 3
    worker = _Worker(problem, store, "sync", 10, optuna.samplers.RandomSampler(seed=0), None, None)
    n, unfinished = worker.sync()
    assert (n, [t.number for t in unfinished], worker.done) == (2, [2], 2)
    assert len(worker.mirror.trials) == 2
    tid = store.get_trial_id_from_study_id_trial_number(worker.study_id, 2)
    store.set_trial_state_values(tid, TrialState.RUNNING)
    store.set_trial_state_values(tid, TrialState.COMPLETE, [1.0])
    n, unfinished = worker.sync()
    assert (n, unfinished, worker.done, worker.done_complete) == (3, [], 4, 3)
    assert sorted(t.number for t in worker.mirror.trials) == [0, 1, 2]
    assert worker.sync()[0] == 3 and len(worker.mirror.trials) == 3


def test_studies_store_their_constraints_for_verify(rec, tmp_path):
    from else_dse.search.objectives import constraint_from_dict
    from else_dse.search.verify import study_constraints
    cons = [Fits(), ErrorBudget(0.0125, layer="each", metric="max_error"), search.TaskBudget("task_iou", 0.05)]
    assert [constraint_from_dict(c.to_dict()) for c in cons] == cons
    study = search.run(rec, Space(schemes=("line_y",)), "sops", hardware=small_hardware(),
                       constraints=cons[:2], n_trials=2, storage=optuna.storages.InMemoryStorage())
    assert study_constraints(study) == cons[:2]
    legacy = optuna.create_study()              # written before studies stored their constraints
    legacy.set_user_attr("search", {"constraints": ["fits"]})
    assert study_constraints(legacy) is None
    legacy.set_user_attr("constraints", [{"type": "budget"}])
    with pytest.raises(SearchError, match="bad stored constraints"):
        study_constraints(legacy)


def test_error_budgets_total_per_layer_and_each(rec):
    budgets = [ErrorBudget(0.01), ErrorBudget(0.01, layer="c0"), ErrorBudget(2, layer="each", metric="max_error")]
    problem = search.define(rec, Space(schemes=("line_y", "temporal"), threshold=IntRange(0, 5)),
                            ["sops", "error"], constraints=budgets)
    params = {k: ("line_y" if k.startswith("scheme.") else 0) for k in problem.distributions}
    params.update({"threshold.c0": 5, "threshold.d1": 1})
    ev = problem.evaluate(problem.config(params))
    stats = ed.count_events(rec.quantize(), problem.config(params).plan)
    rel = stats["rel_error"].mean("frame")
    expect = [float(rel.mean()) - 0.01, float(rel.sel(layer="c0")) - 0.01,
              float(stats["max_error"].max()) - 2]
    assert ev.constraints == pytest.approx(expect)
    assert ev.constraints[1] > 0 and ev.constraints[2] > 0          # theta=5 breaks both
    assert ev.user_attrs["feasible"] is False


def test_baseline_stores_whether_it_fits_and_its_layers(rec, tmp_path):
    # a chip of 2 cores cannot hold conventional processing of the network
    tiny = ed.load_template("neuronflow").replace(n_cores=2, mesh_x=2, mesh_y=1)
    space = Space(schemes=("conventional", "line_y"), threshold=0,
                  hardware={"hardware.n_cores": IntRange(2, 256, 2)})
    problem = search.define(rec, space, ["energy", "sops"], hardware=tiny, constraints=[Fits()])
    base = problem.baseline()
    assert base["fits"] is False and base["feasible"] is False and base["hardware"] == tiny.name
    assert "cores" in base["overflow"]
    # without the Fits constraint the same baseline is feasible (nothing forbids overflowing)
    free = search.define(rec, space, ["energy", "sops"], hardware=tiny)
    assert free.baseline()["feasible"] is True and free.baseline()["fits"] is False
    study = search.run(rec, space, ["energy", "sops"], hardware=tiny, constraints=[Fits()], n_trials=2,
                       storage=f"sqlite:///{tmp_path}/b.db", study_name="b", seed=0)
    stored = study.user_attrs["baseline_conventional"]
    assert stored["feasible"] is False
    layers = layer_columns.decode(study.user_attrs["baseline_conventional_layers"])
    assert layers["layer"] == [layer.name for layer in rec.layers]
    assert set(layers["scheme"]) == {"conventional"}
    assert sum(layers["sops"]) == pytest.approx(stored["sops"])


# ---- typed study config ---------------------------------------------------------------------

CONFIG_ERRORS = [
    ({"space": {"shared": "false"}}, r"space.shared: must be true or false, got 'false'"),
    ({"study": {"trials": 3.7}}, r"study.trials: must be an integer >= 1, got 3.7"),
    ({"study": {"trials": "many"}}, r"study.trials: must be an integer >= 1, got 'many'"),
    ({"study": {"workers": True}}, r"study.workers: must be an integer >= 1, got True"),
    ({"sampler": "cmaes"}, r"sampler: must be one of \['auto', 'tpe', 'nsga2', 'random'\]"),
    ({"objectives": ["sops", "energyy"]}, r"objectives\[1\]: must be one of"),
    ({"space": {"threshold": [0, "4"]}}, r"space.threshold\[1\]: must be a number, got '4'"),
    ({"space": {"loop": "half"}}, r"space.loop: must be one of \['closed', 'open'\]"),
    ({"constraints": [{"type": "error", "limit": "0.1"}]}, r"constraints\[0\].limit: must be a number"),
    ({"constraints": [{"type": "fit"}]}, r"constraints\[0\].type: must be one of \['fits', 'error', 'task'\]"),
    ({"study": {"nmae": "x"}}, r"study: unknown key\(s\) \['nmae'\]; allowed are"),
]


@pytest.mark.parametrize("change,message", CONFIG_ERRORS, ids=[m[:24] for _, m in CONFIG_ERRORS])
def test_config_types_are_strict_and_errors_name_the_key(change, message):
    cfg = {"recording": "rec.nc", "space": {"schemes": ["line_y"]}}
    for k, v in change.items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) and isinstance(cfg.get(k), dict) else v
    with pytest.raises(SearchError, match=message):
        search.StudyConfig.parse(cfg)


def test_config_resolves_defaults_and_overrides(tmp_path):
    cfg = search.StudyConfig.parse({"recording": "r.nc", "study": {"name": "q", "trials": 5},
                                    "space": {"schemes": ["line_y", "temporal_delta"], "shared": True}}, tmp_path)
    out = cfg.replace(trials=9, seed=3).to_dict()
    assert out["study"] == {"name": "q", "trials": 9, "seed": 3, "workers": 1,
                            "storage": f"sqlite:///{(tmp_path / 'q.db').resolve()}"}
    assert out["space"]["schemes"] == ["line_y", "temporal_delta"] and out["space"]["shared"] is True
    assert out["recording"] == str(tmp_path / "r.nc") and out["sampler"] == "auto"
