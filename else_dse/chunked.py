"""``count_events`` and ``event_curve`` on a chunked recording, chunk by chunk.

A chunked :class:`~else_dse.QuantizedRecording` (``open_recording(path,
chunks={"frame": k}).quantize()``) is counted one frame chunk at a time with
the in-memory functions of :mod:`else_dse.events` and the per-chunk Datasets
are concatenated along ``frame``; the result is identical to the in-memory run.
Conventional, dense and line-delta counts are per frame. A temporal delta
compares each frame with the one before: lossless (``theta = tau = 0``) it
needs only the previous frame, prepended to each chunk and dropped from its
result. The chunk loop, the progress bar over chunks and the dispatch to a
``dask.distributed`` cluster live in :mod:`else_dse.stream`.
"""

from __future__ import annotations

import functools
from typing import Sequence

import xarray as xr

from . import stream
from .recording import QuantizedRecording
from .schemes import Scheme, SchemeOrPlan, TemporalDelta, as_plan
from .workload import Layer

__all__ = ["count_chunked", "curve_chunked"]


def _overlap(schemes: Sequence[Scheme], where: str) -> int:
    """Frames of the previous chunk each chunk needs: 1 for a lossless temporal
    delta; a stateful (lossy) temporal delta is refused."""
    temporal = [s for s in schemes if isinstance(s, TemporalDelta)]
    for s in temporal:
        if s.threshold or s.tau:
            raise NotImplementedError(
                f"{where}: {s!r} over a chunked recording needs the temporal state carried "
                "across chunks, which the kernels do not give yet; load() the recording")
    return 1 if temporal else 0


def _count_part(layers: tuple[Layer, ...], plan: SchemeOrPlan, lines: bool,
                part: xr.Dataset, skip: int) -> xr.Dataset:
    from .events import count_events
    ds = count_events(QuantizedRecording(layers, part), plan, lines=lines)
    return ds.isel(frame=slice(skip, None)) if skip else ds


def _join(parts: list[xr.Dataset]) -> xr.Dataset:
    """Per-chunk results concatenated along ``frame`` (attrs and per-layer coords of the first)."""
    if len(parts) == 1:
        return parts[0]
    return xr.concat(parts, dim="frame", data_vars="minimal", coords="minimal",
                     compat="override", join="exact", combine_attrs="override")


def count_chunked(qrec: QuantizedRecording, scheme_or_plan: SchemeOrPlan, lines: bool) -> xr.Dataset:
    """:func:`else_dse.count_events` of a chunked recording, streamed over frame chunks."""
    schemes = as_plan(scheme_or_plan).resolve(qrec.layers)
    overlap = _overlap(schemes, "count_events")
    task = functools.partial(_count_part, qrec.layers, scheme_or_plan, lines)
    return _join(stream.run(qrec.data, task, "count_events", overlap=overlap))


def _curve_part(layers: tuple[Layer, ...], layer_name: str, scheme: Scheme, thresholds: list[int],
                error: bool, part: xr.Dataset, skip: int) -> xr.Dataset:
    from .events import event_curve
    ds = event_curve(QuantizedRecording(layers, part), layer_name, scheme, thresholds, error=error)
    return ds.isel(frame=slice(skip, None)) if skip else ds


def curve_chunked(qrec: QuantizedRecording, layer_name: str, scheme: Scheme,
                  thresholds: Sequence[int], error: bool) -> xr.Dataset:
    """:func:`else_dse.event_curve` of a chunked recording, streamed over frame chunks."""
    layer = qrec.layer(layer_name)
    sub = qrec.select_layers([layer.name])
    if isinstance(scheme, TemporalDelta) and (error or scheme.loop == "closed"):
        _overlap([TemporalDelta(threshold=1, loop=scheme.loop)], "event_curve")
    # open loop without the error: D_f = X_f - X_{f-1} (after tau) needs the previous frame only
    overlap = 1 if isinstance(scheme, TemporalDelta) else 0
    task = functools.partial(_curve_part, sub.layers, layer.name, scheme, list(thresholds), error)
    return _join(stream.run(sub.data, task, "event_curve", overlap=overlap))
