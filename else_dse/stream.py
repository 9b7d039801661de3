"""Streaming a chunked (dask-backed) recording frame chunk by frame chunk.

A recording opened with ``open_recording(path, chunks={"frame": k})`` holds
dask arrays whose chunks are ``k`` whole frames. The stages that read every
value (the range pass of ``quantize``, ``count_events``, ``event_curve``) walk
those chunks in order with the helpers here, so memory is bounded by one chunk
(of every tensor), not by the recording. When a ``dask.distributed.Client`` is
active (``distributed.Client(address)``, or a ``LocalCluster``), :func:`run`
sends the chunk tasks to its workers instead and gathers the results in order.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
import xarray as xr

__all__ = ["frame_bounds", "active_client", "iter_chunks", "tensor_ranges", "run"]


def frame_bounds(ds: xr.Dataset) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the frame chunks of a chunked dataset."""
    bounds, start = [], 0
    for n in ds.chunks["frame"]:
        bounds.append((start, start + int(n)))
        start += int(n)
    return bounds


def active_client() -> Any:
    """The active ``dask.distributed.Client`` (the default one), or None."""
    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - distributed is a core dependency
        return None
    try:
        return get_client()
    except ValueError:  # no client
        return None


def _progress(iterable: Any, total: int, desc: str) -> Any:
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc, unit="chunk", disable=None, leave=False)


def iter_chunks(ds: xr.Dataset, desc: str, overlap: int = 0) -> Iterator[tuple[int, xr.Dataset]]:
    """``(skip, chunk)`` for each frame chunk in order, the chunk loaded into memory
    with up to ``overlap`` frames before it prepended (``skip`` of them), under a
    progress bar over chunks."""
    bounds = frame_bounds(ds)
    for a, b in _progress(bounds, len(bounds), desc):
        # in this thread: a pool of reader threads would keep a malloc arena per thread
        part = ds.isel(frame=slice(max(0, a - overlap), b)).compute(scheduler="synchronous")
        yield a - max(0, a - overlap), part


def tensor_ranges(ds: xr.Dataset, desc: str) -> dict[str, tuple[float, float, int]]:
    """``{variable: (min, max, number of non-finite values)}`` of every data
    variable, in one streaming pass (on the cluster when a client is active)."""
    names = list(ds.data_vars)
    if active_client() is not None:
        import dask
        import dask.array as da
        parts = [(ds[v].data.min(), ds[v].data.max(), (~da.isfinite(ds[v].data)).sum()) for v in names]
        got = dask.compute(*parts)
        return {v: (float(lo), float(hi), int(bad)) for v, (lo, hi, bad) in zip(names, got)}
    lo = {v: np.inf for v in names}
    hi = {v: -np.inf for v in names}
    bad = {v: 0 for v in names}
    for _, part in iter_chunks(ds, desc):
        for v in names:
            x = part[v].values
            finite = np.isfinite(x)
            bad[v] += int(x.size - np.count_nonzero(finite))
            if bad[v] == 0:
                lo[v], hi[v] = min(lo[v], float(x.min())), max(hi[v], float(x.max()))
    return {v: (lo[v], hi[v], bad[v]) for v in names}


def run(ds: xr.Dataset, task: Callable[..., Any], desc: str, carry: bool = False,
        overlap: int = 0, state: Any = None) -> list[Any]:
    """``task(chunk, skip, ...)`` over the frame chunks of ``ds``, results in chunk order.

    Each chunk comes with up to ``overlap`` frames of the previous one prepended
    (``skip`` of them; ``task`` drops their results). ``carry=False``:
    ``task(chunk, skip)`` per chunk (independent: in parallel on a cluster).
    ``carry=True``: ``task(chunk, skip, state) -> (result, state)``, each chunk's
    state handed to the next, starting from ``state`` (a chain of tasks on a
    cluster). Serially the chunks are loaded one at a time; on a cluster each
    worker reads its own chunks.
    """
    client = active_client()
    if client is not None:
        return _run_cluster(client, ds, task, desc, carry, overlap, state)
    out = []
    for skip, part in iter_chunks(ds, desc, overlap):
        if carry:
            res, state = task(part, skip, state)
            out.append(res)
        else:
            out.append(task(part, skip))
    return out


def _run_cluster(client: Any, ds: xr.Dataset, task: Callable[..., Any], desc: str, carry: bool,
                 overlap: int, state: Any) -> list[Any]:
    import dask
    from distributed import as_completed

    parts = [(a - max(0, a - overlap), ds.isel(frame=slice(max(0, a - overlap), b)))
             for a, b in frame_bounds(ds)]
    if carry:
        step = dask.delayed(task, nout=2, pure=True)
        tasks = []
        for skip, part in parts:
            res, state = step(part, skip, state)
            tasks.append(res)
    else:
        tasks = [dask.delayed(task, pure=True)(part, skip) for skip, part in parts]
    futures = client.compute(tasks)
    for _ in _progress(as_completed(futures), len(futures), desc):
        pass
    return client.gather(futures)
