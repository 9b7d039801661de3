"""count_events gives bit-identical results for every thread count (the kernels
split frames and element ranges over OpenMP threads; every default-thread test
elsewhere checks them against the numpy reference), and threads / the
ELSE_DSE_THREADS variable are validated."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings, strategies as st

import else_dse as ed
from else_dse.events import THREADS_ENV, resolve_threads

from reference import codes_st, layers_st, make_qrec

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "poselandmark_carphone.nc"

SCHEMES = st.sampled_from([
    ed.Conventional(), ed.Conventional(tau=2), ed.LineDelta(), ed.LineDelta(axis="x", direction="reverse"),
    ed.LineDelta(threshold=2), ed.LineDelta(axis="x", threshold=1, loop="open", tau=1),
    ed.TemporalDelta(), ed.TemporalDelta(threshold=2), ed.TemporalDelta(threshold=1, loop="open"),
    ed.TemporalDelta(threshold=300, loop="open"),     # 32-bit state lanes
])


@st.composite
def case(draw):
    # tensors up to a few of the temporal kernel's 4096-element ranges, which threads split
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 41)), draw(st.integers(1, 41)))
    layer = draw(layers_st(shape=shape, ops=("conv", "depthwise")))
    frames = draw(st.integers(1, 5))
    bits = draw(st.sampled_from([4, 8, 12]))
    X = draw(codes_st((frames,) + shape, bits=bits))
    return make_qrec([layer], {layer.input: X}, bits=bits)


@settings(max_examples=30, deadline=None)
@given(case(), SCHEMES, st.booleans())
def test_every_thread_count_gives_the_same_result(q, scheme, lines):
    want = ed.count_events(q, scheme, lines=lines, threads=1)
    with mock.patch.object(ed.events, "PAR_MIN", 1), \
            mock.patch.object(ed.events, "PAR_MIN_STREAMING", 1):   # threads even on small tensors
        for n in (2, 3, 7):
            xr.testing.assert_identical(ed.count_events(q, scheme, lines=lines, threads=n), want)


def test_thread_count_sources(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    assert resolve_threads(None) >= 1
    assert resolve_threads(3) == 3
    monkeypatch.setenv(THREADS_ENV, "2")
    assert resolve_threads(None) == 2
    assert resolve_threads(1) == 1                      # the argument wins
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(ValueError, match="ELSE_DSE_THREADS must be an int >= 1, got 'many'"):
        resolve_threads(None)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be an int >= 1"):
            resolve_threads(bad)


def test_streaming_kernels_need_larger_tensors_for_threads():
    """Conventional and lossless deltas only stream the codes: a team of threads starts at
    PAR_MIN_STREAMING codes per thread, the lossy recursions at PAR_MIN."""
    from else_dse.events import PAR_MIN, PAR_MIN_STREAMING, _TensorCache

    layer = ed.Layer("c", "x", "conv", 1, 1, kernel=1, input_shape=(1, 2, 2))
    q = make_qrec([layer], {"x": np.zeros((1, 1, 2, 2), np.int64)})
    cache = _TensorCache(q, q.layers, threads=2)
    X = np.zeros(2 * PAR_MIN, np.int16)
    assert PAR_MIN_STREAMING > PAR_MIN
    assert cache.threads_for(X) == 2 and cache.threads_for(X, streaming=True) == 1
    assert cache.threads_for(np.zeros(2 * PAR_MIN_STREAMING, np.int8), streaming=True) == 2


def test_large_tensor_uses_threads_and_chunks_are_exact():
    assert ed.events.PAR_MIN <= 4 * 128 * 128 * 8 // 2      # two threads at the default size limit
    layer = ed.Layer("c", "x", "conv", 4, 2, kernel=3, padding=1, input_shape=(4, 128, 128))
    X = np.random.default_rng(0).integers(-5, 6, size=(8, 4, 128, 128))
    q = make_qrec([layer], {"x": X})
    for scheme in (ed.TemporalDelta(threshold=1), ed.LineDelta(threshold=1)):
        xr.testing.assert_identical(ed.count_events(q.chunk(4), scheme, threads=2),
                                    ed.count_events(q, scheme, threads=1))


STATEFUL = st.sampled_from([ed.LineDelta(threshold=2), ed.LineDelta(axis="x", threshold=1, loop="open", tau=1),
                            ed.TemporalDelta(threshold=2), ed.TemporalDelta(threshold=1, loop="open"),
                            ed.TemporalDelta(threshold=300, loop="open")])


@st.composite
def network(draw):
    """Seven to nine layers on their own tensors, the last two sharing one, each with a scheme
    (stateful on the first six: enough groups for a pool of 2 or 3 threads)."""
    n = draw(st.integers(7, 9))
    layers, tensors = [], {}
    for i in range(n):
        tensor = f"t{min(i, n - 2)}"
        shape = tensors[tensor].shape[1:] if tensor in tensors else None
        layer = draw(layers_st(name=f"l{i}", tensor=tensor, shape=shape, ops=("conv", "depthwise")))
        layers.append(layer)
        if tensor not in tensors:
            tensors[tensor] = draw(codes_st((3,) + layer.input_shape, bits=8))
    plan = ed.Plan({layer.name: draw(STATEFUL if i < 6 else SCHEMES) for i, layer in enumerate(layers)})
    return make_qrec(layers, tensors, bits=8), plan


@settings(max_examples=25, deadline=None)
@given(network(), st.booleans())
def test_tensor_groups_on_a_thread_pool_give_the_same_result(net, lines):
    """Many tensors with stateful kernels run as groups on a thread pool: identical results."""
    q, plan = net
    want = ed.count_events(q, plan, lines=lines, threads=1)
    with mock.patch.object(ed.events, "PAR_MIN", 1):               # the pool even on small tensors
        for n in (2, 3):
            xr.testing.assert_identical(ed.count_events(q, plan, lines=lines, threads=n), want)


def test_thread_pool_only_for_many_tensors_with_stateful_kernels():
    from else_dse.events import _TensorCache, _pool_groups
    q = ed.open_recording(SHIPPED).sample_frames(3).quantize(bits=8)
    layers = q.layers
    groups = {}
    for i, layer in enumerate(layers):
        groups.setdefault(layer.input, []).append(i)
    cache = lambda n: _TensorCache(q, layers, threads=n)  # noqa: E731
    lossy = [ed.LineDelta(threshold=2)] * len(layers)
    assert _pool_groups(cache(2), layers, lossy, groups)
    assert not _pool_groups(cache(1), layers, lossy, groups)
    assert not _pool_groups(cache(2), layers, [ed.LineDelta()] * len(layers), groups)      # streaming
    assert not _pool_groups(cache(2), layers, [ed.Conventional()] * len(layers), groups)


CURVE_SCHEMES = st.sampled_from([
    ed.Conventional(), ed.LineDelta(), ed.LineDelta(axis="x", direction="reverse", tau=1),
    ed.LineDelta(loop="open"), ed.LineDelta(axis="x", loop="open"), ed.TemporalDelta(),
    ed.TemporalDelta(loop="open", tau=1),
])


@settings(max_examples=30, deadline=None)
@given(case(), CURVE_SCHEMES, st.booleans())
def test_event_curves_give_the_same_result_on_every_thread_count(q, scheme, error):
    """Curves split frames (line delta, conventional) or channels (temporal delta, with
    counters per thread) over threads: identical for every count, in memory and chunked."""
    layer = q.layers[0].name
    th = [0, 1, 3]
    want = ed.event_curve(q, layer, scheme, th, error=error, threads=1)
    with mock.patch.object(ed.events, "PAR_MIN", 1), \
            mock.patch.object(ed.events, "PAR_MIN_STREAMING", 1):   # threads even on small tensors
        for n in (2, 3, 7):
            xr.testing.assert_identical(ed.event_curve(q, layer, scheme, th, error=error, threads=n), want)
            if q.n_frames > 1:
                got = ed.event_curve(q.chunk(2), layer, scheme, th, error=error, threads=n)
                xr.testing.assert_identical(got, want)


def test_event_curve_refuses_a_bad_thread_count():
    layer = ed.Layer("c", "x", "conv", 1, 1, kernel=1, input_shape=(1, 2, 2))
    q = make_qrec([layer], {"x": np.zeros((2, 1, 2, 2), np.int64)})
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="threads must be an int >= 1"):
            ed.event_curve(q, "c", ed.LineDelta(), [0, 1], threads=bad)


STREAMING = st.sampled_from([ed.Conventional(), ed.Conventional(tau=1), ed.LineDelta(), ed.LineDelta(axis="x"),
                             ed.LineDelta(direction="reverse"), ed.LineDelta(axis="x", direction="reverse", loop="open"),
                             ed.TemporalDelta(), ed.LineDelta(threshold=1), ed.Dense(tau=1),
                             ed.LineDelta(axis="x", threshold=2, loop="open"), ed.LineDelta(direction="reverse", tau=1),
                             ed.TemporalDelta(threshold=1), ed.TemporalDelta(threshold=2, tau=1, loop="open")])


def _batch_case(data: st.DataObject) -> tuple:
    """2-5 conv/depthwise layers (the last two share a tensor) under schemes drawn from
    STREAMING: the layers, their tensors, the plan and the recording."""
    n = data.draw(st.integers(2, 5))
    layers, tensors = [], {}
    for i in range(n):
        tensor = f"t{min(i, n - 2)}"
        shape = tensors[tensor].shape[1:] if tensor in tensors else None
        layers.append(data.draw(layers_st(name=f"l{i}", tensor=tensor, shape=shape, ops=("conv", "depthwise"))))
        if tensor not in tensors:
            tensors[tensor] = data.draw(codes_st((2,) + layers[-1].input_shape, bits=8))
    plan = ed.Plan({layer.name: data.draw(STREAMING) for layer in layers})
    return layers, tensors, plan, make_qrec(layers, tensors, bits=8)


@settings(max_examples=25, deadline=None)
@given(st.data(), st.booleans())
def test_the_batch_counts_what_each_layer_alone_counts(data, lines):
    """count_events runs the schemes of all layers in one batch (else_dse.batched; lossless,
    lossy line and temporal deltas): every layer's statistics equal those of a recording of
    that layer alone, on every thread count, beside per-layer (dense) layers of the same plan
    and layers sharing a tensor."""
    layers, tensors, plan, q = _batch_case(data)
    for threads in (1, 2):
        got = ed.count_events(q, plan, lines=lines, threads=threads)
        for layer, scheme in zip(layers, plan.resolve(layers)):
            alone = make_qrec([layer], {layer.input: tensors[layer.input]}, bits=8)
            want = ed.count_events(alone, scheme, lines=lines, threads=1).isel(layer=0)
            one = got.sel(layer=layer.name)
            for v in ("events", "sops", "max_error", "rel_error"):
                np.testing.assert_array_equal(one[v].values, want[v].values)
            if lines:
                k = want.sizes["line"]
                np.testing.assert_array_equal(one["line_events"].values[:, :k], want["line_events"].values)
                assert not one["line_events"].values[:, k:].any()


@settings(max_examples=15, deadline=None)
@given(st.data())
def test_batch_kernels_zero_the_counts_they_fill(data):
    """The batch's per-position counts are not zeroed in advance (batched._counts_buffer):
    every stream and temporal-delta unit zeroes its own, so a buffer full of garbage gives
    the same statistics."""
    from else_dse import batched
    _, _, plan, q = _batch_case(data)
    want = ed.count_events(q, plan, threads=1)
    with mock.patch.object(batched, "_counts_buffer", lambda size: np.full(max(size, 1), -12345, np.int32)):
        for threads in (1, 2):
            xr.testing.assert_identical(ed.count_events(q, plan, threads=threads), want)


def test_batch_kernels_refuse_inconsistent_rows():
    from else_dse import _kernels
    codes = [np.zeros((1, 2, 4), np.uint8)]
    item = np.array([[0, _kernels.CODE_KINDS["uint8"], 0, 2, 4, 0, 0, 4, 4, 0, 0]], np.int64)
    counts, errs = np.zeros(4, np.int32), np.zeros((1, 1, 3), np.int64)
    _kernels.stream_counts(codes, item, 1, counts, errs)
    with pytest.raises(ValueError, match="item 0: outputs outside counts"):
        _kernels.stream_counts(codes, item, 1, np.zeros(3, np.int32), errs)
    with pytest.raises(ValueError, match="type or size does not match"):
        _kernels.stream_counts([np.zeros((1, 2, 4), np.int16)], item, 1, counts, errs)
    row = np.array([[0, 2, 2, 0, 0, 0, 2, 2, 1, 0, 0, 0]], np.int64)
    out = np.zeros((1, 1), np.int64)
    _kernels.layer_lines(counts, row, np.ones(4, np.uint32), out, out.copy())
    with pytest.raises(ValueError, match="row 0: inconsistent geometry or offsets"):
        _kernels.layer_lines(counts, row, np.ones(3, np.uint32), out, out.copy())


def test_delta_batch_refuses_inconsistent_items():
    from else_dse import _kernels
    cols = {n: j for j, n in enumerate(_kernels.DELTA_COLUMNS)}
    item = np.zeros((1, len(cols)), np.int64)
    for name, v in (("kind", _kernels.CODE_KINDS["uint8"]), ("C", 2), ("H", 2), ("W", 3), ("s", 1), ("theta", 1),
                    ("closed", 1), ("n_lines", 2), ("cover_pos", 2)):
        item[0, cols[name]] = v
    codes = [np.zeros((1, 2, 2, 3), np.uint8)]
    covers, units = np.ones(5, np.int64), np.array([[0, 0]], np.int64)
    lines, errs = np.zeros((1, 1, 2), np.int64), np.zeros((1, 1, 3), np.int64)
    _kernels.delta_counts(codes, item, units, 1, covers, np.zeros(1, np.int32), lines, lines.copy(), errs)
    with pytest.raises(ValueError, match="item 0: covers outside the covers array"):
        _kernels.delta_counts(codes, item, units, 1, covers[:4], np.zeros(1, np.int32), lines, lines.copy(), errs)
    with pytest.raises(ValueError, match="type or size does not match"):
        _kernels.delta_counts([np.zeros((1, 2, 2, 3), np.int16)], item, units, 1, covers, np.zeros(1, np.int32),
                              lines, lines.copy(), errs)
    with pytest.raises(ValueError, match="unit 0: no item 0 frame -1"):
        _kernels.delta_counts(codes, item, -units - 1 + np.array([[1, 0]]), 1, covers, np.zeros(1, np.int32),
                              lines, lines.copy(), errs)
    item[0, cols["op"]] = 1
    with pytest.raises(ValueError, match="item 0: counts outside the counts array"):
        _kernels.delta_counts(codes, item, np.array([[0, -1]], np.int64), 1, covers, np.zeros(5, np.int32),
                              lines, lines.copy(), errs)


def _count_in_child(q: object, queue: object) -> None:
    queue.put(int(ed.count_events(q, ed.LineDelta(threshold=2), threads=2)["events"].sum()))  # type: ignore[attr-defined]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_fork_child_of_a_process_that_ran_threads_still_counts():
    """GNU OpenMP's thread pool does not survive fork: a forked search worker whose parent ran
    a team of kernel threads would wait forever in its first team. Such a child runs the kernels
    on one thread, with the same results."""
    import multiprocessing
    rng = np.random.default_rng(0)
    layer = ed.Layer("l", "t", "conv", 8, 8, kernel=3, padding=(1, 1, 1, 1), input_shape=(8, 96, 96))
    X = rng.integers(-128, 128, (4, 8, 96, 96))
    q = make_qrec([layer], {"t": X}, bits=8)
    want = int(ed.count_events(q, ed.LineDelta(threshold=2), threads=2)["events"].sum())  # a team of 2 here
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_count_in_child, args=(q, queue))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in its first OpenMP team")
    assert child.exitcode == 0 and queue.get(timeout=5) == want
