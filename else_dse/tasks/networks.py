"""The shipped networks' decoding options, and how :func:`recognize` tells them apart from their outputs.

Recognition looks only at the per-frame shapes of the output tensors (the
leading frame axis and any size-1 batch axes dropped), never at names, so it
holds for TFLite and ONNX exports alike:

* **SSD detector** -- exactly one tensor of ``N x C`` values and one of
  ``N x 1`` values with ``(N, C)`` in :data:`DETECTORS`: ``(896, 16)`` is
  BlazeFace short range (6 keypoints), ``(2254, 12)`` the BlazePose detector
  (4 keypoints). The larger is the box tensor, the other the scores.
* **BlazePose landmark** -- a tensor of 195 values (39 landmarks x 5), one of
  1 value (pose flag) and, when present, one of ``64 x 64 x 39`` (heatmap);
  other outputs (segmentation, world landmarks) are allowed and ignored.

Anything else is "unknown": only the relative L2 error per tensor applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .anchors import BLAZEFACE_SHORT_RANGE_ANCHORS, POSE_DETECTOR_ANCHORS
from .detection import DetectorSpec
from .landmarks import NUM_LANDMARKS

__all__ = ["BLAZEFACE_SHORT_RANGE", "POSE_DETECTOR", "DETECTORS", "Recognized", "recognize", "frame_shape"]

# face_detection_short_range.pbtxt + face_detection.pbtxt (TensorsToDetections, NMS)
BLAZEFACE_SHORT_RANGE = DetectorSpec(
    name="blazeface_short_range", anchors=BLAZEFACE_SHORT_RANGE_ANCHORS, num_boxes=896, num_coords=16,
    num_keypoints=6, x_scale=128.0, y_scale=128.0, w_scale=128.0, h_scale=128.0, min_score_thresh=0.5)

# pose_detection_cpu.pbtxt
POSE_DETECTOR = DetectorSpec(
    name="pose_detector", anchors=POSE_DETECTOR_ANCHORS, num_boxes=2254, num_coords=12,
    num_keypoints=4, x_scale=224.0, y_scale=224.0, w_scale=224.0, h_scale=224.0, min_score_thresh=0.5)

DETECTORS: dict[tuple[int, int], DetectorSpec] = {
    (s.num_boxes, s.num_coords): s for s in (BLAZEFACE_SHORT_RANGE, POSE_DETECTOR)}

LANDMARK_VALUES = NUM_LANDMARKS * 5
HEATMAP_SHAPE = (64, 64, NUM_LANDMARKS)


@dataclass(frozen=True)
class Recognized:
    """What :func:`recognize` found: ``kind`` ("detector", "landmark" or "unknown") and the tensor names it uses."""

    kind: str
    detector: DetectorSpec | None = None
    boxes: str = ""
    scores: str = ""
    landmarks: str = ""
    pose_flag: str = ""
    heatmap: str = ""


def frame_shape(a: np.ndarray) -> tuple[int, ...]:
    """Shape of one frame of ``a`` (``(frame, ...)``) with size-1 axes dropped."""
    return tuple(int(n) for n in np.shape(a)[1:] if n != 1)


def _detector(shapes: Mapping[str, tuple[int, ...]]) -> Recognized | None:
    if len(shapes) != 2:
        return None
    (na, sa), (nb, sb) = sorted(shapes.items(), key=lambda kv: -int(np.prod(kv[1])))
    size_a, size_b = int(np.prod(sa)), int(np.prod(sb))
    for (n, c), spec in DETECTORS.items():
        if size_a == n * c and size_b == n and sa[0] == n:
            return Recognized("detector", spec, boxes=na, scores=nb)
    return None


def _landmark(shapes: Mapping[str, tuple[int, ...]]) -> Recognized | None:
    by_size: dict[int, list[str]] = {}
    for name, s in shapes.items():
        by_size.setdefault(int(np.prod(s)), []).append(name)
    lm, flag = by_size.get(LANDMARK_VALUES, []), by_size.get(1, [])
    if len(lm) != 1 or len(flag) != 1:
        return None
    heat = [n for n, s in shapes.items() if s == HEATMAP_SHAPE]
    return Recognized("landmark", landmarks=lm[0], pose_flag=flag[0], heatmap=heat[0] if len(heat) == 1 else "")


def recognize(outputs: Mapping[str, np.ndarray]) -> Recognized:
    """Which shipped network produced ``outputs`` (``{name: (frame, ...)}``), by per-frame shapes alone."""
    shapes = {name: frame_shape(a) for name, a in outputs.items()}
    return _detector(shapes) or _landmark(shapes) or Recognized("unknown")
