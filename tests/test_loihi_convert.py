"""The lava-dl converter and the committed PilotNet LIF recording (no network access)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from else_dse import open_recording
from else_dse.record.lava import LavaFormatError, lif_recording, net_layers, read_net, spikes_to_frames

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def rec():
    return open_recording(DATA / "pilotnet_lif.nc")


@pytest.fixture(scope="module")
def counts():
    return json.loads((DATA / "pilotnet_lif_counts.json").read_text())["tensors"]


def test_first_frame_spike_counts_equal_ground_truth(rec, counts):
    assert set(rec.tensors) == set(counts)
    for tensor in rec.tensors:
        got = int(rec.tensor(tensor)[0].sum())
        assert got == counts[tensor][0], tensor
    # every time step, not only the first
    for tensor in rec.tensors:
        assert rec.tensor(tensor).reshape(rec.n_frames, -1).sum(1).tolist() == counts[tensor], tensor


def test_pilotnet_geometry(rec):
    got = {layer.name: (layer.input, layer.op, layer.kernel, layer.stride, layer.padding,
                        layer.input_shape, layer.output_shape) for layer in rec.layers}
    assert got["conv-0"] == ("input", "conv", (3, 3), (2, 2), (0, 0, 0, 0), (3, 66, 200), (24, 32, 99))
    assert got["conv-1"][5:] == ((24, 32, 99), (36, 15, 49))
    assert got["conv-2"][5:] == ((36, 15, 49), (48, 7, 24))
    # the fourth conv: stride y 2 / x 1, padding 1 row on top and bottom
    assert got["conv-3"] == ("conv-2", "conv", (3, 3), (2, 1), (1, 1, 0, 0), (48, 7, 24), (64, 4, 22))
    assert got["conv-4"][5:] == ((64, 4, 22), (64, 2, 20))
    assert [(n, got[n][1], got[n][5], got[n][6]) for n in ("fc-0", "fc-1", "fc-2", "fc-3")] == [
        ("fc-0", "fc", (64, 2, 20), (100, 1, 1)), ("fc-1", "fc", (100, 1, 1), (50, 1, 1)),
        ("fc-2", "fc", (50, 1, 1), (10, 1, 1)), ("fc-3", "fc", (10, 1, 1), (1, 1, 1))]
    assert rec.n_frames == 24
    assert rec.tensor("input").dtype == np.uint8
    assert int(rec.attrs["steps_per_sample"]) == 16
    assert "source_sha256" in rec.attrs


def test_spikes_to_frames_transposes_lava_layout():
    a = np.zeros((5, 3, 2, 4), dtype=bool)  # (x, y, c, t)
    a[4, 1, 0, 2] = True
    out = spikes_to_frames(a, (2, 3, 5), "t")
    assert out.shape == (4, 2, 3, 5) and out[2, 0, 1, 4] == 1 and out.sum() == 1
    dense = np.zeros((7, 3), dtype=bool)
    dense[6, 1] = True
    out = spikes_to_frames(dense, (7, 1, 1), "d")
    assert out.shape == (3, 7, 1, 1) and out[1, 6, 0, 0] == 1
    with pytest.raises(LavaFormatError, match="'t'"):
        spikes_to_frames(a, (2, 5, 3), "t")  # x and y swapped
    with pytest.raises(LavaFormatError, match="0/1"):
        spikes_to_frames(a.astype(int) * 2, (2, 3, 5), "t")


def _write_net(path: Path, stride=(2, 1), padding=(1, 0)) -> None:
    """A tiny netx file: input (2, 5, 6) -> conv 4 ch -> flatten -> dense 3."""
    with h5py.File(path, "w") as f:
        f["simulation/tSample"] = 4
        g = f.create_group("layer/0")
        g["type"] = np.array([b"input"])
        g["shape"] = np.array([2, 5, 6])
        g = f.create_group("layer/1")
        g["type"] = np.array([b"conv"])
        g["shape"] = np.array([4, (5 + 2 * padding[0] - 3) // stride[0] + 1, (6 + 2 * padding[1] - 3) // stride[1] + 1])
        g["inChannels"], g["outChannels"] = 2, 4
        g["kernelSize"], g["stride"] = np.array([3, 3]), np.array(stride)
        g["padding"], g["dilation"], g["groups"] = np.array(padding), np.array([1, 1]), 1
        g["weight"] = np.ones((4, 2, 3, 3), np.float32)
        g["neuron/type"] = b"LOIHI"
        g["neuron/vThMant"] = 25
        f.create_group("layer/2")["type"] = np.array([b"flatten"])
        f["layer/2/shape"] = np.array([1, 1, int(np.prod(g["shape"][()]))])
        g = f.create_group("layer/3")
        g["type"] = np.array([b"dense"])
        g["shape"] = np.array([3, 1, 1])
        n_in = int(np.prod(f["layer/1/shape"][()]))
        g["inFeatures"], g["outFeatures"] = n_in, 3
        g["weight"] = np.ones((3, n_in), np.float32)


def test_converter_on_synthetic_net(tmp_path):
    path = tmp_path / "network.net"
    _write_net(path)
    cfg = read_net(path)
    layers = net_layers(cfg)
    conv, fc = layers
    assert (conv.stride, conv.padding, conv.output_shape) == ((2, 1), (1, 1, 0, 0), (4, 3, 4))
    assert (fc.op, fc.in_channels, fc.input_shape, fc.output_shape) == ("fc", 48, (4, 3, 4), (3, 1, 1))
    rng = np.random.default_rng(0)
    inp = rng.random((6, 5, 2, 4)) < 0.3  # (x, y, c, t)
    c0 = rng.random((4, 3, 4, 4)) < 0.3
    rec = lif_recording(cfg, {"input": inp, "conv-0": c0})
    assert rec.n_frames == 4 and rec.tensors == ("input", "conv-0")
    np.testing.assert_array_equal(rec.tensor("input"), inp.transpose(3, 2, 1, 0))
    np.testing.assert_array_equal(rec.tensor("conv-0"), c0.transpose(3, 2, 1, 0))
    assert json.loads(rec.attrs["neurons"])["conv-0"]["neurons"] == 48
    with pytest.raises(LavaFormatError, match="conv-0"):
        lif_recording(cfg, {"input": inp})


def test_converter_rejects_bad_weight_shape(tmp_path):
    path = tmp_path / "bad.net"
    _write_net(path)
    with h5py.File(path, "a") as f:
        del f["layer/1/weight"]
        f["layer/1/weight"] = np.ones((4, 2, 3, 2), np.float32)
    with pytest.raises(LavaFormatError, match="conv-0.*weight shape"):
        net_layers(read_net(path))
