"""``fidelity()``: what a replay's outputs mean for the task, against the float run."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from .detection import Detection, detect
from .landmarks import Landmarks, decode_landmarks
from .metrics import detection_metrics, landmark_metrics
from .networks import Recognized, recognize
from .tensors import rel_l2_all

__all__ = ["fidelity", "decode_frames"]


def decode_frames(outputs: Mapping[str, np.ndarray], found: Recognized) -> list[list[Detection]] | list[Landmarks]:
    """Per-frame decoded results of a recognized network: detections (after NMS) or landmarks."""
    if found.kind == "detector":
        assert found.detector is not None
        boxes, scores = np.asarray(outputs[found.boxes]), np.asarray(outputs[found.scores])
        return [detect(found.detector, boxes[f], scores[f]) for f in range(len(boxes))]
    if found.kind == "landmark":
        lm, flag = np.asarray(outputs[found.landmarks]), np.asarray(outputs[found.pose_flag])
        heat = np.asarray(outputs[found.heatmap]) if found.heatmap else None
        return [decode_landmarks(lm[f], flag[f], None if heat is None else heat[f]) for f in range(len(lm))]
    raise ValueError(f"fidelity: no task decoder for outputs of kind {found.kind!r}")


def fidelity(model_path: str | Path | None, outputs: Mapping[str, np.ndarray],
             reference: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Task fidelity of ``outputs`` (a replay under a plan) against ``reference`` (the float run).

    ``outputs`` and ``reference`` map each output tensor name to a
    ``(frame, ...)`` array, as ``Replay.outputs`` / ``Replay.reference``.
    Always returns ``"rel_l2[<name>]"`` = ``||out - ref|| / ||ref||`` for every
    output tensor over all frames (``0/0 = 0``, ``x/0 = inf``, see
    :mod:`else_dse.tasks.tensors`). When the outputs are those of a shipped
    network (recognized by the per-frame shapes of the output tensors, not by
    names: :mod:`else_dse.tasks.networks`), both sides are decoded as
    MediaPipe does and the task metrics of :mod:`else_dse.tasks.metrics` are
    added:

    * SSD detectors (BlazeFace short range, BlazePose detector):
      ``detection.precision``, ``detection.recall`` (IoU >= 0.5),
      ``detection.mean_iou``, ``detection.keypoint_px`` (pixels of the model
      input), ``detection.n_reference``, ``detection.n_replay``,
      ``detection.n_matched``;
    * BlazePose landmark: ``landmark.nme`` (normalized by the ROI side),
      ``landmark.pck@0.05``, ``landmark.presence_agree``, ``landmark.n_frames``
      (frames where the float presence >= 0.5).

    ``model_path`` names the model the outputs come from; it is only checked to
    exist when given (``None`` is allowed). Raises ``ValueError`` in one line
    for mismatched names, shapes or non-finite values.

    >>> import numpy as np
    >>> ref = {"y": np.array([[3.0, 4.0]])}
    >>> fidelity(None, {"y": np.array([[3.0, 3.0]])}, ref)
    {'rel_l2[y]': 0.2}
    """
    if model_path is not None and not Path(model_path).is_file():
        raise FileNotFoundError(f"fidelity: {model_path}: no such model file")
    result = rel_l2_all(outputs, reference)  # checks names, shapes and values
    found = recognize(reference)
    if found.kind == "unknown":
        return result
    ref, out = decode_frames(reference, found), decode_frames(outputs, found)
    if found.kind == "detector":
        assert found.detector is not None
        metrics = detection_metrics(ref, out, found.detector.input_size)  # type: ignore[arg-type]
    else:
        metrics = landmark_metrics(ref, out)  # type: ignore[arg-type]
    prefix = {"detector": "detection", "landmark": "landmark"}[found.kind]
    result.update({f"{prefix}.{k}": v for k, v in metrics.items()})
    return result
