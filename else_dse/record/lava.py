"""Lava-dl ``network.net`` (HDF5) + ground-truth spikes -> :class:`~else_dse.Recording`.

lava-dl's network exchange format (``netx``) stores one group per layer
(``layer/<i>``) with ``type`` (input, conv, flatten, dense), ``shape`` as
``(C, H, W)`` (netx reverses it to its ``(x, y, c)`` order), ``kernelSize``,
``stride``, ``padding``, ``dilation`` as ``(y, x)`` (netx reverses them with
``x[::-1]``; padding is symmetric, applied on both sides of an axis), weights
``(out, in, kh, kw)`` and neuron parameters in ``layer/<i>/neuron``. A flatten
before the first dense layer transposes ``(x, y, c) -> (c, y, x)`` and
flattens, i.e. the usual ``C*H*W`` order of :class:`else_dse.Layer` fc layers.

Ground-truth arrays of the lava-dl tests (``gts/pilotnet_lif/*.npy``) are laid
out ``(x, y, c, t)`` for conv layers (``(n, t)`` for dense ones); the converter
transposes them to ``(t, c, y, x)``, so every time step becomes a frame.

Layers are named like the ground-truth files (``conv-0`` ... ``fc-3``); the
tensor a layer reads is named after its producer (``input`` for the first conv,
``conv-<i-1>``, ``fc-<i-1>``), so ``rec.tensor("conv-0")`` holds the spikes of
``conv-0.npy``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..recording import Recording
from ..workload import Layer

__all__ = ["LavaFormatError", "read_net", "net_layers", "neuron_params", "spikes_to_frames",
           "lif_recording", "LIF_GT_DIR", "SDNN_GT_DIR"]

LIF_GT_DIR = "tests/lava/lib/dl/netx/gts/pilotnet_lif"
SDNN_GT_DIR = "tests/lava/lib/dl/netx/gts/pilotnet_sdnn"


class LavaFormatError(ValueError):
    """A ``network.net`` or ground-truth array that the converter cannot interpret."""


def _value(ds: Any) -> Any:
    v = ds[()]
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray) and v.dtype.kind == "S":
        return [s.decode() for s in v.ravel()][0] if v.size == 1 else [s.decode() for s in v.ravel()]
    if isinstance(v, np.ndarray) and v.dtype == object:
        return [s.decode() if isinstance(s, bytes) else s for s in v.ravel()]
    return v


def read_net(source: Any) -> list[dict[str, Any]]:
    """Layer configs of a netx HDF5 file (path or open file object), in layer order.

    Each entry is a dict of the group's datasets (``neuron`` a nested dict);
    numeric arrays stay numpy arrays, strings become ``str``.
    """
    import h5py  # optional at import time: only the converter needs it

    with h5py.File(source, "r") as f:
        if "layer" not in f:
            raise LavaFormatError("not a lava-dl network exchange file: no 'layer' group")
        out = []
        for key in sorted(f["layer"], key=int):
            g = f["layer"][key]
            cfg: dict[str, Any] = {"index": int(key)}
            for name, item in g.items():
                if isinstance(item, h5py.Group):
                    cfg[name] = {k: _value(v) for k, v in item.items()}
                else:
                    cfg[name] = _value(item)
            if "type" not in cfg:
                raise LavaFormatError(f"layer {key}: no 'type' dataset")
            out.append(cfg)
        out_sim = {k: _value(v) for k, v in f["simulation"].items()} if "simulation" in f else {}
    if out_sim:
        out[0]["simulation"] = out_sim
    return out


def _yx(cfg: Mapping[str, Any], field: str, default: int) -> tuple[int, int]:
    """A netx ``(y, x)`` pair (stored reversed from netx's (x, y)); scalar -> both."""
    v = cfg.get(field, default)
    a = np.atleast_1d(np.asarray(v)).astype(int)
    if a.size == 1:
        return int(a[0]), int(a[0])
    if a.size != 2:
        raise LavaFormatError(f"layer {cfg.get('index')}: {field} must be 1 or 2 ints, got {a.tolist()}")
    return int(a[0]), int(a[1])


def net_layers(configs: list[dict[str, Any]]) -> tuple[Layer, ...]:
    """else-dse layers (conv -> ``conv-<k>``, dense -> ``fc-<k>``) with exact geometry.

    Shapes are cross-checked against the stored output shapes and weight shapes;
    a mismatch raises :class:`LavaFormatError` naming the layer.
    """
    layers: list[Layer] = []
    shape: tuple[int, int, int] | None = None
    tensor = "input"
    n_conv = n_fc = 0
    for cfg in configs:
        kind = cfg["type"]
        idx = cfg["index"]
        stored = tuple(int(s) for s in np.atleast_1d(cfg.get("shape", [])))
        if kind == "input":
            if len(stored) != 3:
                raise LavaFormatError(f"layer {idx} (input): shape must be (C, H, W), got {stored}")
            shape = stored  # type: ignore[assignment]
            continue
        if shape is None:
            raise LavaFormatError(f"layer {idx} ({kind}): no input layer before it")
        if kind == "flatten":
            continue
        if kind == "conv":
            name = f"conv-{n_conv}"
            n_conv += 1
            kh, kw = _yx(cfg, "kernelSize", 1)
            sh, sw = _yx(cfg, "stride", 1)
            ph, pw = _yx(cfg, "padding", 0)
            dh, dw = _yx(cfg, "dilation", 1)
            groups = int(cfg.get("groups", 1))
            cin, cout = int(cfg["inChannels"]), int(cfg["outChannels"])
            w = np.asarray(cfg["weight"])
            if w.shape[:4] != (cout, cin // groups, kh, kw):
                raise LavaFormatError(
                    f"layer {name} (net layer {idx}): weight shape {w.shape} is not "
                    f"(out, in/groups, kh, kw) = {(cout, cin // groups, kh, kw)}")
            op = "depthwise" if groups == cin and groups > 1 else "conv"
            layer = Layer(name, tensor, op, cin, cout, kernel=(kh, kw), stride=(sh, sw),
                          padding=(ph, ph, pw, pw), dilation=(dh, dw), groups=groups,
                          input_shape=shape, output_shape=stored if len(stored) == 3 else None)
        elif kind == "dense":
            name = f"fc-{n_fc}"
            n_fc += 1
            cin, cout = int(cfg["inFeatures"]), int(cfg["outFeatures"])
            w = np.atleast_2d(np.asarray(cfg["weight"]))
            if w.shape != (cout, cin):
                raise LavaFormatError(f"layer {name} (net layer {idx}): weight shape {w.shape} is not "
                                      f"(outFeatures, inFeatures) = {(cout, cin)}")
            if int(np.prod(stored)) != cout:
                raise LavaFormatError(f"layer {name} (net layer {idx}): shape {stored} has not "
                                      f"outFeatures={cout} elements")
            layer = Layer(name, tensor, "fc", cin, cout, input_shape=shape)
        else:
            raise LavaFormatError(f"net layer {idx}: type {kind!r} is not supported "
                                  "(allowed: input, conv, flatten, dense)")
        layers.append(layer)
        shape = layer.output_shape  # type: ignore[assignment]
        tensor = name
    return tuple(layers)


def neuron_params(configs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Neuron parameters and synapse statistics per layer (input layer under ``input``),
    JSON-ready: neuron type and fields, number of neurons, non-zero weights, weight range."""
    names = ["input"] + [layer.name for layer in net_layers(configs)]
    out: dict[str, dict[str, Any]] = {}
    k = 0
    for cfg in configs:
        if cfg["type"] == "flatten":
            continue
        entry: dict[str, Any] = {"net_layer": cfg["index"], "type": cfg["type"]}
        entry["neuron"] = {key: (v.item() if isinstance(v, np.generic) else v)
                           for key, v in cfg.get("neuron", {}).items()}
        entry["neurons"] = int(np.prod(np.atleast_1d(cfg["shape"])))
        if "weight" in cfg:
            w = np.asarray(cfg["weight"], dtype=np.float64)
            entry["weights"] = int(w.size)
            entry["weights_nonzero"] = int(np.count_nonzero(w))
            entry["weight_min"], entry["weight_max"] = float(w.min()), float(w.max())
        if "bias" in cfg:
            entry["bias_nonzero"] = int(np.count_nonzero(np.asarray(cfg["bias"])))
        out[names[k]] = entry
        k += 1
    return out


def spikes_to_frames(a: np.ndarray, shape: tuple[int, int, int], name: str = "?") -> np.ndarray:
    """Lava ground truth ``(x, y, c, t)`` (or ``(n, t)`` for dense) -> ``(t, c, y, x)`` uint8.

    ``shape`` is the else-dse ``(C, H, W)`` of the tensor; the lava layout is
    checked against it and a mismatch names the tensor.
    """
    a = np.asarray(a)
    c, h, w = shape
    if a.ndim == 4:
        if a.shape[:3] != (w, h, c):
            raise LavaFormatError(f"tensor {name!r}: lava layout (x, y, c, t) expected {(w, h, c)}, "
                                  f"got {a.shape[:3]}")
        out = a.transpose(3, 2, 1, 0)
    elif a.ndim == 2:
        if (h, w) != (1, 1) or a.shape[0] != c:
            raise LavaFormatError(f"tensor {name!r}: lava layout (n, t) expected n={c} for shape "
                                  f"{shape}, got {a.shape}")
        out = a.T[:, :, None, None]
    else:
        raise LavaFormatError(f"tensor {name!r}: expected a 4-D (x, y, c, t) or 2-D (n, t) array, "
                              f"got shape {a.shape}")
    if not np.isin(out, (0, 1)).all():
        raise LavaFormatError(f"tensor {name!r}: spikes must be 0/1, found other values")
    return np.ascontiguousarray(out.astype(np.uint8))


def lif_recording(net: Any, spikes: Mapping[str, np.ndarray], *,
                  attrs: Mapping[str, Any] | None = None) -> Recording:
    """The PilotNet-LIF style recording: each layer's input spikes, one frame per time step.

    ``net`` is a ``network.net`` path/file object or the output of :func:`read_net`;
    ``spikes`` maps tensor names (``input``, ``conv-0`` ...) to lava ground-truth
    arrays (``(x, y, c, t)`` or ``(n, t)``). The output of the last layer is not read
    by any layer and is not needed.
    """
    configs = net if isinstance(net, list) else read_net(net)
    layers = net_layers(configs)
    arrays: dict[str, np.ndarray] = {}
    for layer in layers:
        if layer.input not in spikes:
            raise LavaFormatError(f"layer {layer.name!r}: no ground-truth spikes for its input "
                                  f"tensor {layer.input!r}; have {sorted(spikes)}")
        arrays[layer.input] = spikes_to_frames(spikes[layer.input], layer.input_shape, layer.input)
    n = {a.shape[0] for a in arrays.values()}
    if len(n) != 1:
        raise LavaFormatError(f"ground-truth tensors disagree on the number of time steps: "
                              f"{ {k: a.shape[0] for k, a in arrays.items()} }")
    sim = configs[0].get("simulation", {})
    meta = {"source_format": "lava-dl netx hdf5", "frame_is": "time step",
            "neurons": json.dumps(neuron_params(configs))}
    if sim:
        meta["steps_per_sample"] = int(sim.get("tSample", 0))
    meta.update(attrs or {})
    return Recording.from_arrays(layers, arrays, attrs=meta,
                                 frame_labels=[f"t{t}" for t in range(n.pop())])
