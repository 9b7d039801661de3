"""Event statistics cached per (recording content, bits, layer, scheme) and trial evaluation."""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from ..cost import Estimate
from ..events import LayerStats, StatsArrays, count_events, curve_values, resolve_threads, stats_arrays
from ..recording import QuantizedRecording, Recording
from ..schemes import Dense, Plan, Scheme, as_plan
from . import layer_columns
from .objectives import OBJECTIVES, Constraint, Fits, TaskBudget, task_values
from .space import Config


@dataclass(frozen=True)
class Evaluation:
    """Objective values, constraint values (<= 0 feasible) and the JSON-able breakdown."""

    values: tuple[float, ...]
    constraints: tuple[float, ...]
    user_attrs: dict[str, Any]


# ---- statistics with a content-keyed cache ---------------------------------------------------

_ROW_VARS = ("events", "sops", "max_error", "rel_error")


def content_hash(recording: Recording) -> str:
    """A hash of the recording's geometry, codes or values and quantization."""
    h = hashlib.blake2b(digest_size=16)
    h.update(recording.data.attrs.get("layers", "").encode())
    for v in sorted(recording.data.data_vars):
        da = recording.data[v]
        a = np.ascontiguousarray(da.values)
        h.update(f"{v}|{da.attrs.get('tensor')}|{a.dtype}|{a.shape}|{da.attrs.get('scale')}|"
                 f"{da.attrs.get('zero_point')}".encode())
        h.update(a.data)
    h.update(f"bits={recording.data.attrs.get('bits')}|{recording.data.attrs.get('calibration')}".encode())
    return h.hexdigest()


class _Bounded(OrderedDict):
    """A least-recently-used mapping of at most ``size`` entries."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def lookup(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def store(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class StatsCache:
    """Event statistics of one recording, per (content, bits, layer, scheme), computed once.

    :meth:`stats` equals ``count_events(recording.quantize(bits, calibration), plan)``
    (assembled by :func:`else_dse.events.stats_arrays`) but each
    layer's row is computed once and kept (at most ``max_rows`` rows, least recently
    used dropped). On a miss every level of ``levels`` (``{layer: (thresholds, taus)}``:
    the delta thresholds of a line or temporal scheme, tau of a conventional one) is
    computed in the same :func:`else_dse.events.curve_values` call (the arrays of
    :func:`else_dse.event_curve`). ``threads``: the kernels' OpenMP threads (default
    ``ELSE_DSE_THREADS``, else all cores; the statistics do not depend on it). Owned by a
    :class:`~else_dse.search.Problem`; safe to share between threads.
    """

    def __init__(self, recording: Recording, calibration: str = "max", *, content: str | None = None,
                 levels: Mapping[str, tuple[Iterable[int], Iterable[int]]] | None = None,
                 max_rows: int = 200_000, threads: int | None = None) -> None:
        self.recording = recording
        self.threads = threads
        self.calibration = calibration
        self._content: list[Any] = [content] if content else []
        self._hashing: threading.Thread | None = None
        if not content:     # hashed on a thread of its own (hashlib releases the GIL) until first asked for
            self._hashing = threading.Thread(target=self._hash, name="else-dse content hash", daemon=True)
            self._hashing.start()
        self.levels = {k: (tuple(t), tuple(u)) for k, (t, u) in (levels or {}).items()}
        self._qrecs = _Bounded(4)
        self._layers = _Bounded(1024)
        self._rows = _Bounded(max_rows)
        self._lock = threading.RLock()

    def _hash(self) -> None:
        try:
            self._content.append(content_hash(self.recording))
        except BaseException as exc:  # noqa: BLE001 - raised again where the hash is asked for
            self._content.append(exc)

    @property
    def content(self) -> str:
        """:func:`content_hash` of the recording (computed on a thread from construction on;
        waits for it; in a process forked before it ended, computed again)."""
        if self._hashing is not None:
            self._hashing.join()
            if not self._content:     # forked while it ran: the thread does not exist here
                self._hash()
            self._hashing = None
        found = self._content[0]
        if isinstance(found, BaseException):
            raise found
        return found

    def stats(self, plan: Plan | Scheme, bits: int = 8) -> xr.Dataset:
        """The statistics of ``plan`` at ``bits`` (a Dataset like ``count_events``)."""
        return self.arrays(plan, bits).dataset()

    def arrays(self, plan: Plan | Scheme, bits: int = 8) -> StatsArrays:
        """:meth:`stats` as the :class:`~else_dse.events.StatsArrays` it is built from (the
        search's per-trial path: no Dataset)."""
        qrec = self._quantized(bits)
        schemes = as_plan(plan).resolve(qrec.layers)
        base = (self.content, qrec.bits, qrec.calibration)
        with self._lock:
            rows = [self._row(qrec, base, layer.name, s) for layer, s in zip(qrec.layers, schemes)]
        return stats_arrays(qrec, plan, rows)

    def _quantized(self, bits: int) -> QuantizedRecording:
        rec = self.recording
        if isinstance(rec, QuantizedRecording):
            return rec
        with self._lock:
            q = self._qrecs.lookup(bits)
            if q is None:
                q = rec.quantize(bits=bits, calibration=self.calibration)  # type: ignore[arg-type]
                self._qrecs.store(bits, q)
        return q

    def _one_layer(self, qrec: QuantizedRecording, name: str) -> QuantizedRecording:
        """The quantized recording of one layer: the kernels then find its tensor at once."""
        key = (qrec.bits, name)
        one = self._layers.lookup(key)
        if one is None:
            one = qrec.select_layers([name])
            self._layers.store(key, one)
        return one

    def _row(self, qrec: QuantizedRecording, base: tuple[str, int, str], name: str,
             scheme: Scheme) -> LayerStats:
        """The row of one layer (under the lock; ``base``: content, bits, calibration)."""
        key = base + (name, scheme)
        row = self._rows.lookup(key)
        if row is not None:
            return row
        if isinstance(scheme, Dense):
            ds = count_events(self._one_layer(qrec, name), scheme, threads=self.threads)
            row = LayerStats(*(np.asarray(ds[v].values[0]) for v in _ROW_VARS))
            self._rows.store(key, row)
            return row
        family, field, want = self._missing(base + (name,), name, scheme)
        curve = curve_values(self._one_layer(qrec, name), name, family, want, threads=self.threads)
        self._store_curve(base + (name,), family, field, want, curve)
        return self._rows[key]

    def _missing(self, base: tuple | None, name: str, scheme: Scheme) -> tuple[Scheme, str, list[int]]:
        """The curve that computes the row of ``scheme`` on layer ``name``: its family (the level
        at 0), the level's field, and the levels of the space (the threshold of a delta scheme,
        tau of conventional) whose rows are not cached under ``base`` (content, bits,
        calibration, layer; None: an empty cache)."""
        field = "threshold" if scheme.thresholded else "tau"
        own = int(getattr(scheme, field))
        levels = self.levels.get(name, ((), ()))[0 if scheme.thresholded else 1]
        family = scheme.adjusted(**{field: 0})
        want = sorted({own} | {int(v) for v in levels})
        if base is None:
            return family, field, want
        return family, field, [v for v in want if base + (family.adjusted(**{field: v}),) not in self._rows] or [own]

    def _store_curve(self, base: tuple, family: Scheme, field: str, want: Sequence[int],
                     curve: Mapping[str, np.ndarray]) -> None:
        arrays = [curve[v] for v in _ROW_VARS]
        for i, v in enumerate(want):
            self._rows.store(base + (family.adjusted(**{field: v}),), LayerStats(*(a[i].copy() for a in arrays)))

    def prefill(self, schemes: Mapping[str, Iterable[Scheme]], bits: Iterable[int] = (8,), *,
                limit: int | None = None) -> int:
        """Compute at once the rows of every layer under every scheme of ``schemes``
        (``{layer: schemes}``) at every ``bits`` that are not cached yet, one curve per
        layer and scheme family on each of ``threads`` Python threads (a curve on one kernel
        thread: most layers are too small for a team). Nothing runs on one thread, for a
        chunked recording, or when more than ``limit`` curves would run. Returns the number
        of curves computed; the rows equal those :meth:`stats` computes on demand."""
        n = resolve_threads(self.threads)
        if n < 2:
            return 0
        tasks: list[tuple[tuple, QuantizedRecording, Scheme, str, list[int]]] = []
        with self._lock:
            content = self.content if self._rows else None   # an empty cache needs no hash until rows are stored
            for b in bits:
                qrec = self._quantized(int(b))
                if qrec.frame_chunks is not None:
                    return 0
                qkey = (qrec.bits, qrec.calibration)
                for name, layer_schemes in schemes.items():
                    base = None if content is None else (content, *qkey, name)
                    families = set()
                    for s in layer_schemes:
                        if isinstance(s, Dense) or (base is not None and base + (s,) in self._rows):
                            continue
                        family, field, want = self._missing(base, name, s)
                        if family not in families:
                            families.add(family)
                            tasks.append(((*qkey, name), self._one_layer(qrec, name), family, field, want))  # key w/o content
        if not tasks or (limit is not None and len(tasks) > limit):
            return 0
        def curve(task: tuple[tuple, QuantizedRecording, Scheme, str, list[int]]) -> dict[str, np.ndarray]:
            key, one_layer, family, _, want = task
            return curve_values(one_layer, key[-1], family, want, threads=1)

        with ThreadPoolExecutor(n) as ex:
            curves = list(ex.map(curve, tasks))
        with self._lock:
            for (key, _, family, field, want), curve in zip(tasks, curves):
                self._store_curve((self.content, *key), family, field, want, curve)
        return len(tasks)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (spawned worker processes) without the cached entries and the lock."""
        return {"recording": self.recording, "calibration": self.calibration, "content": self.content,
                "levels": self.levels, "max_rows": self._rows.size, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["recording"], state["calibration"], content=state["content"],  # type: ignore[misc]
                      levels=state["levels"], max_rows=state["max_rows"], threads=state.get("threads"))

    def clear(self) -> None:
        """Forget every cached quantization and statistic."""
        with self._lock:
            self._qrecs.clear()
            self._layers.clear()
            self._rows.clear()


# ---- evaluation ------------------------------------------------------------------------------

def _arrays(ds: xr.Dataset | StatsArrays) -> dict[str, np.ndarray]:
    """Variables and coordinates as numpy arrays (without building DataArrays)."""
    if isinstance(ds, StatsArrays):
        return {k: ds.variable(k)[1] for k in (*ds.data, *ds.coords)}
    return {str(k): v.values for k, v in ds.variables.items()}


def _cost_variables(cost: xr.Dataset | Estimate) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """The data variables of an estimate as ``{name: (dims, numpy array)}`` in the Dataset's
    order (an :class:`~else_dse.cost.Estimate` is read as is: no Dataset is built)."""
    if isinstance(cost, Estimate):
        return {k: (tuple(d), np.asarray(v)) for k, (d, v) in cost.data.items()}
    return {str(k): (cost.variables[k].dims, cost.variables[k].values) for k in cost.data_vars}


def _totals(st: dict[str, np.ndarray], co: dict[str, np.ndarray] | None, attrs: Mapping[str, Any],
            fidelity: Mapping[str, float] | None = None) -> dict[str, Any]:
    """The totals a trial stores: stats summed over layers (means over frames) and every scalar of the cost."""
    per_layer_rel = st["rel_error"].mean(axis=1)
    out: dict[str, Any] = {
        "sops": float(st["sops"].mean(axis=1).sum()),
        "events": float(st["events"].mean(axis=1).sum()),
        "dense_macs": float(st["dense_macs"].mean(axis=1).sum()),
        "error": float(per_layer_rel.mean()),
        "max_error": float(st["max_error"].max()),
    }
    if co is not None:
        for v, a in co.items():
            if a.ndim == 0:
                val = a.item()
                out[v] = bool(val) if isinstance(val, (bool, np.bool_)) else float(val)
        for o, (_, need, name) in OBJECTIVES.items():
            if need:
                out[o] = float(out[name])
        out["overflow"] = str(attrs.get("overflow", ""))
    if fidelity is not None:
        out.update(task_values(fidelity))
    return out


def _finite(d: Mapping[str, float]) -> dict[str, float | None]:
    """A JSON-able copy: non-finite values as None."""
    return {str(k): float(v) if math.isfinite(float(v)) else None for k, v in d.items()}


def evaluation(objectives: Sequence[str], constraints: Sequence[Constraint], config: Config,
               stats: xr.Dataset | StatsArrays, cost: xr.Dataset | Estimate | None,
               fidelity: Mapping[str, float] | None = None) -> Evaluation:
    """Objective and constraint values of a configuration and the breakdown a trial stores;
    ``cost``: :func:`else_dse.estimate` or (the same values, faster)
    :func:`else_dse.cost.estimate_values`; ``fidelity`` (of a closed-loop replay) gives the
    task objectives and is stored too."""
    st = _arrays(stats)
    cv = _cost_variables(cost) if cost is not None else {}
    co = {k: a for k, (_, a) in cv.items()} if cost is not None else None
    totals = _totals(st, co, cost.attrs if cost is not None else {}, fidelity)
    values = tuple(float(totals[o]) for o in objectives)
    rel = st["rel_error"].mean(axis=1)
    mx = st["max_error"].max(axis=1)
    names = [str(n) for n in st["layer"]]
    cons: dict[str, float] = {}
    for c in constraints:
        if isinstance(c, Fits):
            assert co is not None
            if bool(co["fits"]):
                v = 0.0
            else:
                hw = config.hardware
                assert hw is not None
                v = (max(0.0, float(co["total_cores"]) - hw.n_cores) / hw.n_cores
                     + float(co["overflow_sram_bytes"].sum()) / hw.sram_per_core
                     + float(co["overflow_neurons"].sum()) / hw.neurons_per_core)
                v = max(v, 1.0)
        elif isinstance(c, TaskBudget):
            v = float(totals[c.metric]) - float(c.limit)
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
        "scheme": st["scheme"], "axis": st["axis"], "direction": st["direction"], "loop": st["loop"],
        "threshold": st["threshold"], "tau": st["tau"],
        "events": st["events"].mean(axis=1), "sops": st["sops"].mean(axis=1),
        "dense_macs": st["dense_macs"][:, 0], "rel_error": rel, "max_error": mx,
    }
    for v, (dims, a) in cv.items():
        if dims == ("layer",) and v not in layers:
            layers[v] = a
    attrs = {"config": config.describe(), "totals": totals, "layers": layer_columns.encode(layers), "constraints": cons,
             "feasible": all(v <= 0 for v in cons.values())}
    if fidelity is not None:
        attrs["fidelity"] = _finite(fidelity)
    return Evaluation(values, tuple(cons.values()), attrs)
