"""Recorders: run a real TFLite or ONNX network on frames and record the input
tensor of every convolution, depthwise convolution and fully connected layer;
:func:`open_segments` runs the same network cut at every such layer's input,
so each layer can be fed an array of the caller's choice; :func:`replay` runs
it in closed loop under a suppression plan.

>>> from else_dse.record import record, media            # doctest: +SKIP
>>> rec = record("data/models/face_detection_short_range.tflite",
...              [media.still("astronaut")], value_range=(-1, 1))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..recording import Recording
from ._common import RecorderError, tf_same_padding
from .media import Preprocess
from .segments import SegmentedModel, SegmentError, SegmentRun, open_segments
from .replay import Replay, open_replay, replay
from .many import replay_many

__all__ = ["record", "replay", "replay_many", "Replay", "open_replay", "RecorderError", "Preprocess", "tf_same_padding",
           "open_segments", "SegmentedModel", "SegmentRun", "SegmentError"]

SUFFIXES = (".tflite", ".onnx")


def record(model_path: str | Path, frames: Iterable[Any], *, value_range: tuple[float, float] = (0.0, 1.0),
           progress_bar: bool = True, attrs: Mapping[str, Any] | None = None,
           frame_labels: Sequence[str] | None = None) -> Recording:
    """Record a ``.tflite`` or ``.onnx`` model on ``frames`` (dispatch on the suffix).

    ``frames`` are uint8 images (centre-cropped, resized and scaled to
    ``value_range``, see :mod:`else_dse.record.media`) or float arrays of the
    model's input shape. A tqdm progress bar runs over frames unless
    ``progress_bar=False``. Provenance goes into the recording's attrs.
    """
    path = Path(model_path)
    if path.suffix not in SUFFIXES:
        raise RecorderError(f"{path}: unsupported model suffix {path.suffix!r}; use one of {SUFFIXES}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    kw = dict(value_range=value_range, progress_bar=progress_bar, attrs=attrs, frame_labels=frame_labels)
    if path.suffix == ".tflite":
        from .tflite import record_tflite

        return record_tflite(path, frames, **kw)  # type: ignore[arg-type]
    from .onnx import record_onnx

    return record_onnx(path, frames, **kw)  # type: ignore[arg-type]
