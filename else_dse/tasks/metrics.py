"""Task metrics of a replay against the float run, with their conventions.

Detections (per frame, pooled over frames):

* **matching** -- pairs (reference, replay) are taken greedily by decreasing
  IoU, each detection at most once, and a pair matches when ``IoU >= 0.5``;
* ``precision = matched / replay detections``, ``recall = matched / reference
  detections`` over all frames; ``0/0 = 1`` for both (nothing to find and
  nothing found is perfect; no reference but some replay detections gives
  recall 1, precision 0; reference but no replay detections gives recall 0,
  precision 1);
* ``mean_iou`` over matched pairs, ``keypoint_px`` the mean Euclidean
  displacement of the matched pairs' keypoints in pixels of the model input
  (x scaled by its width, y by its height); both NaN when nothing matched;
* the counts ``n_reference``, ``n_replay``, ``n_matched`` are returned too.

Landmarks (one crop per frame):

* frames count only where the float run's pose presence is ``>= 0.5``;
* the error of a landmark is the Euclidean distance of its x, y between replay
  and float, normalized to the crop, i.e. divided by the ROI's side (the ROI
  is square, so this equals the image-space error over the ROI size); only the
  33 body landmarks count, after heatmap refinement;
* ``nme`` is the mean error over counted frames x 33 landmarks;
  ``pck@0.05`` the fraction of them with error ``<= 0.05``; both NaN when no
  frame counts; ``presence_agree`` is the fraction of all frames where replay
  and float agree on presence ``>= 0.5``, ``n_frames`` the frames counted.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .detection import Detection, iou
from .landmarks import Landmarks

__all__ = ["match_detections", "detection_metrics", "landmark_metrics", "MATCH_IOU", "PCK_THRESHOLD",
           "PRESENCE_THRESHOLD"]

MATCH_IOU = 0.5
PCK_THRESHOLD = 0.05
PRESENCE_THRESHOLD = 0.5


def match_detections(reference: Sequence[Detection], replay: Sequence[Detection],
                     min_iou: float = MATCH_IOU) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matches ``(reference index, replay index, IoU)`` with ``IoU >= min_iou``, best first."""
    pairs = sorted(((iou(r, o), i, j) for i, r in enumerate(reference) for j, o in enumerate(replay)),
                   key=lambda t: (-t[0], t[1], t[2]))
    used_r: set[int] = set()
    used_o: set[int] = set()
    out = []
    for v, i, j in pairs:
        if v < min_iou:
            break
        if i not in used_r and j not in used_o:
            used_r.add(i)
            used_o.add(j)
            out.append((i, j, v))
    return out


def _ratio(num: int, den: int) -> float:
    return num / den if den else 1.0


def _keypoint_px(a: Detection, b: Detection, size: tuple[int, int]) -> list[float]:
    h, w = size
    return [math.hypot((p[0] - q[0]) * w, (p[1] - q[1]) * h) for p, q in zip(a.keypoints, b.keypoints)]


def detection_metrics(reference: Sequence[Sequence[Detection]], replay: Sequence[Sequence[Detection]],
                      input_size: tuple[int, int]) -> dict[str, float]:
    """Precision, recall, mean IoU and keypoint displacement (pixels of ``input_size = (h, w)``) over frames."""
    if len(reference) != len(replay):
        raise ValueError(f"detection metrics: {len(reference)} reference frames but {len(replay)} replay frames")
    ious: list[float] = []
    kp: list[float] = []
    n_ref = n_out = 0
    for ref, out in zip(reference, replay):
        n_ref, n_out = n_ref + len(ref), n_out + len(out)
        for i, j, v in match_detections(ref, out):
            ious.append(v)
            kp += _keypoint_px(ref[i], out[j], input_size)
    return {"precision": _ratio(len(ious), n_out), "recall": _ratio(len(ious), n_ref),
            "mean_iou": float(np.mean(ious)) if ious else math.nan,
            "keypoint_px": float(np.mean(kp)) if kp else math.nan,
            "n_reference": float(n_ref), "n_replay": float(n_out), "n_matched": float(len(ious))}


def landmark_metrics(reference: Sequence[Landmarks], replay: Sequence[Landmarks]) -> dict[str, float]:
    """Normalized mean error, PCK@0.05 (frames where the float presence >= 0.5) and presence agreement."""
    if len(reference) != len(replay):
        raise ValueError(f"landmark metrics: {len(reference)} reference frames but {len(replay)} replay frames")
    if not reference:
        raise ValueError("landmark metrics: no frames")
    errs = [np.linalg.norm(o.body_xy - r.body_xy, axis=1) for r, o in zip(reference, replay)
            if r.pose_presence >= PRESENCE_THRESHOLD]
    agree = [(r.pose_presence >= PRESENCE_THRESHOLD) == (o.pose_presence >= PRESENCE_THRESHOLD)
             for r, o in zip(reference, replay)]
    e = np.concatenate(errs) if errs else np.zeros(0)
    return {"nme": float(e.mean()) if e.size else math.nan,
            "pck@0.05": float((e <= PCK_THRESHOLD).mean()) if e.size else math.nan,
            "presence_agree": float(np.mean(agree)), "n_frames": float(len(errs))}
