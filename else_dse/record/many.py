"""Replay of many clips, on a ``dask.distributed`` cluster when a client is active.

:func:`replay_many` runs :func:`~else_dse.record.replay` once per clip. With a
client active each clip is one task: the worker opens the model itself (the
path must be readable from every worker) and returns the :class:`Replay`;
without one the clips run here in order on one opened model. Either way each
result is the one ``replay(model_path, clip, plan, ...)`` gives.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..schemes import SchemeOrPlan
from ..stream import active_client
from .replay import Replay, replay

__all__ = ["replay_many"]


def _one(model_path: str, plan: SchemeOrPlan | None, options: dict[str, Any], clip: list[Any]) -> Replay:
    return replay(model_path, clip, plan, progress_bar=False, **options)


def replay_many(model_path: str | Path, clips: Sequence[Iterable[Any]], plan: SchemeOrPlan | None = None,
                **options: Any) -> list[Replay]:
    """:func:`~else_dse.record.replay` of every clip (each an iterable of frames) with
    ``plan``; ``options`` are replay's keywords (``bits``, ``value_range``, ...).
    Clips map to the workers of the active ``dask.distributed`` client, else run in
    order here; results come back in clip order, under a progress bar over clips."""
    from tqdm.auto import tqdm

    if "progress_bar" in options:
        raise TypeError("replay_many: progress_bar is per clip; replay_many shows one bar over clips")
    clips = [list(clip) for clip in clips]
    if not clips:
        raise ValueError("replay_many: no clips")
    task = functools.partial(_one, str(model_path), plan, dict(options))
    client = active_client()
    if client is None:
        from .segments import open_segments
        seg = open_segments(model_path)
        return [replay(seg, clip, plan, progress_bar=False, **options)
                for clip in tqdm(clips, desc="replay_many", unit="clip", disable=None, leave=False)]
    from distributed import as_completed
    futures = client.map(task, clips, pure=False)
    for _ in tqdm(as_completed(futures), total=len(futures), desc="replay_many", unit="clip",
                  disable=None, leave=False):
        pass
    return client.gather(futures)
