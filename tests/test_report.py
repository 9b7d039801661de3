"""Report writer: files, HTML references, CSV / NetCDF round trips, figures from
event/cost datasets and from a stored Optuna study (results read from user attrs)."""

from __future__ import annotations

import base64
import functools
import re
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import xarray as xr

import else_dse as ed
from else_dse import report

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---- small real inputs: a synthetic recording through the real pipeline ---------------------

def small_recording(frames: int = 3, seed: int = 0) -> ed.Recording:
    """Four layers (conv with stride and asymmetric padding, depthwise, pointwise, fc), smooth data."""
    rng = np.random.default_rng(seed)
    layers = [
        ed.Layer("conv0", "img", "conv", 3, 8, kernel=3, stride=2, padding=(0, 1, 0, 1), input_shape=(3, 16, 16)),
        ed.Layer("dw1", "a1", "depthwise", 8, 8, kernel=3, padding=1, groups=8, input_shape=(8, 8, 8)),
        ed.Layer("pw2", "a2", "conv", 8, 16, input_shape=(8, 8, 8)),
        ed.Layer("fc3", "a3", "fc", 16 * 4 * 4, 10, input_shape=(16, 4, 4)),
    ]

    def smooth(shape: tuple[int, ...]) -> np.ndarray:
        base = rng.normal(size=shape[1:]).cumsum(axis=1)
        x = np.stack([base + 0.1 * f + rng.normal(scale=0.05, size=base.shape) for f in range(shape[0])])
        return np.maximum(x, 0).astype(np.float32)

    arrays = {"img": smooth((frames, 3, 16, 16)), "a1": smooth((frames, 8, 8, 8)),
              "a2": smooth((frames, 8, 8, 8)), "a3": smooth((frames, 16, 4, 4))}
    return ed.Recording.from_arrays(layers, arrays, attrs={"network": "synthetic pose landmark"})


@functools.lru_cache(maxsize=1)
def _scheme_results() -> tuple[tuple[str, tuple[xr.Dataset, xr.Dataset]], ...]:
    q = small_recording().quantize(8)
    hw = ed.load_template("neuronflow")
    schemes = {
        "conventional": ed.Conventional(),
        "line delta y θ=1": ed.Plan({"fc3": ed.Conventional()}, default=ed.LineDelta(axis="y", threshold=1)),
        "line delta y θ=3": ed.Plan({"fc3": ed.Conventional()}, default=ed.LineDelta(axis="y", threshold=3)),
        "temporal θ=1": ed.TemporalDelta(threshold=1),
    }
    out = {}
    for name, s in schemes.items():
        stats = ed.count_events(q, s)
        out[name] = (stats, ed.estimate(stats, hw))
    return tuple(out.items())


def scheme_results() -> dict[str, tuple[xr.Dataset, xr.Dataset]]:
    """Real count_events + estimate results of four schemes on the small recording (computed once)."""
    return {name: (stats.copy(), cost.copy()) for name, (stats, cost) in _scheme_results()}


LAYER_ATTR_VARS = ("events", "sops", "energy_pj", "energy_synaptic_pj", "energy_static_pj",
                   "latency_s", "state_persistent_bytes", "state_frame_bytes")


def small_study(storage: str | None = None, n_trials: int = 12) -> optuna.Study:
    """A two-objective study whose trials store their cost breakdown in user attrs,
    as the search stores it (per-layer table + totals), over real counts and costs."""
    q = small_recording().quantize(8)
    study = optuna.create_study(directions=["minimize", "minimize"], storage=storage,
                                study_name="small", sampler=optuna.samplers.RandomSampler(seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["sops", "rel_error"])
    base = ed.estimate(ed.count_events(q, ed.Conventional()), ed.load_template("neuronflow"))
    study.set_user_attr("baseline_conventional", {"total_sops": float(base["total_sops"]),
                                                  "total_energy_pj": float(base["total_energy_pj"])})

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        th = trial.suggest_int("threshold", 0, 4)
        cores = trial.suggest_int("hardware.n_cores", 4, 64)
        plan = ed.Plan({"fc3": ed.Conventional()}, default=ed.LineDelta(axis="y", threshold=th))
        stats = ed.count_events(q, plan)
        cost = ed.estimate(stats, ed.load_template("neuronflow").replace(n_cores=cores))
        trial.set_user_attr("layers", [
            {"layer": str(name), **{v: float(cost[v].sel(layer=name)) for v in LAYER_ATTR_VARS}}
            for name in cost.layer.values])
        trial.set_user_attr("totals", {"total_energy_pj": float(cost["total_energy_pj"]),
                                       "fits": bool(cost["fits"])})
        return float(cost["total_sops"]), float(stats["rel_error"].mean())

    study.optimize(objective, n_trials=n_trials)
    return study


def png_files_in_html(html: str) -> set[str]:
    return set(re.findall(r'data-file="([^"]+\.png)"', html))


# ---- tests -----------------------------------------------------------------------------------

def test_report_from_datasets_writes_every_file(tmp_path: Path) -> None:
    results = scheme_results()
    path = report.write(results, tmp_path / "r")
    html = path.read_text()
    pngs = sorted(p.name for p in (tmp_path / "r").glob("*.png"))
    assert {"pareto.png", "layers.png", "energy.png", "state.png", "thresholds.png"} <= set(pngs)
    # every figure file is referenced by the page, and embedded (offline: no external resources)
    assert png_files_in_html(html) == set(pngs)
    assert html.count("data:image/png;base64,") == len(pngs)
    assert not re.search(r'(src|href)="https?://', html)
    for b64 in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html):
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    # per-layer CSV round-trips and holds every scheme x layer
    layers = pd.read_csv(tmp_path / "r" / "layers.csv")
    res = report.collect(results)
    # (CSV cannot tell an empty string from a missing value: the axis of non-line schemes is "")
    pd.testing.assert_frame_equal(layers, res.layers.replace("", np.nan).reset_index(drop=True),
                                  check_dtype=False)
    assert len(layers) == 4 * 4 and set(layers["config"]) == set(results)
    # events and cost of one scheme merged into one row set: sops from count_events, energy from estimate
    conv = layers[layers["config"] == "conventional"].set_index("layer")
    stats, cost = results["conventional"]
    np.testing.assert_allclose(conv["sops"], stats["sops"].mean("frame").values)
    np.testing.assert_allclose(conv["energy_pj"], cost["energy_pj"].values)
    # NetCDF of the per-layer table and of every dataset
    with xr.open_dataset(tmp_path / "r" / "layers.nc", engine="h5netcdf") as ds:
        np.testing.assert_allclose(ds["sops"].values, layers["sops"].values)
    assert len(list((tmp_path / "r").glob("data_*.nc"))) == 8
    # the conventional baseline is known to the report
    assert res.baseline["total_sops"] == pytest.approx(float(stats["sops"].mean("frame").sum()))


def test_report_from_study_and_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = small_study(url)
    path = report.write((url, "small"), tmp_path / "r")
    html = path.read_text()
    pngs = {p.name for p in (tmp_path / "r").glob("*.png")}
    assert {"pareto.png", "layers.png", "energy.png", "state.png", "thresholds.png", "hardware.png"} <= pngs
    assert png_files_in_html(html) == pngs
    trials = pd.read_csv(tmp_path / "r" / "trials.csv")
    assert list(trials["trial"]) == [t.number for t in study.trials]
    np.testing.assert_allclose(trials["sops"], [t.values[0] for t in study.trials])
    np.testing.assert_allclose(trials["param_threshold"], [t.params["threshold"] for t in study.trials])
    np.testing.assert_allclose(trials["attr_totals.total_energy_pj"],
                               [t.user_attrs["totals"]["total_energy_pj"] for t in study.trials])
    layers = pd.read_csv(tmp_path / "r" / "layers.csv")
    assert len(layers) == 4 * len(study.trials)
    t0 = study.trials[0]
    got = layers[layers["trial"] == 0].set_index("layer")["energy_pj"]
    np.testing.assert_allclose(got.values, [r["energy_pj"] for r in t0.user_attrs["layers"]])
    with xr.open_dataset(tmp_path / "r" / "trials.nc", engine="h5netcdf") as ds:
        np.testing.assert_allclose(ds["sops"].values, trials["sops"].values)
    # reports read what trials stored: the baseline comes from the study's user attrs
    res = report.collect(study)
    assert res.baseline["total_sops"] == study.user_attrs["baseline_conventional"]["total_sops"]
    # the summary lists each distinct Pareto-optimal result once
    vals = np.array([t.values for t in study.trials])
    front = {tuple(v) for v, m in zip(vals, report.pareto_mask(vals, ("minimize", "minimize"))) if m}
    summary = report._summary_table(res)
    assert len(summary) == len(front)
    assert {(r.sops, r.rel_error) for r in summary.itertuples()} == front


def test_pareto_mask_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    v = rng.integers(0, 6, size=(40, 2)).astype(float)
    mask = report.pareto_mask(v, ("minimize", "maximize"))
    for i in range(len(v)):
        dominated = any((v[j, 0] <= v[i, 0] and v[j, 1] >= v[i, 1]) and (v[j] != v[i]).any()
                        for j in range(len(v)))
        assert mask[i] == (not dominated)


def test_report_errors(tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match="cannot report on a int"):
        report.write(3, tmp_path)
    with pytest.raises(report.ReportError, match="no such results file"):
        report.write(tmp_path / "missing.nc", tmp_path)
    with pytest.raises(report.ReportError, match="no study 'nope'"):
        report.write((f"sqlite:///{tmp_path / 'x.db'}", "nope"), tmp_path)
    assert not (tmp_path / "x.db").exists()            # a missing database is not created
    empty = optuna.create_study()
    with pytest.raises(report.ReportError, match="has no trials"):
        report.write(empty, tmp_path)


def test_report_of_threshold_curves(tmp_path: Path) -> None:
    q = small_recording().quantize(8)
    curves = {"conv0 line y": ed.event_curve(q, "conv0", ed.LineDelta(axis="y"), range(0, 6)),
              "conv0 temporal": ed.event_curve(q, "conv0", ed.TemporalDelta(), range(0, 6))}
    html = report.write(curves, tmp_path / "r").read_text()
    assert png_files_in_html(html) == {"thresholds.png"}
    table = pd.read_csv(tmp_path / "r" / "curves.csv")
    got = table[table["config"] == "conv0 temporal"].set_index("threshold")["sops"]
    np.testing.assert_allclose(got.values, curves["conv0 temporal"]["sops"].mean("frame").values)
    assert set(table["layer"]) == {"conv0"}


@pytest.mark.parametrize("objectives", [("energy",), ("energy", "latency", "state_memory")])
def test_report_one_and_three_objectives(tmp_path: Path, objectives: tuple[str, ...]) -> None:
    """Single-objective (best so far) and three-objective (pairwise fronts) studies, infeasible trials grey."""
    study = optuna.create_study(directions=["minimize"] * len(objectives),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.set_user_attr("objectives", list(objectives))
    study.set_user_attr("baseline_conventional", {"energy": 5e6, "latency": 2e-3, "state_memory": 4096.0})

    def objective(trial: optuna.Trial) -> tuple[float, ...]:
        cores = trial.suggest_int("hardware.n_cores", 8, 64)
        if hasattr(trial, "set_constraint"):  # optuna >= 5
            trial.set_constraint("fits", 12.5 - cores)
        else:
            trial.set_user_attr("fits", cores > 12)
        values = (1e6 * (1 + 64 / cores), 1e-3 * cores / 8, 1024.0 * trial.suggest_int("threshold", 0, 4))
        return values[:len(objectives)]

    study.optimize(objective, n_trials=15)
    res = report.collect(study)
    assert res.objectives == objectives and not res.trials["feasible"].all()
    html = report.write(study, tmp_path / "r").read_text()
    assert "pareto.png" in png_files_in_html(html)
    if len(objectives) == 3:
        assert report._pareto_pair(res) == [("latency", "energy"), ("state_memory", "energy"),
                                            ("latency", "state_memory")]
        assert "hardware.png" in png_files_in_html(html)


# ---- the conventional reference: feasible, labelled; per-scheme layer lines; titles with their error

def searched_study(tmp_path: Path, schemes: tuple[str, ...], objectives: tuple[str, ...],
                   enqueue: tuple[dict, ...] = (), constraints: bool = True) -> optuna.Study:
    """A study of else_dse.search on the small recording (what the search stores, for real)."""
    from else_dse import search

    tmp_path.mkdir(parents=True, exist_ok=True)
    tiny = ed.load_template("neuronflow").replace(name="tiny", n_cores=2, mesh_x=2, mesh_y=1)
    space = search.Space(schemes=schemes, threshold=search.IntRange(0, 3), shared=True,
                         hardware={"hardware.n_cores": search.IntRange(2, 256, 2)})
    return search.run(small_recording(), space, list(objectives), hardware=tiny,
                      constraints=[search.Fits()] if constraints else [], n_trials=12,
                      storage=f"sqlite:///{tmp_path}/s.db", study_name="s", seed=0, enqueue=list(enqueue))


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def _legend(fig) -> list[str]:
    texts = [t.get_text() for leg in fig.legends for t in leg.get_texts()]
    return texts + [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]


def test_infeasible_baseline_is_replaced_by_the_best_feasible_conventional_trial(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    conv = {"scheme": "conventional", "threshold": 0, "hardware.n_cores": 256}
    study = searched_study(tmp_path, ("conventional", "line_y"), ("energy", "latency"), enqueue=(conv,))
    stored = study.user_attrs["baseline_conventional"]
    assert stored["fits"] is False and stored["feasible"] is False     # 2 cores cannot hold it
    trial0 = study.trials[0]
    assert trial0.user_attrs["feasible"] and trial0.params["scheme"] == "conventional"
    res = report.collect(study)
    assert res.reference == "conventional (trial 0)" and not res.baseline_unfit
    # the reference is the feasible trial's totals, not the template's infeasible estimate
    assert res.baseline["total_energy_pj"] == pytest.approx(trial0.user_attrs["totals"]["total_energy_pj"])
    assert res.baseline["energy"] == pytest.approx(trial0.values[0])
    assert any("does not meet the study's constraints" in n and "trial 0" in n for n in res.notes)
    fig = report.fig_pareto(res)
    feasible = [t for t in study.trials if t.user_attrs.get("feasible")]
    best = min(t.values[0] for t in feasible)      # energy (objective 0) is on y, latency on x
    title = _titles(fig)[0].replace(":\n", ": ")
    assert f"best {trial0.values[0] / best:.2f}x lower energy at latency" in title
    assert "(vs conventional (trial 0))" in title
    assert "conventional (trial 0)" in _legend(fig)
    plt.close(fig)
    table = report._summary_table(res)
    reduction = [c for c in table if c.endswith("_reduction_vs_conventional")]
    assert reduction and table[reduction[0]].max() == pytest.approx(trial0.values[0] / min(
        t.values[0] for t in feasible))


def test_no_feasible_conventional_trial_means_no_reduction(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    study = searched_study(tmp_path, ("line_y", "line_x"), ("energy", "latency"))
    res = report.collect(study)
    assert res.baseline_unfit and "970" not in res.baseline_unfit and "cores" in res.baseline_unfit
    assert not any(k for k in res.baseline if not k.startswith("temporal:"))
    fig = report.fig_pareto(res)
    assert _titles(fig)[0].replace(":\n", ": ").endswith(": conventional baseline does not fit")
    assert "conventional baseline" not in _legend(fig)
    plt.close(fig)
    assert not any(c.endswith("_reduction_vs_conventional") for c in report._summary_table(res))
    # without the Fits constraint the same baseline is a valid reference
    study = searched_study(tmp_path / "free", ("line_y", "line_x"), ("energy", "latency"), constraints=False)
    res = report.collect(study)
    assert res.reference == "conventional baseline" and res.baseline["total_sops"] > 0


def test_layers_figure_labels_scheme_and_threshold_and_draws_conventional(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    lossless = {"scheme": "line_y", "threshold": 0, "hardware.n_cores": 256}
    study = searched_study(tmp_path, ("conventional", "line_y", "line_x"), ("sops", "error"),
                           enqueue=(lossless,), constraints=False)
    res = report.collect(study)
    # the study stores the conventional baseline per layer
    assert list(res.baseline_layers["layer"]) == [layer.name for layer in small_recording().layers]
    assert res.baseline_layers["sops"].sum() == pytest.approx(res.baseline["sops"])
    fig = report.fig_layers(res)
    legend = _legend(fig)
    assert "conventional (zero skipping)" in legend and "dense" in legend
    lines = [t for t in legend if "(trial " in t]
    assert lines and all(re.fullmatch(r"line_[yx] θ=\d \(trial \d+\)", t) for t in lines), lines
    # each scheme of the study has a line (conventional as the black reference)
    assert {t.split()[0] for t in lines} == {"line_y", "line_x"}
    # the black line is the stored conventional per-layer SOPs
    sops_ax = fig.axes[1]
    black = [ln for ln in sops_ax.get_lines() if ln.get_label() == "conventional (zero skipping)"][0]
    np.testing.assert_allclose(black.get_ydata(), res.baseline_layers["sops"].to_numpy(float) * 1e-6)
    plt.close(fig)
    # the Pareto title says at what error the best reduction comes, and the lossless one
    fig = report.fig_pareto(res)
    title = _titles(fig)[0].replace(":\n", ": ")
    front = [t for t in study.best_trials]
    best = min(front, key=lambda t: t.values[0])
    base = res.baseline["sops"]
    assert f"best {base / best.values[0]:.2f}x fewer SOPs at rel. error {best.values[1]:.2g}" in title
    lossless_sops = min(t.values[0] for t in study.trials if t.values and t.values[1] == 0)
    assert f"; lossless {base / lossless_sops:.2f}x" in title
    plt.close(fig)


def test_scheme_label_of_uniform_and_mixed_plans() -> None:
    rows = pd.DataFrame({"layer": ["a", "b", "c"], "scheme": ["line_delta", "line_delta", "conventional"],
                         "axis": ["x", "x", ""], "direction": ["reverse", "reverse", ""],
                         "threshold": [2, 2, 0], "tau": [0, 0, 0]})
    assert report.scheme_label(rows.iloc[:2]) == "line_x_reverse θ=2"
    assert report.scheme_label(rows.iloc[2:]) == "conventional"
    assert report.scheme_label(rows) == "mixed: 2 line_x_reverse, 1 conventional; θ=2"
    assert report.scheme_label(rows.assign(threshold=[1, 3, 0], tau=1)) == \
        "mixed: 2 line_x_reverse, 1 conventional; θ=1–3 τ=1"


def test_without_a_terminal_search_and_report_print_a_line_every_tenth(tmp_path: Path, capsys) -> None:
    """Logs are never silent: stderr is no terminal here, so search and report print progress lines."""
    from else_dse import search

    space = search.Space(schemes=("conventional", "line_y"), threshold=search.IntRange(0, 3), shared=True)
    study = search.run(small_recording(), space, ["sops", "error"], n_trials=10, progress_bar=True,
                       storage=f"sqlite:///{tmp_path}/p.db", study_name="p", seed=0)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("study p: ")]
    assert lines[0] == "study p: 10% (1/10 trial)" and lines[-1] == "study p: 100% (10/10 trial)"
    assert len(lines) == 10
    report.write(study, tmp_path / "r")
    err = capsys.readouterr().err
    steps = [ln for ln in err.splitlines() if ln.startswith("report: ")]
    assert steps[-1].startswith("report: 100% (") and len(steps) >= 5
    report.write(study, tmp_path / "r2", progress=False)
    assert "report:" not in capsys.readouterr().err


def test_read_first_says_fit_schedule_reference_and_reductions(tmp_path: Path) -> None:
    conv = {"scheme": "conventional", "threshold": 0, "hardware.n_cores": 256}
    study = searched_study(tmp_path, ("conventional", "line_y"), ("sops", "error"), enqueue=(conv,))
    res = report.collect(study)
    first = report.read_first(res)
    n_fit = sum(bool(t.user_attrs["totals"]["fits"]) for t in study.trials)
    assert re.match(rf"{n_fit} of 12 complete trials fit the hardware \(tiny, \d+-256 cores searched; they use", first[0])
    assert first[1].startswith("Schedule: streamed (consecutive layers on different cores overlap line by line)")
    assert first[1].endswith("Hops: pipelined (a core receives one event per hop time, a route's length adds once).")
    assert first[2].startswith("Reference: conventional (trial 0) (") and "µJ" in first[2] and "ms" in first[2]
    lossless = [t for t in first if t.startswith("Lossless (error 0): ")]
    assert lossless and "x fewer SOPs" in lossless[0] and "µJ per frame" in lossless[0]
    html = report.write(study, tmp_path / "r", progress=False).read_text()
    top = html[:html.index("<h2>summary</h2>")]
    assert "read this first" in top and "feasible" not in top.replace("infeasible", "")
    assert "total_energy_pj =" not in html


def test_read_first_when_nothing_fits_says_what_overflows(tmp_path: Path) -> None:
    from else_dse import search

    tiny = ed.load_template("neuronflow").replace(name="tiny", n_cores=1, mesh_x=1, mesh_y=1, sram_per_core=512)
    space = search.Space(schemes=("conventional", "line_y"), threshold=search.IntRange(0, 2), shared=True)
    study = search.run(small_recording(), space, ["energy", "error"], hardware=tiny, constraints=[search.Fits()],
                       n_trials=4, storage=f"sqlite:///{tmp_path}/n.db", study_name="n", seed=0)
    first = report.read_first(report.collect(study))
    assert first[0].startswith("NO trial fits the hardware (tiny, ") and "overflows: " in first[0]
    assert "over " in first[0] and " by " in first[0]
    assert re.search(r"It is costed on \d+ copies of the chip in a near-square grid \(overflow_layout grid\)\.$",
                     first[0]), first[0]
    assert any(t.startswith("No reduction is shown") for t in first)


def test_read_first_of_cost_datasets_says_fit_and_schedule(tmp_path: Path) -> None:
    res = report.collect(scheme_results())
    assert report.read_first(res) == [
        "4 of 4 configurations fit the hardware.",
        "Schedule: streamed, the same for every scheme; static energy is charged over each "
        "configuration's own latency. Hops: pipelined (a core receives one event per hop time, "
        "a route's length adds once)."]
    html = report.write(scheme_results(), tmp_path / "r", progress=False).read_text()
    assert "read this first" in html and "Schedule: streamed" in html
    names = {p.name for p in (tmp_path / "r").glob("data_*.nc")}
    assert all("=" not in n and "θ" not in n for n in names), names
