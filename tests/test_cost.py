"""Cost model: hand-computed golden cases, properties, and clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import else_dse as ed
from else_dse.cost import (COMPONENTS, CostError, core_shares, geometry, layer_state_words,
                           map_layers, state_words)

# ---------------------------------------------------------------- helpers
TOY = dict(name="toy", n_cores=4, mesh_x=2, mesh_y=2, clock_hz=None, neurons_per_core=32,
           sram_per_core=4096, weight_bits=8, state_bits=16, neuron_words=1, event_bits=32,
           buffer_events=4, lanes=1, e_sop=1.0, e_neuron_update=2.0, e_event_out=3.0, e_hop=5.0,
           e_sram_bit=0.5, e_barrier=0.0, p_static_core=1.0, p_static_chip=0.0, t_sop=1.0,
           t_neuron_update=2.0, t_hop=4.0, t_barrier=0.0, execution="event")


def toy(**changes) -> ed.Hardware:
    return ed.Hardware.from_dict({**TOY, **changes})


def make_stats(layers, kinds, events, sops, axes=None, directions=None) -> xr.Dataset:
    """A stats Dataset with exactly the layout of else_dse.count_events."""
    n = len(layers)
    axes = axes or [""] * n
    return xr.Dataset(
        {"events": (("layer", "frame"), np.asarray(events, dtype=np.int64)),
         "sops": (("layer", "frame"), np.asarray(sops, dtype=np.int64))},
        coords={"layer": [l.name for l in layers], "scheme": ("layer", list(kinds)),
                "axis": ("layer", list(axes)), "direction": ("layer", directions or [""] * n),
                "threshold": ("layer", [0] * n), "tau": ("layer", [0] * n),
                "op": ("layer", [l.op for l in layers])},
        attrs={"layers": json.dumps([l.to_dict() for l in layers])})


A = ed.Layer("a", "x", "conv", 2, 3, kernel=3, padding=1, input_shape=(2, 4, 4))   # -> (3, 4, 4)
B = ed.Layer("b", "y", "conv", 3, 2, kernel=1, input_shape=(3, 4, 4))              # -> (2, 4, 4)


def golden_stats() -> xr.Dataset:
    return make_stats([A, B], ["conventional", "temporal_delta"],
                      events=[[10, 20], [5, 15]], sops=[[100, 200], [10, 30]])


# ---------------------------------------------------------------- golden two-layer network
def test_golden_two_layer_event_driven():
    """Every number below is worked out by hand from the module docstring's equations.

    Mapping. a: 48 neurons > 32 per core. Tiling by 1 channel group x 2 row bands
    (3 channels x 2 rows = 24 neurons) uses 2 cores like 2 groups x 1 band, but its
    busiest tile is smaller (1/2 vs 2/3). Per core: weights 3*2*9 B, buffer 4*32/8 = 16 B,
    2 rows x 3 ch x 4 cols x 2 B of potentials, plus a's share of b's temporal sender
    reference (48 words x 2 B = 96 B, spread over a's 24 of 48 neurons = 48 B):
    54 + 16 + 48 + 48 = 166 B. b: 32 neurons on 1 core: 2*3 + 16 + 2*4*4*2 = 86 B.
    Placement (snake on 2x2): a on (0,0),(1,0); b on (1,1).
    Hops. a's events come from outside via (0,0): mean distance 0.5; each event reaches
    1 channel group x min(2, 1 + 2/2) = 2 row bands -> 1 hop. b: distances 2 and 1 -> 1.5,
    1 destination -> 1.5 hops.
    """
    r = ed.estimate(golden_stats(), toy())
    assert list(r["cores"].values) == [2, 1]
    assert list(r["channel_groups"].values) == [1, 1] and list(r["row_bands"].values) == [2, 1]
    assert list(r["mem_per_core_bytes"].values) == [166.0, 86.0]
    assert list(r["first_core"].values) == [0, 2]
    np.testing.assert_allclose(r["hops"].values, [1.0, 1.5])
    np.testing.assert_allclose(r["dest_cores"].values, [2.0, 1.0])

    # neuron updates (event mode): N * (1 - exp(-S/N)), mean over the two frames
    ua = [48 * (1 - math.exp(-100 / 48)), 48 * (1 - math.exp(-200 / 48))]
    ub = [32 * (1 - math.exp(-10 / 32)), 32 * (1 - math.exp(-30 / 32))]
    np.testing.assert_allclose(r["neuron_updates"].values, [np.mean(ua), np.mean(ub)])

    # busiest core time in ns: share*S*t_sop + share*U*t_upd + (E*dest/cores*min(dist, 1) + dist)*t_hop
    # (hop_timing "pipelined", the default: one event per t_hop, the route's length once; a's
    # input enters at its own node (0, 0) for half its cores: dist 0.5)
    busy_a = [0.5 * 100 + 0.5 * ua[0] * 2 + (10 * 2 / 2 * 0.5 + 0.5) * 4,
              0.5 * 200 + 0.5 * ua[1] * 2 + (20 * 0.5 + 0.5) * 4]
    busy_b = [10 + ub[0] * 2 + (5 + 1.5) * 4, 30 + ub[1] * 2 + (15 + 1.5) * 4]
    np.testing.assert_allclose(r["frame_busy_s"].values, 1e-9 * np.array([busy_a, busy_b]))
    # "serialized": every event's whole route on the receiver, (E*dest/cores)*dist*t_hop
    ser = ed.estimate(golden_stats(), toy(hop_timing="serialized"))
    np.testing.assert_allclose(ser["frame_busy_s"].values, 1e-9 * np.array(
        [[50 + ua[0] + 10 * 0.5 * 4, 100 + ua[1] + 20 * 0.5 * 4],
         [10 + ub[0] * 2 + 5 * 1.5 * 4, 30 + ub[1] * 2 + 15 * 1.5 * 4]]))
    np.testing.assert_allclose(ser["hops"].values, r["hops"].values)     # energy: the same hops
    # streamed (the template default "auto" for event execution), the same for every scheme:
    # a (conventional, 3 of its 4 rows' inputs before its first row) and b (temporal, 1x1) overlap:
    # min(sum T, max T + sum T*k/rows). (Before the schedule applied to every scheme alike, only
    # line-delta layers overlapped and this network was layer-sequential: ``seq`` below.)
    seq = 1e-9 * (np.array(busy_a) + np.array(busy_b))
    lat = np.minimum(seq, 1e-9 * (np.maximum(busy_a, busy_b) + 0.75 * np.array(busy_a) + 0.25 * np.array(busy_b)))
    np.testing.assert_allclose(lat, seq)     # a is the slower layer and waits for 3 of 4 lines: no gain
    np.testing.assert_allclose(r["frame_total_latency_s"].values, lat)
    assert r.attrs["schedule"] == "streamed" and r.attrs["execution"] == "event"
    np.testing.assert_allclose(float(r["total_latency_sequential_s"]), seq.mean())
    np.testing.assert_allclose(float(r["total_latency_streamed_s"]), lat.mean())
    assert list(r["stream_run_start"].values) == [True, False]
    sequential = ed.estimate(golden_stats(), toy(), schedule="sequential")
    np.testing.assert_allclose(sequential["frame_total_latency_s"].values, seq)
    np.testing.assert_allclose(sequential["energy_static_pj"].values, [2e9 * seq.mean(), 1e9 * seq.mean()])
    np.testing.assert_allclose(float(r["throughput_fps"]),
                               1 / (1e-9 * max(np.mean(busy_a), np.mean(busy_b))))

    # energy per component (pJ), mean over frames
    syn = [np.mean([100, 200]), np.mean([10, 30])]
    neu = [2 * np.mean(ua), 2 * np.mean(ub)]
    evt = [np.mean([10, 20]) * (3 + 1.0 * 5), np.mean([5, 15]) * (3 + 1.5 * 5)]
    mem = [0.0, np.mean([48 + 5, 48 + 15]) * 16 * 0.5]        # temporal: read ref of 48 inputs, write per event
    static = [2 * 1.0 * 1e9 * lat.mean(), 1 * 1.0 * 1e9 * lat.mean()]   # cores * mW * s * 1e9 = pJ
    for name, want in zip(("synaptic", "neuron", "events", "memory", "static"), (syn, neu, evt, mem, static)):
        np.testing.assert_allclose(r[f"energy_{name}_pj"].values, want, err_msg=name)
    np.testing.assert_allclose(r["energy_barrier_pj"].values, [0, 0])
    total = np.add.reduce([syn, neu, evt, mem, static])
    np.testing.assert_allclose(r["energy_pj"].values, total)
    np.testing.assert_allclose(float(r["total_energy_pj"]), total.sum())

    # memory: a conventional (within-frame potentials), b temporal (sender 48 + consumer 32 words)
    np.testing.assert_allclose(r["state_frame_bytes"].values, [96, 0])
    np.testing.assert_allclose(r["state_persistent_bytes"].values, [0, 160])
    np.testing.assert_allclose(r["weight_bytes"].values, [54, 6])
    np.testing.assert_allclose(r["buffer_bytes"].values, [32, 16])
    assert float(r["total_state_persistent_bytes"]) == 160 and float(r["total_state_frame_bytes"]) == 96
    assert float(r["peak_mem_per_core_bytes"]) == 166 and int(r["total_cores"]) == 3
    np.testing.assert_allclose(r["events_out"].values, [10, 0])     # a produces b's input
    assert bool(r["fits"]) and r.attrs["overflow"] == ""


def test_golden_two_layer_timestep():
    """Time-stepped: every neuron is updated every step, all layers work in parallel, then a barrier."""
    hw = toy(execution="timestep", t_barrier=100.0, e_barrier=7.0)
    r = ed.estimate(golden_stats(), hw)
    assert r.attrs["schedule"] == "step"
    np.testing.assert_allclose(r["neuron_updates"].values, [48, 32])
    busy_a = np.array([0.5 * 100 + 0.5 * 48 * 2 + (10 * 0.5 + 0.5) * 4, 0.5 * 200 + 0.5 * 48 * 2 + (20 * 0.5 + 0.5) * 4])
    busy_b = np.array([10 + 32 * 2 + (5 + 1.5) * 4, 30 + 32 * 2 + (15 + 1.5) * 4])
    step = 1e-9 * (np.maximum(busy_a, busy_b) + 100)
    np.testing.assert_allclose(r["frame_total_latency_s"].values, step)
    np.testing.assert_allclose(r["energy_barrier_pj"].values, [2 * 7.0, 7.0])
    np.testing.assert_allclose(r["energy_neuron_pj"].values, [96, 64])
    np.testing.assert_allclose(float(r["throughput_fps"]),
                               1 / (1e-9 * (max(busy_a.mean(), busy_b.mean()) + 100)))
    seq = ed.estimate(golden_stats(), hw, schedule="sequential")
    np.testing.assert_allclose(seq["frame_total_latency_s"].values, 1e-9 * (busy_a + busy_b + 100))
    # the execution argument overrides the template
    ev = ed.estimate(golden_stats(), hw, execution="event")
    assert ev.attrs["execution"] == "event" and float(ev["neuron_updates"][0]) < 48


def test_golden_line_delta_state_words_and_pipelining():
    layer = ed.Layer("c", "x", "conv", 2, 4, kernel=3, padding=(0, 1, 1, 1), input_shape=(2, 5, 5))
    # forward y: r_lo = ceil((0 - 2)/1) = -2 -> 2 virtual rows; H_out = 4
    w = layer_state_words(layer, "line_delta", "y")
    # line streaming: rows in flight (k-1)*d//s + 1 = 3, plus the previous row: 4 rows of 4 x 5
    assert w == {"sender": 1 * 2 * 5, "consumer": 4 * (4 + 2) * 5, "streaming": 4 * 5 * 4, "persistent": False,
                 "copies": 4 * 5 * (6 - 1), "ref_reads": 6 * 2 * 5}
    # reverse scan: padding flipped to top 1 -> 1 virtual row; needed lines 0..5 (h_max = 3 - 1 + 2 + 1)
    w = layer_state_words(layer, "line_delta", "y", "reverse")
    assert w["consumer"] == 4 * 5 * 5 and w["copies"] == 4 * 5 * 4
    # along x: columns; W_out = 5, left padding 1 -> 1 virtual column, lines of length H = 5
    w = layer_state_words(layer, "line_delta", "x")
    assert w["consumer"] == 4 * 4 * (5 + 1) and w["sender"] == 2 * 5 and w["copies"] == 4 * 4 * 5
    assert w["streaming"] == 4 * 4 * 4          # 3 columns in flight + 1 previous, each H_out = 4 long
    assert layer_state_words(layer, "temporal_delta") == {
        "sender": 50, "consumer": 80, "streaming": 80, "persistent": True, "copies": 0, "ref_reads": 50}
    assert layer_state_words(layer, "conventional")["consumer"] == 80
    assert layer_state_words(layer, "conventional")["streaming"] == 4 * 5 * 3
    with pytest.raises(CostError, match="scheme kind must be one of"):
        layer_state_words(layer, "sigma")

    # two line-delta layers overlap line by line: min(sum T, max T + sum T*k/rows)
    p1 = ed.Layer("p1", "x", "conv", 2, 4, kernel=3, padding=(0, 1, 1, 1), input_shape=(2, 20, 5))  # 19 rows
    p2 = ed.Layer("p2", "y", "conv", 4, 4, kernel=3, padding=1, input_shape=(4, 19, 5))
    stats = make_stats([p1, p2], ["line_delta", "line_delta"], [[30], [40]], [[300], [400]],
                       axes=["y", "y"])
    r = ed.estimate(stats, toy(neurons_per_core=500, n_cores=4))   # 420 + 400 neurons: one core each
    assert list(r["cores"].values) == [1, 1] and int(r["total_cores"]) == 2
    busy = r["frame_busy_s"].values[:, 0]
    rows = np.array([19 + 2, 19 + 1])                       # extended rows: 2 and 1 virtual
    want = min(busy.sum(), busy.max() + (busy * 3 / rows).sum())
    np.testing.assert_allclose(float(r["total_latency_streamed_s"]), want)
    np.testing.assert_allclose(float(r["total_latency_sequential_s"]), busy.sum())
    assert float(r["total_latency_s"]) == float(r["total_latency_streamed_s"]) < busy.sum()
    # on one shared core the two layers cannot overlap
    shared = ed.estimate(stats, toy(neurons_per_core=4096, n_cores=4))
    assert int(shared["total_cores"]) == 1
    assert float(shared["total_latency_streamed_s"]) == float(shared["total_latency_sequential_s"])
    # frame state: sender s*C*W + consumer with virtual rows, 2 bytes per word
    np.testing.assert_allclose(r["state_frame_bytes"].values, [2 * (2 * 5 + 4 * 21 * 5), 2 * (4 * 5 + 4 * 20 * 5)])
    # memory traffic: 2 * copies + ref_reads (needed lines 0..20 / 0..19, bottom padding included)
    # + one reference write per event
    np.testing.assert_allclose(r["energy_memory_pj"].values,
                               [(2 * 4 * 5 * 20 + 21 * 2 * 5 + 30) * 16 * 0.5,
                                (2 * 4 * 5 * 19 + 20 * 4 * 5 + 40) * 16 * 0.5])


def test_golden_small_layers_share_one_core():
    """With 1024 neurons per core both layers fit one core together: a takes 3 ch x 4 rows
    (70 B + 4 rows x 48 B = 262 B), b 86 B, one shared 16 B buffer -> 332 B; no hops."""
    hw = toy(neurons_per_core=1024, execution="timestep", t_barrier=10.0, e_barrier=4.0)
    r = ed.estimate(golden_stats(), hw)
    assert list(r["cores"].values) == [1, 1] and list(r["layers_on_core"].values) == [2, 2]
    assert int(r["total_cores"]) == 1 and list(r["first_core"].values) == [0, 0]
    np.testing.assert_allclose(r["hops"].values, [0.0, 0.0])
    np.testing.assert_allclose(r["mem_per_core_bytes"].values, [332, 332])
    np.testing.assert_allclose(r["buffer_bytes"].values, [8, 8])
    np.testing.assert_allclose(r["energy_barrier_pj"].values, [2.0, 2.0])
    busy_a = np.array([100 + 48 * 2, 200 + 48 * 2])
    busy_b = np.array([10 + 32 * 2, 30 + 32 * 2])
    step = 1e-9 * (busy_a + busy_b + 10)                    # one core runs both layers in a step
    np.testing.assert_allclose(r["frame_total_latency_s"].values, step)
    np.testing.assert_allclose(r["energy_static_pj"].values, [0.5e9 * step.mean()] * 2)
    np.testing.assert_allclose(float(r["throughput_fps"]), 1 / (1e-9 * (busy_a + busy_b).mean() + 10e-9))


# ---------------------------------------------------------------- mapping
def test_overflow_names_layer_limit_and_amount():
    r = ed.estimate(golden_stats(), toy(sram_per_core=60))
    assert not bool(r["fits"])
    msg = r.attrs["overflow"]
    # finest tiling of a: 18 B weights + 16 B buffer + 4 cols * 2 B + 96 B / 12 rows-channels = 50 B
    assert "layer 'a'" not in msg
    r = ed.estimate(golden_stats(), toy(sram_per_core=40))
    msg = r.attrs["overflow"]
    assert "layer 'a': at one channel and one row per core it needs 50 bytes per core, over " \
           "sram_per_core=40 by 10" in msg
    assert float(r["overflow_sram_bytes"].sel(layer="a")) == 10
    r = ed.estimate(golden_stats(), toy(neurons_per_core=3))
    assert "layer 'a': one output row of one channel needs 4 neurons, over neurons_per_core=3 by 1" \
        in r.attrs["overflow"]
    r = ed.estimate(golden_stats(), toy(n_cores=2, mesh_x=1, mesh_y=2))
    assert r.attrs["overflow"] == "the mapping needs 3 cores, over n_cores=2 by 1"
    assert bool(r["layer_fits"].all()) and not bool(r["fits"])


@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 40), rows=st.integers(1, 40), n_c=st.integers(1, 40), n_r=st.integers(1, 40),
       sops=st.integers(0, 10**9))
def test_per_core_sops_sum_to_layer_and_more_cores_never_raise_busiest(c, rows, n_c, n_r, sops):
    n_c, n_r = min(n_c, c), min(n_r, rows)
    shares = core_shares(c, rows, n_c, n_r)
    assert np.isclose((shares * sops).sum(), sops)
    assert shares.max() == pytest.approx(-(-c // n_c) * -(-rows // n_r) / (c * rows))
    if n_c < c:
        assert core_shares(c, rows, n_c + 1, n_r).max() <= shares.max() + 1e-12
    if n_r < rows:
        assert core_shares(c, rows, n_c, n_r + 1).max() <= shares.max() + 1e-12


@settings(max_examples=25, deadline=None)
@given(npc=st.integers(16, 4096), sram=st.integers(200, 10**6))
def test_mapping_respects_limits_and_busiest_share_matches_core_shares(npc, sram):
    layers = [A, B, ed.Layer("f", "z", "fc", 32, 10, input_shape=(2, 4, 4))]
    geom = geometry(layers)
    kind = np.array([1, 3, 1])
    sw = state_words(geom, kind, np.zeros(3, bool))
    hw = toy(neurons_per_core=npc, sram_per_core=sram)
    m = map_layers(geom, sw, hw)
    for i in range(3):
        if m.fits[i]:
            assert m.neurons_per_core_used[i] <= npc and m.mem_per_core_bytes[i] <= sram
        shares = core_shares(int(geom.c_out[i]), int(sw.rows[i]), int(m.channel_groups[i]),
                             int(m.row_bands[i]))
        assert shares.size == m.cores[i]
        assert shares.max() == pytest.approx(m.share[i])


# ---------------------------------------------------------------- properties of estimate
NET = [A, B, ed.Layer("c", "y", "depthwise", 3, 3, kernel=3, stride=2, padding=(0, 1, 0, 1), groups=3,
                      input_shape=(3, 4, 4)),
       ed.Layer("f", "z", "fc", 12, 5, input_shape=(3, 2, 2))]
KIND_CHOICES = st.sampled_from(["dense", "conventional", "line_delta", "temporal_delta"])
PARAMS = ("e_sop", "e_neuron_update", "e_event_out", "e_hop", "e_sram_bit", "e_barrier", "p_static_core",
          "p_static_chip", "t_sop", "t_neuron_update", "t_hop", "t_barrier")


def _net_stats(kinds, events, sops):
    kinds = [k if not (k == "line_delta" and l.op == "fc") else "temporal_delta" for k, l in zip(kinds, NET)]
    axes = ["y" if k == "line_delta" else "" for k in kinds]
    return make_stats(NET, kinds, events, sops, axes=axes)


counts = st.lists(st.integers(0, 5000), min_size=8, max_size=8).map(lambda v: np.array(v).reshape(4, 2))


@settings(max_examples=40, deadline=None)
@given(kinds=st.lists(KIND_CHOICES, min_size=4, max_size=4), ev=counts, sp=counts, more_e=counts,
       more_s=counts, template=st.sampled_from(["neuronflow", "loihi2", "seneca"]),
       execution=st.sampled_from(["event", "timestep"]),
       schedule=st.sampled_from([None, "sequential", "streamed", "step"]))
def test_energy_and_latency_monotone_in_events(kinds, ev, sp, more_e, more_s, template, execution, schedule):
    hw = ed.load_template(template)
    lo = ed.estimate(_net_stats(kinds, ev, sp), hw, execution, schedule)
    hi = ed.estimate(_net_stats(kinds, ev + more_e, sp + more_s), hw, execution, schedule)
    assert float(hi["total_energy_pj"]) >= float(lo["total_energy_pj"]) * (1 - 1e-12)
    assert float(hi["total_latency_s"]) >= float(lo["total_latency_s"]) * (1 - 1e-12)
    assert (hi["energy_pj"].values >= lo["energy_pj"].values * (1 - 1e-12) - 1e-9).all()


@settings(max_examples=40, deadline=None)
@given(kinds=st.lists(KIND_CHOICES, min_size=4, max_size=4), ev=counts, sp=counts,
       param=st.sampled_from(PARAMS), factor=st.floats(1.0, 10.0), add=st.floats(0.0, 50.0),
       template=st.sampled_from(["neuronflow", "loihi2", "seneca"]),
       execution=st.sampled_from(["event", "timestep"]))
def test_energy_and_latency_monotone_in_every_energy_and_time_parameter(kinds, ev, sp, param, factor, add,
                                                                        template, execution):
    hw = ed.load_template(template)
    stats = _net_stats(kinds, ev, sp)
    lo = ed.estimate(stats, hw, execution)
    hi = ed.estimate(stats, hw.replace(**{param: getattr(hw, param) * factor + add}), execution)
    assert float(hi["total_energy_pj"]) >= float(lo["total_energy_pj"]) * (1 - 1e-12)
    assert float(hi["total_latency_s"]) >= float(lo["total_latency_s"]) * (1 - 1e-12)
    assert (hi["energy_pj"].values >= lo["energy_pj"].values * (1 - 1e-12) - 1e-9).all()
    if param == "e_sop" and add >= 0.01 and sp.sum() > 0:
        assert float(hi["total_energy_pj"]) > float(lo["total_energy_pj"])


@settings(max_examples=30, deadline=None)
@given(kinds=st.lists(KIND_CHOICES, min_size=4, max_size=4),
       template=st.sampled_from(["neuronflow", "loihi2", "seneca"]),
       execution=st.sampled_from(["event", "timestep"]))
def test_zero_events_leave_only_fixed_and_static_costs(kinds, template, execution):
    hw = ed.load_template(template)
    zero = np.zeros((4, 2), dtype=np.int64)
    stats = _net_stats(kinds, zero, zero)
    r = ed.estimate(stats, hw, execution)
    assert float(r["total_energy_synaptic_pj"]) == 0 and float(r["total_energy_events_pj"]) == 0
    kinds = list(stats["scheme"].values)
    fixed_words = sum(2 * w["copies"] * hw.neuron_words + w["ref_reads"]
                      for w in (layer_state_words(l, k, "y") for l, k in zip(NET, kinds)))
    assert float(r["total_energy_memory_pj"]) == pytest.approx(fixed_words * hw.state_bits * hw.e_sram_bit)
    neurons = sum(int(np.prod(l.output_shape)) for l in NET)
    want_neuron = neurons * hw.e_neuron_update if execution == "timestep" else 0.0
    assert float(r["total_energy_neuron_pj"]) == pytest.approx(want_neuron)
    fixed = sum(float(r[f"total_energy_{c}_pj"]) for c in ("neuron", "memory", "barrier", "static"))
    assert float(r["total_energy_pj"]) == pytest.approx(fixed)
    # the static part is the used cores' power over the frame latency
    p = int(r["total_cores"]) * hw.p_static_core + hw.p_static_chip
    assert float(r["total_energy_static_pj"]) == pytest.approx(p * 1e9 * float(r["total_latency_s"]))
    if execution == "event" and all(k in ("dense", "conventional") for k in kinds):
        assert float(r["total_latency_s"]) == pytest.approx(hw.t_barrier * 1e-9)
        assert float(r["total_energy_pj"]) == pytest.approx(float(r["total_energy_barrier_pj"])
                                                            + float(r["total_energy_static_pj"]))


def test_components_sum_to_energy_and_per_frame_means():
    r = ed.estimate(_net_stats(["line_delta", "temporal_delta", "line_delta", "conventional"],
                               np.arange(8).reshape(4, 2) * 10, np.arange(8).reshape(4, 2) * 90),
                    ed.load_template("seneca"))
    total = sum(r[f"energy_{c}_pj"] for c in COMPONENTS)
    np.testing.assert_allclose(total.values, r["energy_pj"].values)
    np.testing.assert_allclose(r["frame_energy_pj"].mean("frame").values, r["energy_pj"].values)
    np.testing.assert_allclose(float(r["total_energy_pj"]), r["energy_pj"].sum().item())
    for c in COMPONENTS:
        np.testing.assert_allclose(float(r[f"total_energy_{c}_pj"]), r[f"energy_{c}_pj"].sum().item())
    assert r["sops"].dims == ("layer",) and list(r["layer"].values) == [l.name for l in NET]


def test_estimate_is_indexed_by_layer():
    r = ed.estimate(golden_stats(), toy())
    assert r.sel(layer="b")["cores"].item() == 1 and r.isel(layer=0)["layer"].item() == "a"


@settings(max_examples=30, deadline=None)
@given(kinds=st.lists(KIND_CHOICES, min_size=4, max_size=4), ev=counts, sp=counts,
       n_cores=st.integers(4, 64), npc=st.sampled_from([16, 24, 48, 1024]),
       execution=st.sampled_from(["event", "timestep"]))
def test_spread_uses_free_cores_and_never_raises_a_busiest_share(kinds, ev, sp, n_cores, npc, execution):
    side = int(math.ceil(n_cores ** 0.5))
    hw = toy(n_cores=n_cores, mesh_x=side, mesh_y=side, neurons_per_core=npc, sram_per_core=10**6)
    stats = _net_stats(kinds, ev, sp)
    lo = ed.estimate(stats, hw, execution)
    hi = ed.estimate(stats, hw, execution, spread=True)
    assert (hi["busiest_core_share"].values <= lo["busiest_core_share"].values + 1e-12).all()
    assert (hi["cores"].values >= lo["cores"].values).all()
    if bool(lo["fits"]):
        assert int(hi["total_cores"]) <= n_cores and bool(hi["fits"])
    else:
        assert int(hi["total_cores"]) == int(lo["total_cores"])
    np.testing.assert_allclose(hi["sops"].values, lo["sops"].values)


def test_spread_golden():
    """With 4 cores the spare one cannot help a (3 bands of ceil(4/3) = 2 rows is still 2 bands).
    With 5, a gets 4 row bands (its work, twice b's, sets the level) and its busiest share halves."""
    r = ed.estimate(golden_stats(), toy(), spread=True)
    assert list(r["cores"].values) == [2, 1] and int(r["total_cores"]) == 3
    hw = toy(n_cores=5, mesh_x=3, mesh_y=2)
    r0 = ed.estimate(golden_stats(), hw)
    r = ed.estimate(golden_stats(), hw, spread=True)
    assert list(r0["cores"].values) == [2, 1] and list(r["cores"].values) == [4, 1]
    assert list(r["row_bands"].values) == [4, 1] and int(r["total_cores"]) == 5
    np.testing.assert_allclose(r["busiest_core_share"].values, [0.25, 1.0])
    assert float(r["throughput_fps"]) > float(r0["throughput_fps"])
    assert float(r["total_energy_static_pj"]) != float(r0["total_energy_static_pj"])
    assert r.attrs["spread"] == 1


# ---------------------------------------------------------------- errors
def test_mismatched_stats_give_clear_errors():
    hw = toy()
    good = golden_stats()
    with pytest.raises(CostError, match="must be the xarray.Dataset of else_dse.count_events"):
        ed.estimate(good["events"], hw)
    with pytest.raises(CostError, match="stats lacks variable 'sops'"):
        ed.estimate(good.drop_vars("sops"), hw)
    with pytest.raises(CostError, match=r"must have dims \('layer', 'frame'\)"):
        ed.estimate(good.transpose("frame", "layer"), hw)
    no_attrs = good.copy()
    no_attrs.attrs = {}
    with pytest.raises(CostError, match="lacks attrs\\['layers'\\]"):
        ed.estimate(no_attrs, hw)
    with pytest.raises(CostError, match="lacks coordinate 'scheme'"):
        ed.estimate(good.drop_vars("scheme"), hw)
    other = good.assign_coords(layer=["a", "zz"])
    with pytest.raises(CostError, match=r"stats layers \['zz'\] have no geometry"):
        ed.estimate(other, hw)
    with pytest.raises(CostError, match="layer 'b': scheme 'sigma_delta' is not one of"):
        ed.estimate(good.assign_coords(scheme=("layer", ["conventional", "sigma_delta"])), hw)
    bad = good.copy()
    bad["events"] = bad["events"] * -1
    with pytest.raises(CostError, match="finite counts >= 0"):
        ed.estimate(bad, hw)
    fc = ed.Layer("f", "x", "fc", 32, 4, input_shape=(2, 4, 4))
    with pytest.raises(CostError, match="layer 'f': line_delta needs a conv/depthwise layer"):
        ed.estimate(make_stats([fc], ["line_delta"], [[1]], [[4]], axes=["y"]), hw)
    with pytest.raises(CostError, match="layer 'a': line_delta needs .* axis 'y' or 'x'"):
        ed.estimate(make_stats([A], ["line_delta"], [[1]], [[4]], axes=[""]), hw)
    with pytest.raises(CostError, match="hardware must be an else_dse.Hardware"):
        ed.estimate(good, TOY)
    with pytest.raises(CostError, match="execution must be one of"):
        ed.estimate(good, hw, execution="async")
    with pytest.raises(CostError, match="schedule must be one of"):
        ed.estimate(good, hw, schedule="parallel")
    with pytest.raises(CostError, match="not a JSON list"):
        ed.estimate(good.assign_attrs(layers="[{"), hw)


def test_subset_of_layers_is_estimated_with_its_own_geometry():
    r = ed.estimate(golden_stats().sel(layer=["b"]), toy())
    assert list(r["layer"].values) == ["b"] and int(r["total_cores"]) == 1


def test_estimate_of_count_events_output():
    rng = np.random.default_rng(0)
    l1 = ed.Layer("c1", "x", "conv", 3, 8, kernel=3, stride=2, padding=(0, 1, 0, 1), input_shape=(3, 16, 16))
    l2 = ed.Layer("c2", "y", "depthwise", 8, 8, kernel=3, padding=1, groups=8, input_shape=(8, 8, 8))
    arrays = {"x": rng.random((3, 3, 16, 16), dtype=np.float32),
              "y": np.maximum(rng.standard_normal((3, 8, 8, 8)), 0).astype(np.float32)}
    q = ed.Recording.from_arrays([l1, l2], arrays).quantize(bits=8)
    plan = ed.Plan({"c1": ed.LineDelta(axis="x", direction="reverse"), "c2": ed.TemporalDelta()})
    stats = ed.count_events(q, plan)
    r = ed.estimate(stats, ed.load_template("neuronflow"))
    np.testing.assert_allclose(r["sops"].values, stats["sops"].mean("frame").values)
    w1 = layer_state_words(l1, "line_delta", "x", "reverse")
    assert float(r["state_frame_bytes"][0]) == (w1["sender"] + w1["consumer"]) * 2
    assert float(r["state_persistent_bytes"][1]) == (8 * 64 + 8 * 64) * 2
    assert bool(r["fits"])


@settings(max_examples=40, deadline=None)
@given(npc=st.integers(1, 64), sram=st.integers(16, 400), n_cores=st.integers(1, 4),
       kinds=st.lists(KIND_CHOICES, min_size=4, max_size=4))
def test_overflow_text_is_empty_exactly_when_the_mapping_fits(npc, sram, n_cores, kinds):
    hw = toy(neurons_per_core=npc, sram_per_core=sram, n_cores=n_cores, mesh_x=2, mesh_y=2)
    r = ed.estimate(_net_stats(kinds, np.ones((4, 2), np.int64), np.ones((4, 2), np.int64)), hw)
    msg = r.attrs["overflow"]
    assert isinstance(msg, str) and (msg == "") == bool(r["fits"])
    for name in r["layer"].values[~r["layer_fits"].values]:      # every overflowing layer is named
        assert f"layer {str(name)!r}:" in msg
    if int(r["total_cores"]) > n_cores:
        assert f"over n_cores={n_cores} by {int(r['total_cores']) - n_cores}" in msg


def test_seneca_sop_time_is_per_lane():
    """SENeCA: one SOP per NPE per 4 ns cycle, 8 NPEs -> a core's S SOPs take S * 4 ns / 8."""
    hw = ed.load_template("seneca").replace(t_neuron_update=1e-12, t_hop=1e-12)   # times > 0: negligible
    layer = ed.Layer("a", "x", "conv", 2, 3, kernel=3, padding=1, input_shape=(2, 4, 4))
    r = ed.estimate(make_stats([layer], ["conventional"], events=[[10, 30]], sops=[[800, 1600]]), hw)
    assert int(r["cores"].item()) == 1 and float(r["busiest_core_share"].item()) == 1.0
    assert float(r["busy_s"].item()) == pytest.approx(1200 * 4e-9 / 8, rel=1e-9)   # 0.6 us, not 75 ns
    # 8 lanes at 250 MHz: 2 SOPs per ns per core
    assert hw.lanes / hw.t_sop == pytest.approx(2.0)
