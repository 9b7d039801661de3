"""Relative L2 error of output tensors and the checks of fidelity()'s inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from else_dse.tasks import fidelity, rel_l2


def test_rel_l2_golden():
    assert rel_l2(np.array([3.0, 3.0]), np.array([3.0, 4.0])) == pytest.approx(0.2)
    # over all frames at once, not a mean of per-frame ratios
    out = np.array([[1.0, 0.0], [10.0, 0.0]])
    ref = np.array([[0.0, 0.0], [10.0, 0.0]])
    assert rel_l2(out, ref) == pytest.approx(0.1)
    assert rel_l2(ref, ref) == 0.0


def test_rel_l2_zero_reference():
    z = np.zeros((2, 3))
    assert rel_l2(z, z) == 0.0
    assert rel_l2(z + 1e-30, z) == math.inf


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 5)),
              elements=st.floats(-1e3, 1e3, allow_subnormal=False)),
       st.floats(0.0, 10.0))
def test_rel_l2_scaled_difference(ref, k):
    """out = ref * (1 + k) has relative error exactly |k| (when ref != 0). Subnormal ``ref`` is left
    out: there ``ref * (1 + k)`` itself is rounded to a multiple of 5e-324 (5e-324 * 2.5 = 1e-323)."""
    got = rel_l2(ref * (1.0 + k), ref)
    if np.any(ref != 0):
        assert got == pytest.approx(k, rel=1e-9, abs=1e-12)
    else:
        assert got == 0.0


def test_fidelity_every_output_named():
    ref = {"a": np.ones((2, 4), np.float32), "b": np.full((2, 1), 2.0, np.float32)}
    out = {"a": np.ones((2, 4), np.float32), "b": np.full((2, 1), 3.0, np.float32)}
    got = fidelity(None, out, ref)
    assert got == {"rel_l2[a]": 0.0, "rel_l2[b]": pytest.approx(0.5)}
    assert all(isinstance(v, float) for v in got.values())


@pytest.mark.parametrize("out, ref, match", [
    ({"a": np.ones((1, 2))}, {"b": np.ones((1, 2))}, "outputs name"),
    ({"a": np.ones((1, 2))}, {"a": np.ones((1, 3))}, "shape"),
    ({"a": np.array([[np.nan, 1.0]])}, {"a": np.ones((1, 2))}, "NaN"),
    ({"a": np.ones((1, 2))}, {"a": np.array([[np.inf, 1.0]])}, "reference 'a' holds NaN"),
    ({}, {}, "no output"),
    ({"a": np.float64(1.0)}, {"a": np.float64(1.0)}, "frame"),
    ({"a": np.zeros((0, 3))}, {"a": np.zeros((0, 3))}, "at least one frame"),
])
def test_fidelity_bad_inputs(out, ref, match):
    with pytest.raises(ValueError, match=match):
        fidelity(None, out, ref)
