"""``count_events`` and ``event_curve`` on a chunked recording, chunk by chunk.

A chunked :class:`~else_dse.QuantizedRecording` (``open_recording(path,
chunks={"frame": k}).quantize()``) is counted one frame chunk at a time with
the in-memory functions of :mod:`else_dse.events` and the per-chunk Datasets
are concatenated along ``frame``; the result is identical to the in-memory run.
Conventional, dense and line-delta counts are per frame, so chunks are
independent. A temporal delta carries its state (the sender's reference ``R``
and the consumer's sum ``Y`` of every element) from one chunk to the next, so
its chunks run in order. The open-loop event curve of a temporal delta without
the error needs only the previous frame, prepended to each chunk; in the closed
loop, or with the error, each threshold carries its own state from chunk to
chunk (one ``count_events`` per threshold and chunk). The chunk loop, the progress bar over chunks and the dispatch to a
``dask.distributed`` cluster live in :mod:`else_dse.stream`.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

import numpy as np
import xarray as xr

from . import stream
from .recording import QuantizedRecording
from .schemes import Scheme, SchemeOrPlan, TemporalDelta, as_plan
from .workload import Layer

__all__ = ["count_chunked", "curve_chunked"]


def _count_part(layers: tuple[Layer, ...], plan: SchemeOrPlan, lines: bool, threads: int,
                part: xr.Dataset, skip: int, states: dict[tuple, np.ndarray]) -> tuple[xr.Dataset, dict[tuple, np.ndarray]]:
    """Counts of one chunk, starting from the temporal ``states`` of the chunks before
    (``{(tensor, scheme): (2, C*H*W)}``, not modified); returns the states after it."""
    from .events import _count, _TensorCache
    qpart = QuantizedRecording(layers, part)
    states = {key: a.copy() for key, a in states.items()}
    ds = _count(qpart, plan, lines, _TensorCache(qpart, layers, states, threads))
    return (ds.isel(frame=slice(skip, None)) if skip else ds), states


def _join(parts: list[xr.Dataset]) -> xr.Dataset:
    """Per-chunk results concatenated along ``frame`` (attrs and per-layer coords of the first)."""
    if len(parts) == 1:
        return parts[0]
    return xr.concat(parts, dim="frame", data_vars="minimal", coords="minimal",
                     compat="override", join="exact", combine_attrs="override")


def count_chunked(qrec: QuantizedRecording, scheme_or_plan: SchemeOrPlan, lines: bool,
                  threads: int) -> xr.Dataset:
    """:func:`else_dse.count_events` of a chunked recording, streamed over frame chunks;
    temporal deltas carry their state (sender ``R``, receiver ``Y``) from chunk to chunk."""
    schemes = as_plan(scheme_or_plan).resolve(qrec.layers)
    task = functools.partial(_count_part, qrec.layers, scheme_or_plan, lines, threads)
    if any(isinstance(s, TemporalDelta) for s in schemes):
        return _join(stream.run(qrec.data, task, "count_events", carry=True, state={}))
    free = functools.partial(_drop_state, task)
    return _join(stream.run(qrec.data, free, "count_events"))


def _drop_state(task: Any, part: xr.Dataset, skip: int) -> xr.Dataset:
    return task(part, skip, {})[0]


def _curve_part(layers: tuple[Layer, ...], layer_name: str, scheme: Scheme, thresholds: list[int],
                error: bool, threads: int, part: xr.Dataset, skip: int) -> xr.Dataset:
    from .events import event_curve
    ds = event_curve(QuantizedRecording(layers, part), layer_name, scheme, thresholds, error=error,
                     threads=threads)
    return ds.isel(frame=slice(skip, None)) if skip else ds


def curve_chunked(qrec: QuantizedRecording, layer_name: str, scheme: Scheme,
                  thresholds: Sequence[int], error: bool, threads: int = 1) -> xr.Dataset:
    """:func:`else_dse.event_curve` of a chunked recording, streamed over frame chunks
    (``threads``: the kernels' threads on each chunk)."""
    layer = qrec.layer(layer_name)
    sub = qrec.select_layers([layer.name])
    if isinstance(scheme, TemporalDelta) and (error or scheme.loop == "closed"):
        return _carried_curve(sub, layer, scheme, thresholds, error, threads)
    # open loop without the error: D_f = X_f - X_{f-1} (after tau) needs the previous frame only
    overlap = 1 if isinstance(scheme, TemporalDelta) else 0
    task = functools.partial(_curve_part, sub.layers, layer.name, scheme, list(thresholds), error, threads)
    return _join(stream.run(sub.data, task, "event_curve", overlap=overlap))


def _carried_part(layers: tuple[Layer, ...], scheme: TemporalDelta, thresholds: np.ndarray, error: bool,
                  threads: int, part: xr.Dataset, skip: int, state: np.ndarray | None
                  ) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Events, SOPs and errors ``(T, frames)`` of one chunk for every threshold in one kernel
    pass, with every threshold's temporal state carried from the chunks before (a new array:
    the state handed in is not modified)."""
    from .events import _curve_arrays
    layer = layers[0]
    shape = (len(thresholds), 2, int(np.prod(layer.input_shape)))
    after = np.zeros(shape, np.int32) if state is None else state.copy()
    arrays = _curve_arrays(QuantizedRecording(layers, part), layer, scheme, thresholds, error, after, threads)
    return tuple(a[:, skip:] for a in arrays), after


def _carried_curve(sub: QuantizedRecording, layer: Layer, scheme: TemporalDelta,
                   thresholds: Sequence[int], error: bool, threads: int) -> xr.Dataset:
    """The event curve of a temporal delta whose every threshold needs its own state carried
    across chunks (closed loop, or the error): one curve pass over each chunk, in order, with
    every threshold's state handed from chunk to chunk, equal to the in-memory curve."""
    from .events import curve_dataset
    th = np.asarray(list(thresholds), np.int64)
    task = functools.partial(_carried_part, sub.layers, scheme, th, error, threads)
    parts = stream.run(sub.data, task, "event_curve", carry=True, state=None)
    events, sops, max_error, rel_error = (np.concatenate([p[i] for p in parts], axis=1) for i in range(4))
    return curve_dataset(sub, layer, scheme, th, events, sops, max_error, rel_error, error)
