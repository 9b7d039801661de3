"""Event statistics cached per (recording content, layer, scheme, level) and trial evaluation."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np
import xarray as xr

from ..events import count_events, event_curve
from ..recording import QuantizedRecording, Recording
from ..schemes import Conventional, Dense, LineDelta, Plan, Scheme, TemporalDelta
from .objectives import OBJECTIVES, Fits

if TYPE_CHECKING:
    from .problem import Config, Problem


@dataclass(frozen=True)
class Evaluation:
    """Objective values, constraint values (<= 0 feasible) and the JSON-able breakdown."""

    values: tuple[float, ...]
    constraints: tuple[float, ...]
    user_attrs: dict[str, Any]


# ---- statistics with a content-keyed cache ---------------------------------------------------

_HASHES: dict[int, tuple[Any, str]] = {}
_QRECS: dict[tuple[str, int, str], QuantizedRecording] = {}
_ROWS: dict[tuple, tuple[np.ndarray, ...]] = {}
_LOCK = threading.Lock()
_CURVE_VARS = ("events", "sops", "max_error", "rel_error")


def content_hash(recording: Recording) -> str:
    """A hash of the recording's geometry, codes or values and quantization (cached per object)."""
    key = id(recording)
    hit = _HASHES.get(key)
    if hit is not None and hit[0]() is recording:
        return hit[1]
    h = hashlib.blake2b(digest_size=16)
    h.update(recording.data.attrs.get("layers", "").encode())
    for v in sorted(recording.data.data_vars):
        da = recording.data[v]
        a = np.ascontiguousarray(da.values)
        h.update(f"{v}|{da.attrs.get('tensor')}|{a.dtype}|{a.shape}|{da.attrs.get('scale')}|"
                 f"{da.attrs.get('zero_point')}".encode())
        h.update(a.data)
    h.update(f"bits={recording.data.attrs.get('bits')}|{recording.data.attrs.get('calibration')}".encode())
    digest = h.hexdigest()
    import weakref
    try:
        _HASHES[key] = (weakref.ref(recording), digest)
    except TypeError:
        pass
    return digest


def _quantized(rec: Recording, bits: int, calibration: str, content: str) -> QuantizedRecording:
    if isinstance(rec, QuantizedRecording):
        return rec
    key = (content, bits, calibration)
    q = _QRECS.get(key)
    if q is None:
        q = rec.quantize(bits=bits, calibration=calibration)  # type: ignore[arg-type]
        with _LOCK:
            if len(_QRECS) >= 8:
                _QRECS.pop(next(iter(_QRECS)))
            _QRECS[key] = q
    return q


def _family(s: Scheme) -> Scheme:
    if isinstance(s, (LineDelta, TemporalDelta)):
        return dataclasses.replace(s, threshold=0)
    if isinstance(s, Conventional):
        return Conventional(tau=0)
    return s


def _level(s: Scheme) -> int:
    """The value event_curve varies for this scheme: the threshold, or tau of Conventional."""
    return int(s.tau) if isinstance(s, Conventional) else int(getattr(s, "threshold", 0))


def _layer_rows(qrec: QuantizedRecording, content: str, layer_name: str, scheme: Scheme,
                levels: tuple[Iterable[int], Iterable[int]] = ((), ())) -> tuple[np.ndarray, ...]:
    """(events, sops, max_error, rel_error) of one layer under one scheme, per frame (cached).

    On a miss, every level of ``levels = (thresholds, taus)`` (thresholds of a delta
    scheme; tau of conventional) is computed in the same :func:`event_curve` call.
    """
    base = (content, qrec.bits, qrec.calibration, layer_name)
    key = base + (scheme,)
    rows = _ROWS.get(key)
    if rows is not None:
        return rows
    if isinstance(scheme, Dense):
        ds = count_events(qrec.select_layers([layer_name]), scheme)
        rows = tuple(np.asarray(ds[v].values[0]) for v in _CURVE_VARS)
        _ROWS[key] = rows
        return rows
    fam = _family(scheme)
    want = sorted({_level(scheme)} | {int(v) for v in levels[1 if isinstance(scheme, Conventional) else 0]})
    want = [v for v in want if base + (_at_level(fam, v),) not in _ROWS] or [_level(scheme)]
    curve = event_curve(_one_layer(qrec, content, layer_name), layer_name, fam, want)
    arrays = [np.asarray(curve[v].values) for v in _CURVE_VARS]
    with _LOCK:
        for i, v in enumerate(want):
            _ROWS[base + (_at_level(fam, v),)] = tuple(a[i].copy() for a in arrays)
    return _ROWS[key]


_ONE: dict[tuple, QuantizedRecording] = {}


def _one_layer(qrec: QuantizedRecording, content: str, layer_name: str) -> QuantizedRecording:
    """The quantized recording of one layer (cached): the kernels then find its tensor at once."""
    key = (content, qrec.bits, qrec.calibration, layer_name)
    one = _ONE.get(key)
    if one is None:
        one = qrec.select_layers([layer_name])
        with _LOCK:
            if len(_ONE) > 4096:
                _ONE.clear()
            _ONE[key] = one
    return one


def _at_level(fam: Scheme, v: int) -> Scheme:
    if isinstance(fam, Conventional):
        return Conventional(tau=v)
    return dataclasses.replace(fam, threshold=v)  # type: ignore[type-var]


def plan_stats(recording: Recording, plan: Plan | Scheme, bits: int = 8, calibration: str = "max", *,
               content: str | None = None,
               levels: Mapping[str, tuple[Iterable[int], Iterable[int]]] | None = None) -> xr.Dataset:
    """``count_events(recording.quantize(bits), plan)`` from the per-layer cache.

    Equal to :func:`else_dse.count_events` (same variables, coordinates and
    attributes) but each (recording content, layer, scheme, bits) is computed once
    per process; thresholds come from :func:`else_dse.event_curve`. ``levels``
    (``{layer: (thresholds, taus)}``) are computed along with a missing entry.
    """
    content = content or content_hash(recording)
    qrec = _quantized(recording, bits, calibration, content)
    plan = plan if isinstance(plan, Plan) else Plan({}, default=plan)
    layers = qrec.layers
    schemes = plan.resolve(layers)
    rows = [_layer_rows(qrec, content, layer.name, s, (levels or {}).get(layer.name, ((), ())))
            for layer, s in zip(layers, schemes)]
    F = qrec.n_frames
    stack = lambda i: np.stack([r[i] for r in rows])  # noqa: E731
    LF = ("layer", "frame")
    data = {
        "events": (LF, stack(0).astype(np.int64)),
        "sops": (LF, stack(1).astype(np.int64)),
        "dense_events": (LF, np.repeat(np.array([[l.dense_events] for l in layers], np.int64), F, axis=1)),
        "dense_macs": (LF, np.repeat(np.array([[l.dense_macs] for l in layers], np.int64), F, axis=1)),
        "max_error": (LF, stack(2).astype(np.float64)),
        "rel_error": (LF, stack(3).astype(np.float64)),
    }
    coords: dict[str, Any] = {"layer": [layer.name for layer in layers], "frame": qrec.data["frame"].values}
    if "frame_label" in qrec.data.coords:
        coords["frame_label"] = ("frame", qrec.data["frame_label"].values)
    coords.update({
        "scheme": ("layer", [s.kind for s in schemes]),
        "axis": ("layer", [s.axis if isinstance(s, LineDelta) else "" for s in schemes]),
        "direction": ("layer", [s.direction if isinstance(s, LineDelta) else "" for s in schemes]),
        "loop": ("layer", [getattr(s, "loop", "") for s in schemes]),
        "threshold": ("layer", np.array([getattr(s, "threshold", 0) for s in schemes], np.int64)),
        "tau": ("layer", np.array([getattr(s, "tau", 0) for s in schemes], np.int64)),
        "op": ("layer", [layer.op for layer in layers]),
    })
    ds = xr.Dataset(data, coords=coords)
    ds.attrs.update({"layers": qrec.data.attrs["layers"], "plan": repr(plan), "bits": qrec.bits,
                     "calibration": qrec.calibration})
    return ds


def clear_cache() -> None:
    """Forget every cached quantization and statistic of this process."""
    with _LOCK:
        _QRECS.clear()
        _ROWS.clear()
        _ONE.clear()
        _HASHES.clear()


# ---- evaluation ------------------------------------------------------------------------------

def _arrays(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Variables and coordinates as numpy arrays (without building DataArrays)."""
    return {str(k): v.values for k, v in ds.variables.items()}


def _totals(stats: xr.Dataset, cost: xr.Dataset | None) -> dict[str, Any]:
    st = _arrays(stats)
    per_layer_rel = st["rel_error"].mean(axis=1)
    out: dict[str, Any] = {
        "sops": float(st["sops"].mean(axis=1).sum()),
        "events": float(st["events"].mean(axis=1).sum()),
        "dense_macs": float(st["dense_macs"].mean(axis=1).sum()),
        "error": float(per_layer_rel.mean()),
        "max_error": float(st["max_error"].max()),
    }
    if cost is not None:
        for v, var in cost.variables.items():
            if var.ndim == 0:
                val = var.values.item()
                out[str(v)] = bool(val) if isinstance(val, (bool, np.bool_)) else float(val)
        for o, (_, need, name) in OBJECTIVES.items():
            if need:
                out[o] = float(out[name])
        out["overflow"] = str(cost.attrs.get("overflow", ""))
    return out


def _jsonable(a: np.ndarray) -> list[Any]:
    if a.dtype.kind == "b":
        return [bool(x) for x in a]
    if a.dtype.kind in "iu":
        return [int(x) for x in a]
    if a.dtype.kind == "f":
        return [float(x) if math.isfinite(x) else None for x in a]
    return [str(x) for x in a]


def _evaluation(problem: Problem, config: Config, stats: xr.Dataset, cost: xr.Dataset | None) -> Evaluation:
    totals = _totals(stats, cost)
    values = tuple(float(totals[o]) for o in problem.objectives)
    st = _arrays(stats)
    co = _arrays(cost) if cost is not None else {}
    rel = st["rel_error"].mean(axis=1)
    mx = st["max_error"].max(axis=1)
    names = [str(n) for n in st["layer"]]
    cons: dict[str, float] = {}
    for c in problem.constraints:
        if isinstance(c, Fits):
            assert cost is not None
            if bool(co["fits"]):
                v = 0.0
            else:
                hw = config.hardware
                assert hw is not None
                v = (max(0.0, float(co["total_cores"]) - hw.n_cores) / hw.n_cores
                     + float(co["overflow_sram_bytes"].sum()) / hw.sram_per_core
                     + float(co["overflow_neurons"].sum()) / hw.neurons_per_core)
                v = max(v, 1.0)
        else:
            per = rel if c.metric == "error" else mx
            if c.layer is None:
                err = float(per.mean()) if c.metric == "error" else float(per.max())
            elif c.layer == "each":
                err = float(per.max())
            else:
                err = float(per[names.index(c.layer)])
            v = err - float(c.limit)
        cons[c.name] = float(v)
    layers: dict[str, Any] = {
        "layer": names,
        "choice": [config.plan.scheme_for(n).name for n in names],
        "scheme": [str(s) for s in st["scheme"]],
        "axis": [str(s) for s in st["axis"]],
        "direction": [str(s) for s in st["direction"]],
        "loop": [str(s) for s in st["loop"]],
        "threshold": _jsonable(st["threshold"]),
        "tau": _jsonable(st["tau"]),
        "events": _jsonable(st["events"].mean(axis=1)),
        "sops": _jsonable(st["sops"].mean(axis=1)),
        "dense_macs": _jsonable(st["dense_macs"][:, 0]),
        "rel_error": _jsonable(rel),
        "max_error": _jsonable(mx),
    }
    if cost is not None:
        for v, var in cost.variables.items():
            if var.dims == ("layer",) and str(v) not in layers:
                layers[str(v)] = _jsonable(np.asarray(var.values))
    attrs = {"config": config.describe(), "totals": totals, "layers": layers, "constraints": cons,
             "feasible": all(v <= 0 for v in cons.values())}
    return Evaluation(values, tuple(cons.values()), attrs)
