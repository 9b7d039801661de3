"""Chunked (dask-backed) recordings: open_recording(chunks=), streaming quantize,
count_events and event_curve give exactly the in-memory results (temporal
state carried across chunks); peak memory is
bounded by the chunk (measured in a subprocess on a recording 4x larger than the
limit, with the in-memory run as the control that exceeds it)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import else_dse as ed
from else_dse import Layer, Recording, RecordingError, open_recording, stream
from else_dse.events import curve_values

SETTINGS = settings(max_examples=25, deadline=None)


def net():
    """Odd geometry over two tensors: stride, asymmetric padding, dilation, groups."""
    return [
        Layer("conv1", "a", "conv", 3, 4, kernel=3, stride=2, padding=(0, 1, 1, 0), input_shape=(3, 7, 5)),
        Layer("dw1", "a", "depthwise", 3, 3, kernel=(3, 1), padding=(1, 1, 0, 0), dilation=(2, 1),
              groups=3, input_shape=(3, 7, 5)),
        Layer("conv2", "b", "conv", 2, 2, kernel=2, input_shape=(2, 4, 6)),
    ]


def recording(n_frames: int, seed: int = 0, zero_b: bool = False) -> Recording:
    rng = np.random.default_rng(seed)
    a = np.maximum(rng.standard_normal((n_frames, 3, 7, 5)), 0) * 3
    a[1:] = np.where(rng.random(a[1:].shape) < 0.6, a[:-1], a[1:])   # temporal redundancy
    b = np.zeros((n_frames, 2, 4, 6)) if zero_b else rng.standard_normal((n_frames, 2, 4, 6))
    return Recording.from_arrays(net(), {"a": a.astype(np.float32), "b": b.astype(np.float32)},
                                 frame_labels=[f"f{i}" for i in range(n_frames)])


SCHEMES = st.sampled_from([
    ed.Conventional(), ed.Conventional(tau=2), ed.Dense(), ed.Dense(tau=1),
    ed.LineDelta(axis="y"), ed.LineDelta(axis="x", direction="reverse"),
    ed.LineDelta(axis="y", threshold=3), ed.LineDelta(axis="x", threshold=2, loop="open", tau=1),
    ed.TemporalDelta(), ed.TemporalDelta(threshold=2), ed.TemporalDelta(threshold=1, loop="open", tau=1),
    ed.TemporalDelta(tau=2),
])


@SETTINGS
@given(n=st.integers(1, 9), k=st.integers(1, 4), scheme=SCHEMES, lines=st.booleans(),
       zero_b=st.booleans(), seed=st.integers(0, 3))
def test_count_events_chunked_is_exact(n, k, scheme, lines, zero_b, seed):
    rec = recording(n, seed, zero_b)
    assert stream.active_client() is None          # serial: chunk by chunk in this process
    want = ed.count_events(rec.quantize(8), scheme, lines=lines)
    q = rec.chunk(k).quantize(8)
    assert q.frame_chunks is not None and max(q.frame_chunks) <= k
    xr.testing.assert_identical(ed.count_events(q, scheme, lines=lines), want)


def test_plan_over_chunks_is_exact():
    rec = recording(7, 1)
    plan = ed.Plan({"conv1": ed.LineDelta(threshold=2), "dw1": ed.TemporalDelta(threshold=1, loop="open"),
                    "conv2": ed.Conventional(tau=1)})
    xr.testing.assert_identical(ed.count_events(rec.chunk(3).quantize(8), plan, lines=True),
                                ed.count_events(rec.quantize(8), plan, lines=True))


@SETTINGS
@given(n=st.integers(1, 8), k=st.integers(1, 3), error=st.booleans(),
       scheme=st.sampled_from([ed.LineDelta(), ed.LineDelta(axis="x", loop="open"),
                               ed.Conventional(), ed.TemporalDelta(loop="open"), ed.TemporalDelta(),
                               ed.TemporalDelta(tau=1)]))
def test_event_curve_chunked_is_exact(n, k, error, scheme):
    """Every scheme, with and without the error; a temporal delta in the closed loop or with
    the error carries each threshold's state across chunks."""
    rec = recording(n, 2)
    want = ed.event_curve(rec.quantize(8), "conv1", scheme, [0, 1, 4], error=error)
    got = ed.event_curve(rec.chunk(k).quantize(8), "conv1", scheme, [0, 1, 4], error=error)
    xr.testing.assert_identical(got, want)
    values = curve_values(rec.chunk(k).quantize(8), "conv1", scheme, [0, 1, 4], error=error)
    for v, a in values.items():                       # the search cache's arrays, chunked too
        np.testing.assert_array_equal(a, want[v].values, err_msg=v)


@SETTINGS
@given(n=st.integers(1, 7), k=st.integers(1, 3), bits=st.sampled_from([4, 8, 12]),
       percentile=st.sampled_from([99.99, 99.0, 90.0, 75.5, 100.0]), zero_b=st.booleans(),
       seed=st.integers(0, 3))
def test_percentile_calibration_chunked_is_exact(n, k, bits, percentile, zero_b, seed):
    rec = recording(n, seed, zero_b)
    want = rec.quantize(bits, calibration="percentile", percentile=percentile)
    got = rec.chunk(k).quantize(bits, calibration="percentile", percentile=percentile)
    xr.testing.assert_identical(got.load().data, want.data)


@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(st.sampled_from([np.float16, np.float32, np.float64]), st.integers(1, 40),
                    elements=st.floats(-1e4, 1e4, width=16) | st.just(-0.0) | st.just(0.0)),
       k=st.integers(1, 5), q=st.floats(0, 100))
def test_chunked_percentiles_match_numpy(x, k, q):
    """Exact order statistics by radix selection, numpy's interpolation, every float type."""
    from else_dse.quantiles import chunked_percentiles
    ds = xr.Dataset({"a": ("frame", x)}).chunk({"frame": k})
    got = chunked_percentiles(ds, [q, 100.0 - q, 0.0, 100.0], "test")["a"]
    assert got == [float(np.percentile(x, p)) for p in (q, 100.0 - q, 0.0, 100.0)]


@pytest.mark.parametrize("fmt", ["nc", "zarr"])
@pytest.mark.parametrize("bits", [4, 8, 12])
def test_open_chunked_and_quantize_exact(tmp_path, fmt, bits):
    rec = recording(6, 3, zero_b=True)   # an all-zero tensor: scale 1, zero point 0
    path = rec.save(tmp_path / f"r.{fmt}")
    lazy = open_recording(path, chunks={"frame": 4})
    assert lazy.frame_chunks == (4, 2)
    q, want = lazy.quantize(bits), rec.quantize(bits)
    assert q.frame_chunks == (4, 2)
    xr.testing.assert_identical(q.load().data, want.data)
    # a saved quantized recording opens chunked too
    qpath = want.save(tmp_path / f"q.{fmt}")
    xr.testing.assert_identical(ed.count_events(open_recording(qpath, chunks={"frame": 2}),
                                                ed.LineDelta()),
                                ed.count_events(want, ed.LineDelta()))


def test_chunked_errors(tmp_path):
    rec = recording(4)
    path = rec.save(tmp_path / "r.zarr")
    for bad in ({"frame": 0}, {"frame": 1.5}, {"x": 2}, 3, {"frame": True}):
        with pytest.raises(RecordingError, match="chunks must be"):
            open_recording(path, chunks=bad)
    with pytest.raises(ValueError, match=r"percentile must be in \(50, 100\]"):
        rec.chunk(2).quantize(8, calibration="percentile", percentile=40.0)
    a = recording(4).tensor("a").copy()
    a[3, 0, 0, 0] = np.nan
    ds = rec.data.copy()
    ds["a"] = (ds["a"].dims, a, ds["a"].attrs)
    with pytest.raises(RecordingError, match="tensor 'a': 1 non-finite"):
        Recording(rec.layers, ds).chunk(2).quantize(8)
    with pytest.raises(ValueError, match="unknown layer"):
        ed.count_events(rec.chunk(2).quantize(8), ed.Plan({"nope": ed.Conventional()}))


# ---- peak memory -------------------------------------------------------------------

MiB = 2 ** 20
FRAME = (16, 128, 128)          # 1 MiB of float32 per frame
N_FRAMES = 128                  # 128 MiB of float32, 32 MiB of 8-bit codes
LIMIT = 32 * MiB                # peak RSS growth allowed while streaming

_PEAK = textwrap.dedent("""
    import json, sys
    import else_dse as ed

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key):
                return int(line.split()[1]) * 1024

    path, k = sys.argv[1], int(sys.argv[2])
    warm = ed.open_recording(sys.argv[3], chunks={"frame": 1}).quantize(8)   # imports, pools
    ed.count_events(warm, ed.TemporalDelta())
    open("/proc/self/clear_refs", "w").write("5")                            # reset the peak RSS
    base = status("VmRSS")
    rec = ed.open_recording(path, chunks={"frame": k}) if k else ed.open_recording(path)
    q = rec.quantize(8)
    out = {s: int(ed.count_events(q, s)["events"].sum())
           for s in (ed.Conventional(), ed.LineDelta(threshold=2), ed.TemporalDelta())}
    print(json.dumps({"growth": status("VmHWM") - base, "events": {str(s): v for s, v in out.items()}}))
""")


def _peak(path: Path, tiny: Path, k: int) -> dict:
    res = subprocess.run([sys.executable, "-c", _PEAK, str(path), str(k), str(tiny)],
                         capture_output=True, text=True, timeout=600,
                         env={"PYTHONPATH": str(Path(ed.__file__).parents[1]), "TQDM_DISABLE": "1",
                              "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak RSS")
def test_peak_memory_bounded_by_chunk(tmp_path):
    layer = Layer("c", "x", "conv", FRAME[0], 8, kernel=3, padding=1, input_shape=FRAME)
    y, x = np.mgrid[0:FRAME[1], 0:FRAME[2]]
    base = np.sin(y / 9.0)[None] * np.cos(x / 7.0)[None] * np.arange(1, FRAME[0] + 1)[:, None, None]
    frames = np.stack([np.maximum(base * np.cos(f / 5.0), 0) for f in range(N_FRAMES)]).astype(np.float32)
    assert frames.nbytes >= 4 * LIMIT
    path = Recording.from_arrays([layer], {"x": frames}).save(tmp_path / "big.zarr")
    del frames
    tiny = recording(2).select_layers(["conv2"]).save(tmp_path / "tiny.zarr")
    chunked = _peak(path, tiny, 2)
    in_memory = _peak(path, tiny, 0)        # the control: loading everything exceeds the limit
    assert chunked["events"] == in_memory["events"]
    assert in_memory["growth"] > 4 * LIMIT, in_memory
    assert chunked["growth"] < LIMIT, chunked


def test_replay_many_serially_is_replay(tmp_path):
    pytest.importorskip("onnxruntime")
    from else_dse.record import replay, replay_many
    from test_replay import _skip_model

    path, _ = _skip_model(tmp_path)
    rng = np.random.default_rng(6)
    clips = [[rng.normal(size=(10, 9, 3)).astype(np.float32) for _ in range(n)] for n in (2, 1)]
    got = replay_many(path, clips, ed.LineDelta(threshold=3), bits=6)
    for clip, rep in zip(clips, got):
        want = replay(path, clip, ed.LineDelta(threshold=3), bits=6, progress_bar=False)
        xr.testing.assert_identical(rep.stats, want.stats)
        for k in want.outputs:
            np.testing.assert_array_equal(rep.outputs[k], want.outputs[k])
