"""The ``else-dse`` command line end to end: every subcommand, --help, and each
error path with its exit status (2 usage error, 1 runtime failure) and a one-line message."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import else_dse as ed
from else_dse import cli, search

from shipped import shipped_model
from test_report import small_recording

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "blazeface_carphone.nc"   # the shipped detection recording
FACE_MODEL = shipped_model("face_detection_short_range.tflite")


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped detection recording cut to 3 frames, or a small synthetic one until it exists."""
    path = tmp_path_factory.mktemp("rec") / "rec.nc"
    if SHIPPED.exists():
        ed.open_recording(SHIPPED).select_frames(slice(0, 3)).save(path)
    else:
        small_recording().save(path)
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_help_of_every_command_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ([], ["record"], ["stats"], ["cost"], ["search"], ["report"]):
        status, out, _ = run(cmd + ["--help"], capsys)
        assert status == 0
        assert "example" in out and "else-dse" in out


def test_parse_scheme_forms() -> None:
    assert cli.parse_scheme("line_delta:y:1") == ed.LineDelta(axis="y", threshold=1)
    assert cli.parse_scheme("else:axis=x,threshold=2,loop=open") == ed.LineDelta(axis="x", threshold=2,
                                                                                 loop="open")
    assert cli.parse_scheme("line_delta", axis="x", threshold=3) == ed.LineDelta(axis="x", threshold=3)
    assert cli.parse_scheme("temporal:1:tau=2") == ed.TemporalDelta(threshold=1, tau=2)
    assert cli.parse_scheme("conventional") == ed.Conventional()
    plan = cli.parse_plan(["c0=line_delta:x", "temporal:1"])
    assert plan == ed.Plan({"c0": ed.LineDelta(axis="x")}, default=ed.TemporalDelta(threshold=1))
    for bad in ("frobnicate", "line_delta:z", "temporal:axis=y", "line_delta:threshold=-1", "dense:3"):
        with pytest.raises(cli.UsageError):
            cli.parse_scheme(bad)


def test_stats_cost_report_end_to_end(recording: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    rec = ed.open_recording(recording)
    st = tmp_path / "stats.nc"
    status, out, err = run(["stats", recording, "--scheme", "line_delta", "--axis", "y", "--threshold", "1",
                            "-o", st], capsys)
    assert status == 0, err
    assert all(layer.name in out for layer in rec.layers) and "sops_reduction" in out
    stats = xr.open_dataset(st, engine="h5netcdf").load()
    assert list(stats["layer"].values) == [layer.name for layer in rec.layers]
    expected = ed.count_events(rec.quantize(8), cli._fc_fallback(ed.LineDelta(axis="y", threshold=1),
                                                                 rec.layers))
    np.testing.assert_array_equal(stats["sops"].values, expected["sops"].values)
    # the compact string gives the same statistics; CSV is the per-layer table
    status, _, err = run(["stats", recording, "--scheme", "line_delta:y:1", "-q", "-o", tmp_path / "s.csv"], capsys)
    assert status == 0, err
    import pandas as pd

    table = pd.read_csv(tmp_path / "s.csv", index_col="layer")
    np.testing.assert_allclose(table["sops"].values, expected["sops"].values.mean(axis=1))
    # cost from the statistics file, and from recording + scheme
    status, out, err = run(["cost", st, "--template", "neuronflow", "-o", tmp_path / "cost.nc"], capsys)
    assert status == 0, err
    assert "energy_pj" in out and "total_energy_pj" in out
    cost = xr.open_dataset(tmp_path / "cost.nc", engine="h5netcdf").load()
    ref = ed.estimate(stats, ed.load_template("neuronflow"))
    np.testing.assert_allclose(cost["total_energy_pj"].values, ref["total_energy_pj"].values)
    status, _, err = run(["cost", recording, "--scheme", "temporal:1", "-t", "loihi2", "-q"], capsys)
    assert status == 0, err
    # report from the result files: one configuration (stats + cost of the same scheme)
    status, out, err = run(["report", st, tmp_path / "cost.nc", "-o", tmp_path / "rep"], capsys)
    assert status == 0, err
    assert (tmp_path / "rep" / "report.html").exists() and (tmp_path / "rep" / "energy.png").exists()
    configs = pd.read_csv(tmp_path / "rep" / "configs.csv")
    assert len(configs) == 1 and configs["total_energy_pj"].iloc[0] == pytest.approx(
        float(ref["total_energy_pj"]))


def test_cost_says_which_layer_overflows_which_limit(recording: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    tiny = ed.load_template("neuronflow").replace(name="tiny", n_cores=2, mesh_x=2, mesh_y=1,
                                                  sram_per_core=256)
    tiny_toml = tmp_path / "tiny.toml"
    tiny.to_toml(tiny_toml)
    stats = ed.count_events(ed.open_recording(recording).quantize(8), ed.Conventional())
    expected = ed.estimate(stats, tiny)
    assert not bool(expected["fits"])
    status, out, err = run(["cost", recording, "--template", tiny_toml], capsys)
    assert status == 0, err
    assert "does not fit on tiny:" in out
    detail = [t.strip() for t in expected.attrs["overflow"].split(";")]
    assert detail and all(t in out for t in detail)
    assert any("n_cores=2" in t for t in detail)                 # the core limit, and by how much
    # quiet: the table is not printed, the overflow still is (stderr)
    status, out, err = run(["cost", recording, "--template", tiny_toml, "-q"], capsys)
    assert status == 0 and out == "" and "does not fit on tiny:" in err
    # a mapping that fits says nothing of the kind
    big = ed.load_template("neuronflow").replace(name="big", n_cores=1 << 16, mesh_x=256, mesh_y=256)
    big.to_toml(tmp_path / "big.toml")
    status, out, err = run(["cost", recording, "--template", tmp_path / "big.toml"], capsys)
    assert status == 0 and "does not fit" not in out + err


def test_config_scheme_names_work_on_the_command_line(recording: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # the names of a study config ([space] schemes) mean the same on the command line
    from else_dse import search

    for name in search.SCHEMES:
        expected = ed.Scheme.parse(name).adjusted(threshold=2)
        text = name if name in ("conventional", "dense") else f"{name}:2"
        assert cli.parse_scheme(text) == expected
    assert cli.parse_scheme("line_x", threshold=3) == ed.LineDelta(axis="x", threshold=3)
    assert cli.parse_plan(["c0=line_x_reverse", "line_y:1"]) == ed.Plan(
        {"c0": ed.LineDelta(axis="x", direction="reverse")}, default=ed.LineDelta(axis="y", threshold=1))
    for bad in ("line_x:axis=y", "line_y_reverse:forward"):
        with pytest.raises(cli.UsageError, match="means"):
            cli.parse_scheme(bad)
    status, _, err = run(["stats", recording, "--scheme", "line_x:1", "--axis", "y"], capsys)
    assert status == 2 and "contradicts" in err and len(err.strip().splitlines()) == 1
    status, out, err = run(["stats", recording, "--scheme", "line_x:1", "-q"], capsys)
    assert status == 0, err


def test_help_examples_name_files_the_commands_write(capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib

    cfg = tomllib.loads((ROOT / "studies" / "quick.toml").read_text())
    status, out, _ = run(["report", "--help"], capsys)
    assert status == 0
    # `else-dse search studies/quick.toml --report reports/quick` stores the study as <report>/<name>.db
    assert f"reports/quick/{cfg['study']['name']}.db" in out


def write_config(path: Path, recording: Path, trials: int = 6, extra: str = "") -> Path:
    path.write_text(f"""
recording = "{recording}"
frames = 2
hardware = "neuronflow"
objectives = ["sops", "error"]
{extra}
[study]
name = "t"
trials = {trials}
seed = 0

[space]
schemes = ["conventional", "line_y", "temporal"]
threshold = [0, 3]

[[constraints]]
type = "fits"
""")
    return path


def test_search_then_report_from_storage(recording: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path / "t.toml", recording)
    status, _, err = run(["search", cfg, "--trials", "5", "--no-progress"], capsys)
    assert status == 0, err
    import optuna

    # without storage in the config or on the command line: <name>.db next to the config
    study = optuna.load_study(study_name="t", storage=search.open_storage(f"sqlite:///{tmp_path / 't.db'}"))
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 5
    # rerun with more trials and a report: resumes the stored study (storage given explicitly)
    status, _, err = run(["search", cfg, "--trials", "6", "--no-progress", "--storage",
                          f"sqlite:///{tmp_path / 't.db'}", "--report", tmp_path / "rep"], capsys)
    assert status == 0, err
    assert (tmp_path / "rep" / "pareto.png").exists()
    trials = (tmp_path / "rep" / "trials.csv").read_text().splitlines()
    assert len(trials) == 1 + 6
    # the study again, from its storage file, through `report` (data only: no figures needed here)
    from else_dse import report

    res = report.collect(("sqlite:///" + str(tmp_path / "t.db"), "t"))
    assert sorted(res.trials["trial"]) == list(range(6))
    status, _, err = run(["report", tmp_path / "t.db", "--study", "nope", "-o", tmp_path / "rep2"], capsys)
    assert status == 2 and "no study 'nope'" in err
    # YAML configs work too
    yml = tmp_path / "y.yaml"
    yml.write_text(f"recording: {recording}\nframes: 2\nobjectives: [sops, error]\n"
                   "study: {name: y, trials: 3}\nspace: {schemes: [conventional, line_y], threshold: [0, 2]}\n")
    status, _, err = run(["search", yml, "--no-progress"], capsys)
    assert status == 0, err


def usage_cases(recording: Path, tmp: Path) -> list[tuple[list, str]]:
    (tmp / "broken.toml").write_text("recording = \n")
    (tmp / "notes.txt").write_text("x")
    (tmp / "empty.db").write_bytes(b"")
    cfg_unknown = write_config(tmp / "unknown.toml", recording, extra='colour = "blue"')
    cfg_norec = write_config(tmp / "norec.toml", tmp / "missing.nc")
    cfg_badobj = write_config(tmp / "badobj.toml", recording).read_text().replace('"error"]', '"speed"]')
    (tmp / "badobj.toml").write_text(cfg_badobj)
    return [
        (["stats", tmp / "missing.nc"], "no such recording"),
        (["stats", recording, "--scheme", "bogus"], "unknown scheme 'bogus'"),
        (["stats", recording, "--scheme", "temporal", "--axis", "x"], "has no option 'axis'"),
        (["stats", recording, "--scheme", "line_delta", "--threshold", "-1"], "threshold must be an int >= 0"),
        (["stats", recording, "--bits", "1"], "bits"),
        (["stats", recording, "-o", tmp / "out.json"], "output must end in .nc"),
        (["cost", tmp / "missing.nc"], "no such stats or recording file"),
        (["cost", recording, "--template", "nope"], "no hardware template 'nope'"),
        (["cost", recording, "--template", tmp / "missing.toml"], "no such hardware template file"),
        (["search", tmp / "missing.toml"], "no such config file"),
        (["search", tmp / "notes.txt"], "config must be .toml, .yaml or .yml"),
        (["search", tmp / "broken.toml"], "bad config"),
        (["search", cfg_unknown], "unknown key"),
        (["search", cfg_norec], "no such recording"),
        (["search", tmp / "badobj.toml"], "speed"),
        (["report", tmp / "missing.nc", "-o", tmp / "r"], "no such results file"),
        (["report", tmp / "missing.db", "-o", tmp / "r"], "no such study database"),
        (["record", tmp / "missing.tflite", "still:astronaut", "-o", tmp / "r.nc"], "no such model file"),
        (["record", tmp / "notes.txt", "still:astronaut", "-o", tmp / "r.nc"], "must be a .tflite or .onnx"),
        (["stats"], "required: recording"),
        (["frobnicate"], "invalid choice"),
        (["stats", recording, "--frames", "0"], "--frames must be >= 1"),
        (["stats", recording, "--frames", "99"], "--frames 99: "),
        (["cost", recording, "--frames", "4"], "has only 3 frames; allowed: 1..3"),
    ]


def test_user_mistakes_give_one_line_and_status_2(recording: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in usage_cases(recording, tmp_path):
        status, out, err = run(argv, capsys)
        assert status == 2, (argv, err)
        assert message in err, (argv, err)
        assert "Traceback" not in err
        if argv[0] in ("stats", "cost", "search", "report", "record") and len(argv) > 1:
            assert len(err.strip().splitlines()) == 1, (argv, err)


def test_runtime_failure_gives_status_1(recording: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import else_dse.events

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("kernel crashed")

    monkeypatch.setattr(else_dse.events, "count_events", broken)
    status, _, err = run(["stats", recording], capsys)
    assert status == 1
    assert err.strip().splitlines() == [
        "else-dse stats: failed: RuntimeError: kernel crashed (--debug shows the traceback)"]
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "stats", str(recording)])


def test_record_stills(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ai_edge_litert", reason="recording TFLite needs ai-edge-litert")
    pytest.importorskip("skimage", reason="stills need scikit-image")
    out = tmp_path / "face.nc"
    status, _, err = run(["record", FACE_MODEL, "still:astronaut", "still:coffee", "--value-range", "-1", "1",
                          "--no-progress", "-o", out], capsys)
    assert status == 0, err
    rec = ed.open_recording(out)
    assert rec.n_frames == 2 and len(rec.layers) > 10
    assert list(rec.data["frame_label"].values) == ["still:astronaut", "still:coffee"]
    status, out_text, err = run(["stats", out, "--scheme", "line_delta:y", "-q"], capsys)
    assert status == 0, err
    packed = tmp_path / "face8.nc"
    status, _, err = run(["record", FACE_MODEL, "still:astronaut", "still:coffee", "--value-range", "-1", "1",
                          "--no-progress", "--pack-bits", "8", "-o", packed], capsys)
    assert status == 0, err
    assert packed.stat().st_size < out.stat().st_size / 2
    full, small = rec.quantize(8), ed.open_recording(packed).quantize(8)
    for t in full.tensors:  # the packed file keeps exactly the 8-bit codes of the floats
        np.testing.assert_array_equal(small.tensor(t), full.tensor(t))
    status, _, err = run(["record", FACE_MODEL, "still:astronaut", "--pack-bits", "8", "-o",
                          tmp_path / "x.zarr"], capsys)
    assert status == 2 and "--pack-bits" in err


def test_console_script_exit_status(tmp_path: Path) -> None:
    exe = shutil.which("else-dse")
    cmd = [exe] if exe else [sys.executable, "-m", "else_dse.cli"]
    ok = subprocess.run(cmd + ["stats", "--help"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "example" in ok.stdout
    bad = subprocess.run(cmd + ["stats", str(tmp_path / "missing.nc")], capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"else-dse stats: error: {tmp_path / 'missing.nc'}: no such recording"]


def test_search_print_config_and_strict_types(recording: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib

    cfg = write_config(tmp_path / "p.toml", recording)
    status, out, err = run(["search", cfg, "--print-config", "--trials", "11"], capsys)
    assert status == 0, err
    resolved = tomllib.loads(out)
    assert resolved["study"]["trials"] == 11 and resolved["study"]["name"] == "t"
    assert resolved["study"]["storage"].endswith("t.db") and not (tmp_path / "t.db").exists()
    bad = write_config(tmp_path / "b.toml", recording).read_text().replace("trials = 6", 'trials = "many"')
    (tmp_path / "b.toml").write_text(bad)
    status, _, err = run(["search", tmp_path / "b.toml"], capsys)
    assert status == 2 and "study.trials: must be an integer >= 1, got 'many'" in err
    assert len(err.strip().splitlines()) == 1


def test_stats_with_nothing_left_says_inf_not_0x(recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["stats", recording, "--scheme", "line_delta", "--threshold", "1000"], capsys)
    assert status == 0, err
    total = out.strip().splitlines()[-1]
    assert "SOPs 0 per frame" in total and "conventional / these SOPs = inf" in total and " 0x" not in total


def test_record_without_its_extra_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A missing module of the 'record' extra (here: scikit-image, made unimportable) -> one line
    naming the extra and how to install it, status 2."""
    import sys

    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    for name in [m for m in sys.modules if m == "skimage" or m.startswith("skimage.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "skimage", None)         # import skimage -> ModuleNotFoundError
    monkeypatch.delitem(sys.modules, "else_dse.record.media", raising=False)
    status, out, err = run(["record", model, "still:astronaut", "-o", tmp_path / "r.nc"], capsys)
    assert status == 2, err
    assert "record needs the 'record' extra, module 'skimage' is missing: pip install 'else-dse[record]'" in err
