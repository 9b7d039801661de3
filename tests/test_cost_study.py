"""studies/state_memory.py on a small synthetic recording: plan assembly and the table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import xarray as xr
import pytest

import else_dse as ed

STUDY = Path(__file__).resolve().parents[1] / "studies" / "state_memory.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("state_memory_study", STUDY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    rng = np.random.default_rng(3)
    l1 = ed.Layer("c1", "x", "conv", 2, 4, kernel=3, padding=1, input_shape=(2, 12, 10))
    l2 = ed.Layer("c2", "y", "depthwise", 4, 4, kernel=3, stride=2, padding=(0, 1, 0, 1), groups=4,
                  input_shape=(4, 12, 10))
    l3 = ed.Layer("f", "z", "fc", 4 * 6 * 5, 3, input_shape=(4, 6, 5))
    smooth = np.cumsum(rng.random((3, 2, 12, 10)), axis=2).astype(np.float32)
    arrays = {"x": smooth, "y": np.maximum(rng.standard_normal((3, 4, 12, 10)), 0).astype(np.float32),
              "z": np.maximum(rng.standard_normal((3, 4, 6, 5)), 0).astype(np.float32)}
    path = tmp_path_factory.mktemp("data") / "tiny.nc"
    ed.Recording.from_arrays([l1, l2, l3], arrays).save(path)
    return path


def test_plan_stats_mix_rows_of_the_two_countings(study, recording):
    q = ed.open_recording(recording).quantize(bits=8)
    temporal = ed.count_events(q, ed.TemporalDelta())
    line = ed.count_events(q, ed.Plan({"c1": ed.LineDelta(), "c2": ed.LineDelta()}, default=ed.TemporalDelta()))
    k1 = study.plan_stats(q, temporal, line, 1)
    assert list(k1["scheme"].values) == ["line_delta", "temporal_delta", "temporal_delta"]
    np.testing.assert_array_equal(k1["sops"].values[0], line["sops"].values[0])
    np.testing.assert_array_equal(k1["sops"].values[1:], temporal["sops"].values[1:])
    direct = ed.count_events(q, ed.Plan({"c1": ed.LineDelta()}, default=ed.TemporalDelta()))
    np.testing.assert_array_equal(k1["events"].values, direct["events"].values)
    xr.testing.assert_identical(k1, direct)        # coordinates (threshold, tau, loop...) and attrs too
    assert study.plan_stats(q, temporal, line, 0)["scheme"].values.tolist() == ["temporal_delta"] * 3


def test_table_reports_reductions_against_all_temporal(study, recording):
    hw = ed.load_template("neuronflow")
    table, layers = study.study(recording, hw, frames=None, ks=None)
    assert table["k"].tolist() == [0, 1, 2]
    base = table.iloc[0]
    assert base["persistent_reduction"] == 1.0 and base["sops_ratio"] == 1.0
    # persistent words of temporal delta: sender C*H*W + consumer C_out*H_out*W_out, 2 bytes each
    want = 2 * ((240 + 480) + (480 + 120) + (120 + 3))
    assert base["persistent_bytes"] == want
    last = table.iloc[-1]
    assert last["persistent_bytes"] == 2 * (120 + 3)               # only the fc layer stays temporal
    assert last["persistent_reduction"] == pytest.approx(want / (2 * 123))
    assert set(layers["plan"]) == {"temporal", "line_all"}


def test_main_writes_csv_and_handles_missing_data(study, recording, tmp_path, capsys):
    assert study.main(["--data", str(recording.parent), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "state_memory.csv").exists()
    out = capsys.readouterr()
    assert "falling back" in out.err and "tiny" in out.out
    empty = tmp_path / "empty"
    empty.mkdir()
    assert study.main(["--data", str(empty), "--out", str(tmp_path / "o2")]) == 1
    assert "no recordings" in capsys.readouterr().err
