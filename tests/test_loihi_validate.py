"""Pins the Loihi 2 validation study (studies/validate_loihi2.py) on the committed PilotNet data.

The uncalibrated prediction is pinned to a relative 1e-9: a change to the cost
model, the loihi2 template or the event counts that moves it fails here, and the
README/TOML validation text must then be regenerated: ``python studies/validate_loihi2.py
--update-readme`` (data/README.lava.md) and ``--pins`` (the values to paste below).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import else_dse as ed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("validate_loihi2", ROOT / "studies" / "validate_loihi2.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="module")
def result(study):
    return study.run(out=None, verbose=False)


# uncalibrated prediction, published loihi2 template, 16 steps per frame, the benchmark's 74 cores
PINNED = {
    "e_dynamic_mj": 0.7581647267733336,
    "p_static_mw": 58.22,
    "fps": 216.21773984725266,
    "p_dynamic_mw": 163.92866365484002,
    "e_total_mj": 1.0274303293142242,
    "cores": 71.0,
    "sops_per_frame": 49246886.0,
    "neuron_updates_per_frame": 2536144.0,
    "events_per_frame": 755963.0,
}
# the model's default mapping (fewest cores that fit), same template
PINNED_FEWEST = {"e_dynamic_mj": 0.7301286175468751, "p_static_mw": 20.5,
                 "fps": 40.85885027063036, "cores": 25.0}
LAYER_SOPS = {"input-encoder": 0, "conv-0": 29214024, "conv-1": 8897436, "conv-2": 4383312,
              "conv-3": 3851392, "conv-4": 2420096, "fc-0": 471600, "fc-1": 8700, "fc-2": 320, "fc-3": 6}
LAYER_UPDATES = {"input-encoder": 633600, "conv-0": 1216512, "conv-1": 423360, "conv-2": 129024,
                 "conv-3": 90112, "conv-4": 40960, "fc-0": 1600, "fc-1": 800, "fc-2": 160, "fc-3": 16}


def test_uncalibrated_prediction_is_pinned(result):
    pred = result["uncalibrated"]
    for key, value in PINNED.items():
        assert pred[key] == pytest.approx(value, rel=1e-9), key


def test_fewest_cores_prediction_is_pinned(result):
    pred = result["fewest"]["uncalibrated"]
    for key, value in PINNED_FEWEST.items():
        assert pred[key] == pytest.approx(value, rel=1e-9), key


def test_layer_sops_and_updates(result):
    table = result["layers"].set_index("layer")
    assert table["sops"].to_dict() == pytest.approx(LAYER_SOPS, rel=0, abs=0)
    assert table["neuron_updates"].to_dict() == pytest.approx(LAYER_UPDATES, rel=0, abs=0)


def test_sops_equal_spikes_times_fan_out():
    """Independent of the kernels: SOPs = sum over spikes of the conventional fan-out."""
    rec = ed.open_recording(ROOT / "data" / "pilotnet_lif.nc").select_frames(range(16))
    for layer in rec.layers:
        x = rec.tensor(layer.input) != 0
        fan = layer.fan_out() if layer.op != "fc" else np.full(layer.input_shape[1:], layer.out_channels)
        assert int((x * fan[None, None]).sum()) == LAYER_SOPS[layer.name], layer.name
    # time-stepped execution: every neuron of every layer updated in each of the 16 steps
    for layer in rec.layers:
        assert LAYER_UPDATES[layer.name] == 16 * int(np.prod(layer.output_shape)), layer.name
    assert LAYER_UPDATES["input-encoder"] == 16 * 3 * 66 * 200


def test_published_template_is_used_unchanged(result):
    hw = result["hardware"]
    assert hw == ed.load_template("loihi2")
    assert hw.source("e_sop").startswith("P:") and hw.execution == "timestep"


def test_calibration_reproduces_fit_run_and_is_pinned(study, result):
    fit = result["fitted"]
    checks = result["checks"].set_index(["case", "model", "quantity"])["rel_error"]
    for q in ("e_dynamic_mj", "p_static_mw"):
        assert abs(checks[(study.FIT_RUN, "calibrated", q)]) < 1e-12
    assert fit.e_sop == pytest.approx(18.619421500613594, rel=1e-9)
    assert fit.p_static_chip == pytest.approx(173.88, rel=1e-9)
    # everything but the two calibrated fields is the published template
    pub = result["hardware"]
    assert fit.replace(e_sop=pub.e_sop, p_static_chip=pub.p_static_chip) == pub
    # checks of all three cases are present
    cases = set(result["checks"]["case"])
    assert cases == {"lif_2023-01-10", "lif_2022-10-28", "sdnn"}


def test_sdnn_bound_is_static_dominated(study, result):
    """SDNN: dense upper bound of compute, I/O-bound frame time -> energy per frame static-dominated."""
    s = result["sdnn"]
    assert s["fps"] > study.MEASURED["sdnn"]["fps"]          # compute is not the bottleneck
    assert s["p_static_mw"] / study.MEASURED["sdnn"]["fps"] > 0.9 * s["e_total_mj"]


def test_writes_csv(study, tmp_path):
    study.run(out=tmp_path, verbose=False)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"uncalibrated.csv", "calibration.csv", "errors.csv", "layers_lif.csv"} <= names
    import pandas as pd
    err = pd.read_csv(tmp_path / "errors.csv")
    # 3 cases x {published, calibrated} + the fewest-cores mapping on the fit run, 5 quantities each
    assert len(err) == 7 * 5 and err["rel_error"].notna().all()


def test_readme_validation_text_is_current(study, result):
    """data/README.lava.md states exactly what the study computes now."""
    assert study.readme_block(study.README.read_text()) == study.markdown(result), (
        "regenerate with: python studies/validate_loihi2.py --update-readme")
