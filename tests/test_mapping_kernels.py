"""else_dse._mapping: the cost model's packing and mesh-distance loops, bit-identical to the
plain numpy / Python code they replace (kept here as the reference)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import else_dse as ed
from else_dse import _mapping, cost

DATA = Path(__file__).resolve().parents[1] / "data"     # the shipped recordings (in the repo: never skipped)


def pack_reference(neu: list[int], mem: np.ndarray, cores: np.ndarray, single: list[bool], buf: float,
                   neurons_per_core: int, sram_per_core: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Consecutive single-core layers share a core while their neurons and memory fit."""
    n = len(mem)
    mem_l, cores_l = mem.tolist(), cores.tolist()
    core_mem = mem.astype(np.float64).copy()
    g, phys, open_, cur_neu, cur_mem, members, first_g = -1, 0, False, 0, 0.0, [], 0
    group_l, first_l = [0] * n, [0] * n
    for i in range(n):
        if open_ and single[i] and cur_neu + neu[i] <= neurons_per_core \
                and cur_mem + mem_l[i] - buf <= sram_per_core:
            cur_neu += neu[i]
            cur_mem += mem_l[i] - buf
            members.append(i)
        else:
            if len(members) > 1:
                core_mem[members] = cur_mem
            g += 1
            first_g = phys
            phys += cores_l[i]
            open_, cur_neu, cur_mem, members = single[i], neu[i], mem_l[i], [i]
        group_l[i] = g
        first_l[i] = first_g
    if len(members) > 1:
        core_mem[members] = cur_mem
    return np.array(group_l, dtype=np.int64), np.array(first_l, dtype=np.int64), core_mem, phys


def tiling_reference(geom, state, hw, held) -> cost.Tiling:
    """Of the tilings that fit neurons_per_core and sram_per_core, the one with the fewest cores
    (ties: the smaller busiest-core tile, then fewer channel groups); the finest when none fits."""
    c, rows, cols = geom.c_out, state.rows, state.cols
    base = cost._BASE[: int(np.searchsorted(cost._BASE, c.max())) + 1]
    n_c = np.minimum(np.append(base, 1 << 62)[None, :], c[:, None])     # 1..16, 1.25x steps, C_out
    cc = -(-c[:, None] // n_c)
    n_c = -(-c[:, None] // cc)
    a = cost._fixed_bytes(geom, hw, cc)
    b = cc * cost._row_bytes(geom, state, hw, held)[:, None]
    rr_neu = hw.neurons_per_core // (cc * cols[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        rr_mem = np.floor((hw.sram_per_core - a) / b)
        rr_max = np.minimum(np.minimum(rr_neu, rr_mem), rows[:, None]).astype(np.int64)
    ok = rr_max >= 1
    n_r = -(-rows[:, None] // np.maximum(rr_max, 1))
    rr = -(-rows[:, None] // n_r)
    share = (cc * rr) / (c * rows)[:, None]
    key = np.where(ok, n_c * n_r, n_c * n_r + 10 ** 12) + 0.5 * share + 1e-9 * n_c
    best = np.argmin(key, axis=1)
    pick = lambda x: np.take_along_axis(x, best[:, None], axis=1)[:, 0]  # noqa: E731
    rr_b = pick(rr).astype(np.int64)
    return cost.Tiling(n_c=pick(n_c), n_r=pick(n_r).astype(np.int64), cc=pick(cc), rr=rr_b,
                       mem=pick(a) + rr_b * pick(b), share=pick(share), fits=pick(ok))


def assert_same_tiling(got: cost.Tiling, want: cost.Tiling) -> None:
    for f in ("n_c", "n_r", "cc", "rr", "mem", "share", "fits"):
        a, b = getattr(got, f), getattr(want, f)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f


def cdf_distance_reference(coord: np.ndarray, owner: np.ndarray, size: int, n: int, inv: np.ndarray,
                           p: np.ndarray) -> np.ndarray:
    h = np.bincount(coord * (n + 1) + owner, minlength=size * (n + 1)).reshape(size, n + 1) * inv
    h[0, n] = 1.0
    f = np.cumsum(h, axis=0)
    fp, fl = f[:, p], f[:, :n]
    return np.ascontiguousarray((fp * (1 - fl) + fl * (1 - fp)).T).sum(1)


def mean_distance_reference(first: np.ndarray, cores: np.ndarray, producer: np.ndarray, mx: int,
                            total: int) -> np.ndarray:
    """Per layer the mean Manhattan distance between a producer core and one of its cores, every
    core placed at its snake-order position (outside input at node (0, 0))."""
    n = len(cores)
    starts = np.cumsum(cores) - cores
    idx = np.arange(int(cores.sum())) - np.repeat(starts, cores) + np.repeat(first, cores)
    y, r = np.divmod(idx, mx)
    x = np.where(y & 1, mx - 1 - r, r)
    owner = np.repeat(np.arange(n), cores)
    ny = max(total - 1, 0) // mx + 1
    inv = np.append(1.0 / cores, 1.0)
    p = np.where(producer < 0, n, producer)
    return cdf_distance_reference(x, owner, mx, n, inv, p) + cdf_distance_reference(y, owner, ny, n, inv, p)


@st.composite
def placements(draw):
    """Layers packed consecutively in snake order (single-core neighbours may share a first
    core), each fed by an earlier layer or the outside, on a mesh 1-9 columns wide."""
    n = draw(st.integers(1, 14))
    cores = np.array(draw(st.lists(st.integers(1, 40), min_size=n, max_size=n)), np.int64)
    share = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    first = np.cumsum(cores) - cores
    for i in range(1, n):
        if share[i] and cores[i] == 1 and cores[i - 1] == 1:
            first[i:] -= 1
    producer = np.array([draw(st.integers(-1, i - 1)) for i in range(n)], np.int64)
    return first, cores, producer, draw(st.integers(1, 9))


def _distance(first: np.ndarray, cores: np.ndarray, producer: np.ndarray, mx: int, total: int) -> np.ndarray:
    n = len(cores)
    ny = max(total - 1, 0) // mx + 1
    tx, ty = np.empty((n, mx)), np.empty((n, ny))
    _mapping.snake_distance_terms(first, cores, np.where(producer < 0, n, producer), mx, ny, tx, ty)
    return tx.sum(1) + ty.sum(1)


@settings(max_examples=300, deadline=None)
@given(placements())
def test_snake_distance_is_bit_identical_to_the_numpy_reference(case):
    first, cores, producer, mx = case
    total = int((first + cores).max())
    want = mean_distance_reference(first, cores, producer, mx, total)
    got = _distance(first, cores, producer, mx, total)
    assert got.tobytes() == want.tobytes()


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_packing_is_bit_identical_to_the_python_reference(data):
    n = data.draw(st.integers(1, 30))
    cores = np.array(data.draw(st.lists(st.sampled_from([1, 1, 1, 2, 5]), min_size=n, max_size=n)), np.int64)
    fits = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    neu = np.array(data.draw(st.lists(st.integers(1, 300), min_size=n, max_size=n)), np.int64)
    # bytes with fractions (held sender bytes are shared out per row), so that sums round
    mem = np.array(data.draw(st.lists(st.floats(100.0, 5000.0), min_size=n, max_size=n)))
    buf, npc, sram = data.draw(st.floats(0.0, 90.0)), data.draw(st.integers(256, 2048)), data.draw(
        st.integers(4096, 32768))
    single = (cores == 1) & fits
    want = pack_reference(neu.tolist(), mem, cores, single.tolist(), buf, npc, sram)
    group, first, core_mem = np.empty(n, np.int64), np.empty(n, np.int64), mem.copy()
    phys = _mapping.pack_layers(neu, mem, cores, single.astype(np.uint8), buf, npc, float(sram), group, first,
                                core_mem)
    assert np.array_equal(group, want[0]) and np.array_equal(first, want[1]) and phys == want[3]
    assert core_mem.tobytes() == want[2].tobytes()


def test_estimates_of_the_shipped_networks_keep_the_reference_mapping(monkeypatch):
    """Every layer of every shipped network, on every template: the distances and core groups the
    estimate uses are those of the reference code."""
    recs = sorted(DATA.glob("*_carphone.nc"))
    assert recs, f"no shipped recordings in {DATA}"
    seen = []
    real_md, real_pack, real_tiling = cost._mean_distance, cost._pack, cost._fewest_cores_tiling

    def tiling(geom, state, hw, held):
        got = real_tiling(geom, state, hw, held)
        assert_same_tiling(got, tiling_reference(geom, state, hw, held))
        return got

    def md(geom, hw, cores, first, total):
        got = real_md(geom, hw, cores, first, total)
        mx = cost.chip_grid(hw, total)[0] * hw.mesh_x
        assert got.tobytes() == mean_distance_reference(first, cores, geom.producer, mx, total).tobytes()
        seen.append(len(cores))
        return got

    def pack(t, state, hw):
        got = real_pack(t, state, hw)
        want = pack_reference((t.cc * t.rr * state.cols).tolist(), t.mem, t.cores, ((t.cores == 1) & t.fits).tolist(),
                              hw.buffer_events * hw.event_bits / 8.0, hw.neurons_per_core, hw.sram_per_core)
        assert all(np.array_equal(a, b) for a, b in zip(got[:2], want[:2])) and got[3] == want[3]
        assert got[2].tobytes() == want[2].tobytes()
        return got

    monkeypatch.setattr(cost, "_mean_distance", md)
    monkeypatch.setattr(cost, "_pack", pack)
    monkeypatch.setattr(cost, "_fewest_cores_tiling", tiling)
    for path in recs:
        q = ed.open_recording(path).select_frames([0]).quantize(bits=8)
        for scheme in (ed.Conventional(), ed.LineDelta(threshold=1), ed.TemporalDelta(threshold=1)):
            stats = ed.count_events(q, scheme)
            for name in ed.hardware.template_names():
                ed.estimate(stats, ed.load_template(name))
    assert seen


@pytest.fixture(scope="module")
def pose_counts():
    q = ed.open_recording(DATA / "poselandmark_carphone.nc").select_frames([0]).quantize(bits=8)
    return {k: cost.check_stats(ed.count_events(q, s)) for k, s in
            {"conventional": ed.Conventional(), "line_y": ed.LineDelta(threshold=1),
             "line_x": ed.LineDelta(axis="x", direction="reverse", threshold=1),
             "temporal": ed.TemporalDelta(threshold=1)}.items()}


@settings(max_examples=120, deadline=None)
@given(kind=st.sampled_from(["conventional", "line_y", "line_x", "temporal"]),
       template=st.sampled_from(ed.hardware.template_names()),
       neurons=st.integers(1, 1 << 14), sram=st.integers(1, 1 << 22), buffer_events=st.integers(0, 4096))
def test_tiling_is_bit_identical_to_the_numpy_reference(pose_counts, kind, template, neurons, sram, buffer_events):
    """Every layer of the pose landmark network under each scheme's state, on core limits from
    far too small (nothing fits) to roomy."""
    counts = pose_counts[kind]
    hw = ed.load_template(template).replace(neurons_per_core=neurons, sram_per_core=sram,
                                            buffer_events=buffer_events)
    st_ = cost.state_words(counts.geom, counts.kind, counts.axis_x, counts.reverse)
    held = cost._held_sender_bytes(counts.geom, st_, hw)
    assert_same_tiling(cost._fewest_cores_tiling(counts.geom, st_, hw, held),
                       tiling_reference(counts.geom, st_, hw, held))


def test_bad_geometry_fails_loudly():
    tx, ty = np.empty((1, 2)), np.empty((1, 2))
    one = np.ones(1, np.int64)
    with pytest.raises(ValueError, match="outside the 2 x 2 mesh"):
        _mapping.snake_distance_terms(np.array([3], np.int64), np.array([2], np.int64), one, 2, 2, tx, ty)
    with pytest.raises(ValueError, match="one row per layer"):
        _mapping.snake_distance_terms(one, one, one, 3, 2, tx, ty)
