"""Hardware templates: validation, TOML round trip, shipped templates and their sources."""

from __future__ import annotations

import re
import tomllib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import else_dse as ed
from else_dse.hardware import FIELDS, SOURCE_TAGS, HardwareError, template_names, validate

SHIPPED = ("loihi2", "neuronflow", "seneca")
HARDWARE_MD_FIELDS = ("n_cores", "mesh_x", "mesh_y", "clock_hz", "neurons_per_core", "sram_per_core",
                      "weight_bits", "state_bits", "e_sop", "e_neuron_update", "e_event_out", "e_hop",
                      "e_sram_bit", "p_static_core", "lanes", "t_sop", "t_neuron_update", "t_hop")


def test_shipped_templates_load_and_carry_a_tagged_source_for_every_field():
    assert template_names() == SHIPPED
    for name in SHIPPED:
        hw = ed.load_template(name)
        assert hw.name == name
        sources = dict(hw.sources)
        assert set(sources) == set(FIELDS), f"{name}: fields without a source {set(FIELDS) - set(sources)}"
        for field, text in sources.items():
            tag, _, citation = text.partition(":")
            assert tag in SOURCE_TAGS and citation.strip(), (name, field, text)


def test_every_hardware_md_field_is_a_template_field():
    assert set(HARDWARE_MD_FIELDS) <= set(FIELDS)


def test_template_values_match_hardware_md():
    nf, lo, se = (ed.load_template(n) for n in ("neuronflow", "loihi2", "seneca"))
    assert (nf.n_cores, nf.neurons_per_core, nf.sram_per_core, nf.e_sop, nf.clock_hz) == (196, 1024, 24576, 20.0, 500e6)
    assert (lo.n_cores, lo.neurons_per_core, lo.e_sop, lo.e_neuron_update, lo.t_sop, lo.clock_hz) == \
        (128, 8192, 11.8, 40.5, 3.5, None)
    assert (se.lanes, se.e_sop, se.e_event_out, se.e_hop) == (8, 2.8, 1.1, 2.0)
    assert (se.e_neuron_update, se.e_sram_bit, lo.e_sram_bit) == (10.2, 0.18, 0.38)
    assert lo.execution == "timestep" and nf.execution == "event" and se.execution == "event"
    assert lo.source("e_sop").startswith("P:") and nf.source("mesh_x").startswith("A:")


@pytest.mark.parametrize("name", SHIPPED)
def test_toml_round_trip(name, tmp_path):
    hw = ed.load_template(name)
    path = tmp_path / f"{name}.toml"
    text = hw.to_toml(path)
    assert path.read_text() == text
    back = ed.Hardware.from_toml(path)
    assert back == hw and back.sources == hw.sources
    assert tomllib.loads(text)["hardware"]["n_cores"] == hw.n_cores
    assert ed.load_template(str(path)) == hw


@settings(max_examples=30, deadline=None)
@given(e_sop=st.floats(0, 100, allow_nan=False), sram=st.integers(1, 10**7),
       execution=st.sampled_from(["event", "timestep"]), clock=st.sampled_from([None, 1e8, 2.5e8]))
def test_replace_round_trips_through_toml(e_sop, sram, execution, clock):
    hw = ed.load_template("seneca").replace(e_sop=e_sop, sram_per_core=sram, execution=execution,
                                            clock_hz=clock)
    assert ed.Hardware._from_doc(tomllib.loads(hw.to_toml()), "test") == hw
    assert "e_sop" not in dict(hw.sources) and "e_hop" in dict(hw.sources)


def test_validation_is_separate_and_lists_every_problem():
    d = ed.load_template("neuronflow").to_dict()
    assert validate(d) == d
    bad = {**d, "n_cores": 0, "e_sop": -1.0, "lanes": 2.5, "colour": "red", "execution": "async"}
    with pytest.raises(HardwareError) as err:
        validate(bad)
    msg = str(err.value)
    for needle in ("n_cores must be an integer >= 1", "e_sop must be a number >= 0 (pJ)",
                   "lanes must be an integer >= 1", "unknown field(s) ['colour']", "allowed fields are",
                   "execution must be one of ('event', 'timestep')"):
        assert needle in msg


@pytest.mark.parametrize("change, needle", [
    ({"n_cores": 500}, "mesh_x * mesh_y = 14 * 14 = 196 cannot hold n_cores = 500"),
    ({"neurons_per_core": -3}, "neurons_per_core must be an integer >= 1"),
    ({"t_hop": float("nan")}, "t_hop must be a number > 0 (ns)"),
    ({"clock_hz": 0}, "clock_hz must be a number > 0 (Hz), or omitted (None) for asynchronous logic, got 0"),
    ({"clock_hz": -5e8}, "clock_hz must be a number > 0 (Hz)"),
    ({"t_sop": 0.0}, "t_sop must be a number > 0 (ns); an operation cannot take no time, got 0.0"),
    ({"t_neuron_update": 0}, "t_neuron_update must be a number > 0 (ns)"),
    ({"e_sop": -1e-3}, "e_sop must be a number >= 0 (pJ)"),
    ({"state_bits": 65}, "state_bits must be an integer from 1 to 64 (bits), got 65"),
    ({"event_bits": 0}, "event_bits must be an integer from 1 to 64 (bits)"),
    ({"schedule": "pipelined"}, "schedule must be one of ('auto', 'sequential', 'streamed', 'step')"),
    ({"e_hop": float("inf")}, "e_hop must be a number >= 0 (pJ)"),
    ({"p_static_core": -0.1}, "p_static_core must be a number >= 0 (mW)"),
    ({"weight_bits": True}, "weight_bits must be an integer from 1 to 64 (bits)"),
    ({"name": ""}, "name must be a non-empty string"),
])
def test_bad_values_name_field_and_allowed_values(change, needle):
    with pytest.raises(HardwareError, match=None) as err:
        ed.load_template("neuronflow").replace(**change)
    assert needle in str(err.value)


def test_direct_construction_is_validated_too():
    d = ed.load_template("seneca").to_dict()
    with pytest.raises(HardwareError, match="e_hop must be a number >= 0"):
        ed.Hardware(**{**d, "e_hop": -2.0})
    with pytest.raises(HardwareError, match="missing field"):
        validate({"n_cores": 4})
    with pytest.raises(HardwareError, match="unknown field"):
        ed.load_template("seneca").replace(sram=4)


def test_clock_none_means_asynchronous():
    d = ed.load_template("seneca").to_dict()
    hw = ed.Hardware.from_dict({**d, "clock_hz": None})
    assert hw.clock_hz is None and "clock_hz" not in tomllib.loads(hw.to_toml())["hardware"]
    d.pop("clock_hz")
    assert ed.Hardware.from_dict(d).clock_hz is None          # omitted in a template: asynchronous
    assert ed.load_template("loihi2").clock_hz is None


def test_unknown_template_lists_the_shipped_ones():
    with pytest.raises(HardwareError, match=r"shipped templates are \['loihi2', 'neuronflow', 'seneca'\]"):
        ed.load_template("truenorth")


def test_bad_template_files(tmp_path):
    good = ed.load_template("seneca").to_toml()
    cases = {
        "extra_table.toml": good + "\n[extra]\nx = 1\n",
        "no_hardware.toml": "[sources]\nn_cores = 'P: x'\n",
        "bad_tag.toml": good.replace('"P: 32-bit NoC event', '"Q: 32-bit NoC event'),
        "unknown_source.toml": good + '\n[sources.more]\n',
        "not_toml.toml": "n_cores = = 3",
        "unknown_field.toml": good.replace("[hardware]\n", "[hardware]\nwarp_drive = 1\n"),
    }
    needles = {
        "extra_table.toml": "tables [hardware] and optional [sources]",
        "no_hardware.toml": "tables [hardware] and optional [sources]",
        "bad_tag.toml": "[sources].event_bits must be a string '<tag>: <source>'",
        "unknown_source.toml": "[sources] names unknown field 'more'",
        "not_toml.toml": "not valid TOML",
        "unknown_field.toml": "unknown field(s) ['warp_drive']",
    }
    for fname, text in cases.items():
        path = tmp_path / fname
        path.write_text(text)
        with pytest.raises(HardwareError) as err:
            ed.Hardware.from_toml(path)
        assert needles[fname] in str(err.value), (fname, str(err.value))


def test_hardware_is_hashable_and_sources_do_not_affect_equality():
    a = ed.load_template("loihi2")
    b = ed.Hardware.from_dict(a.to_dict())
    assert a == b and hash(a) == hash(b) and b.sources == ()


def test_fields_table_matches_the_dataclass():
    import dataclasses

    names = {f.name for f in dataclasses.fields(ed.Hardware)} - {"sources"}
    assert names == set(FIELDS)
    for name, (kind, unit, meaning) in FIELDS.items():
        assert unit and meaning, name


def test_t_sop_is_per_lane_one_cycle_on_clocked_templates():
    """t_sop is one SOP on one lane (the model divides by lanes): one clock cycle on the
    clocked templates, so SENeCA's 8 NPEs at 250 MHz have t_sop = 4 ns, not 4/8."""
    for name in ("neuronflow", "seneca"):
        hw = ed.load_template(name)
        assert hw.t_sop * 1e-9 * hw.clock_hz == pytest.approx(1.0), name
    se, nf, lo = (ed.load_template(n) for n in ("seneca", "neuronflow", "loihi2"))
    assert (se.t_sop, se.lanes, nf.t_sop, nf.lanes, lo.t_sop, lo.lanes) == (4.0, 8, 2.0, 1, 3.5, 1)
    for name in SHIPPED:
        assert "per lane" in ed.load_template(name).source("t_sop") or ed.load_template(name).lanes == 1


_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e\d+)?")


@pytest.mark.parametrize("name", SHIPPED)
def test_derived_sources_show_arithmetic_that_yields_the_value(name):
    """A 'D' source shows its arithmetic and, after an '=', the field's value."""
    hw = ed.load_template(name)
    for field, text in hw.sources:
        if not text.startswith("D:"):
            continue
        assert "=" in text, (name, field, text)
        results = [float(x) for x in _NUMBER.findall(text.split("=", 1)[1])]
        assert float(getattr(hw, field)) in results, (name, field, getattr(hw, field), text)


def test_no_d_source_leans_on_an_unstated_derivation():
    for name in SHIPPED:
        for field, text in ed.load_template(name).sources:
            assert "not itemized" not in text and "hardware.md table" not in text, (name, field, text)
