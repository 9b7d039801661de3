"""With a dask.distributed Client active (a small LocalCluster: two worker
processes on loopback), chunked quantize and count_events run on the cluster and
give results identical to the serial in-memory run."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import else_dse as ed
from else_dse import open_recording, stream

from test_stream import recording

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            yield c


PLANS = [
    ed.LineDelta(axis="x", threshold=2),
    ed.Conventional(tau=1),
    ed.Plan({"conv1": ed.LineDelta(threshold=2, loop="open"), "dw1": ed.TemporalDelta(threshold=1),
             "conv2": ed.TemporalDelta(threshold=2, loop="open")}),
]


@pytest.mark.parametrize("plan", PLANS, ids=str)
def test_count_events_on_cluster_is_serial(client, tmp_path, plan):
    rec = recording(9, 4)
    path = rec.save(tmp_path / "r.zarr")
    serial = rec.quantize(8)
    want = ed.count_events(serial, plan, lines=True)
    assert stream.active_client() is client
    q = open_recording(path, chunks={"frame": 2}).quantize(8)     # range pass on the cluster
    xr.testing.assert_identical(q.load().data, serial.data)
    xr.testing.assert_identical(ed.count_events(q, plan, lines=True), want)


@pytest.mark.parametrize("scheme", [ed.TemporalDelta(), ed.TemporalDelta(loop="open", tau=1)], ids=str)
def test_carried_event_curve_on_cluster_is_serial(client, tmp_path, scheme):
    """A temporal curve whose thresholds carry their state from chunk to chunk (a chain of
    tasks on the cluster, the state passed between worker processes)."""
    rec = recording(9, 5)
    path = rec.save(tmp_path / "r.zarr")
    want = ed.event_curve(rec.quantize(8), "conv1", scheme, [0, 1, 3, 6], error=True)
    q = open_recording(path, chunks={"frame": 2}).quantize(8)
    xr.testing.assert_identical(ed.event_curve(q, "conv1", scheme, [0, 1, 3, 6], error=True), want)


def _same_replay(a, b):
    xr.testing.assert_identical(a.recording.data, b.recording.data)
    xr.testing.assert_identical(a.stats, b.stats)
    for k in a.outputs:
        np.testing.assert_array_equal(a.outputs[k], b.outputs[k])
        np.testing.assert_array_equal(a.reference[k], b.reference[k])


def test_replay_many_on_cluster_is_serial(client, tmp_path):
    pytest.importorskip("onnxruntime")
    from else_dse.record import replay, replay_many
    from test_replay import _skip_model

    path, _ = _skip_model(tmp_path)
    rng = np.random.default_rng(5)
    clips = [[rng.normal(size=(10, 9, 3)).astype(np.float32) for _ in range(n)] for n in (2, 3, 1)]
    plan = ed.TemporalDelta(threshold=2)
    got = replay_many(path, clips, plan)
    assert len(got) == len(clips)
    for clip, rep in zip(clips, got):
        _same_replay(rep, replay(path, clip, plan, progress_bar=False))
    with pytest.raises(ValueError, match="no clips"):
        replay_many(path, [], plan)
