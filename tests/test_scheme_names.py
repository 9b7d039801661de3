"""The one table of scheme names: Scheme.parse, Scheme.name, to_dict/from_dict, and their users."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import else_dse as ed
from else_dse import cli, search
from else_dse.schemes import KINDS, NAMES, Scheme

SCHEMES = st.one_of(
    st.builds(ed.Dense, tau=st.integers(0, 9)),
    st.builds(ed.Conventional, tau=st.integers(0, 9)),
    st.builds(ed.LineDelta, axis=st.sampled_from(("y", "x")), direction=st.sampled_from(("forward", "reverse")),
              threshold=st.integers(0, 9), loop=st.sampled_from(("closed", "open")), tau=st.integers(0, 9)),
    st.builds(ed.TemporalDelta, threshold=st.integers(0, 9), loop=st.sampled_from(("closed", "open")),
              tau=st.integers(0, 9)),
)


@given(SCHEMES)
def test_name_parse_and_dict_round_trip(s):
    assert s.name in NAMES and s.kind in KINDS
    assert Scheme.from_dict(s.to_dict()) == s
    assert set(s.to_dict()) == {"kind", "axis", "direction", "threshold", "tau", "loop"}
    opts = [f"tau={s.tau}"] + ([f"threshold={s.threshold}", f"loop={s.loop}"] if s.thresholded else [])
    assert Scheme.parse(f"{s.name}:{','.join(opts)}") == s
    assert Scheme.parse(s.name).adjusted(**{k: v for k, v in s.to_dict().items() if k in ("threshold", "tau", "loop") and v != ""}) == s


def test_aliases_and_errors():
    assert Scheme.parse("else") == ed.LineDelta() and Scheme.parse("line-x-Reverse").name == "line_x_reverse"
    assert Scheme.parse("temporal_delta:2") == Scheme.parse("temporal:threshold=2") == ed.TemporalDelta(threshold=2)
    assert Scheme.parse("conv:tau=1") == ed.Conventional(tau=1)
    assert Scheme.parse("line_delta", axis="x", threshold=3) == ed.LineDelta(axis="x", threshold=3)
    for bad, msg in [("nope", "unknown scheme 'nope'"), ("line_x:axis=y", "means axis=x"),
                     ("temporal:axis=x", "has no option 'axis'"), ("line_y:threshold=a", "integer"),
                     ("line_y:zz", "cannot read option 'zz'"), ("temporal:-1", "int >= 0")]:
        with pytest.raises(ValueError, match=msg):
            Scheme.parse(bad)
    with pytest.raises(ValueError, match="contradicts"):
        Scheme.parse("line_x", axis="y")


def test_cli_and_search_use_the_same_names():
    for name in NAMES:
        assert cli.parse_scheme(name) == Scheme.parse(name)
    assert search.SCHEMES == NAMES and search.LINE_ORDERINGS == tuple(n for n in NAMES if n.startswith("line"))
    rec = ed.Recording.from_arrays(
        [ed.Layer("c", "x", "conv", 1, 2, kernel=3, padding=1, input_shape=(1, 6, 6))],
        {"x": __import__("numpy").random.default_rng(0).random((2, 1, 6, 6)).astype("float32")})
    problem = search.define(rec, search.Space(schemes=("temporal_delta", "else"), threshold=2), "sops")
    assert problem.layer_choices["c"] == ("temporal", "line_y")
    cfg = problem.config({"scheme.c": "line_y"})
    plan = cfg.describe()["plan"]
    assert plan == {"c": {"kind": "line_delta", "axis": "y", "direction": "forward", "threshold": 2, "tau": 0,
                          "loop": "closed"}}
    ev = problem.evaluate(cfg)
    assert ev.user_attrs["layers"]["choice"] == ["line_y"] and ev.user_attrs["layers"]["loop"] == ["closed"]


def test_plan_resolve_is_kept_per_network_and_still_validates_another():
    """A plan keeps the schemes it resolved for the last network (the search resolves each trial's
    plan twice); another network is checked afresh, and a pickled plan carries no memo."""
    import pickle

    conv = (ed.Layer("a", "t", "conv", 1, 2, kernel=3, padding=1, input_shape=(1, 4, 4)),
            ed.Layer("b", "t", "conv", 2, 2, kernel=1, input_shape=(2, 4, 4)))
    fc = (ed.Layer("a", "t", "fc", 4, 2, input_shape=(4, 1, 1)),)
    plan = ed.Plan({"a": ed.LineDelta(threshold=1)})
    first = plan.resolve(conv)
    assert plan.resolve(list(conv)) is first
    assert first == (ed.LineDelta(threshold=1), ed.Conventional())
    with pytest.raises(ValueError, match="layer 'a'.*fully connected"):
        plan.resolve(fc)
    with pytest.raises(ValueError, match=r"unknown layer names \['a'\]"):
        ed.Plan({"a": ed.Conventional()}).resolve(conv[1:])
    copy = pickle.loads(pickle.dumps(plan))
    assert copy == plan and "_resolved" not in vars(copy) and copy.resolve(conv) == first


def test_to_dict_of_a_repeated_scheme_gives_independent_copies():
    a, b = ed.LineDelta(axis="x", threshold=2), ed.TemporalDelta(threshold=1, tau=3)
    seq = [a, b, a, ed.Conventional(tau=1), a]
    out = [s.to_dict() for s in seq]
    assert out[0] == out[2] == out[4] and out[1] != out[0]
    out[0]["threshold"] = 99
    assert out[2]["threshold"] == 2 and a.to_dict()["threshold"] == 2


def test_plan_repr_is_the_repr_of_its_mapping_with_repeated_schemes():
    a, b = ed.LineDelta(axis="x", threshold=2), ed.TemporalDelta(threshold=1)
    m = {"l1": a, "l2": b, "l3": a, "x'y": ed.Conventional(tau=1), "l5": ed.LineDelta(axis="x", threshold=2)}
    assert repr(ed.Plan(m, default=b)) == f"Plan({m!r}, default={b!r})"
    assert repr(ed.Plan({})) == "Plan({}, default=Conventional(tau=0))"
