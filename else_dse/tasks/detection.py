"""SSD detections as MediaPipe decodes them: ``TensorsToDetectionsCalculator`` and weighted NMS.

Decoding (per anchor ``a = (x_c, y_c, w, h)``, ``reverse_output_order``, i.e.
raw boxes ordered ``x, y, w, h``, then keypoints ``x, y``)::

    x = raw_x / x_scale * a.w + a.x_c          w = raw_w / w_scale * a.w
    y = raw_y / y_scale * a.h + a.y_c          h = raw_h / h_scale * a.h
    box = (x - w/2, y - h/2, x + w/2, y + h/2)  keypoint_k = (raw_kx / x_scale * a.w + a.x_c, ...)

Scores: ``sigmoid(clip(raw, -score_clipping_thresh, +score_clipping_thresh))``;
an anchor is kept when its score ``>= min_score_thresh`` (MediaPipe drops a
score below the threshold) and its box has non-negative, finite width and
height. All coordinates are normalized to the model input (``[0, 1]`` inside it).

Weighted NMS (``NonMaxSuppressionCalculator``, ``algorithm: WEIGHTED``,
``overlap_type: INTERSECTION_OVER_UNION``): take the highest-scoring remaining
detection; every remaining detection whose IoU with it is ``>
min_suppression_threshold`` (itself included) is a candidate; the output is the
top detection with its score and with box corners and keypoints replaced by the
score-weighted mean of the candidates'; the candidates are removed. Ties in
score keep the original anchor order (stable sort). The loop stops when no
detection was removed (a zero-area top box).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anchors import SsdAnchorOptions, ssd_anchors

__all__ = ["DetectorSpec", "Detection", "decode_detections", "weighted_nms", "iou", "detect"]


@dataclass(frozen=True)
class Detection:
    """One detection, normalized to the model input: box corners, score and keypoints ``((x, y), ...)``."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    score: float
    keypoints: tuple[tuple[float, float], ...] = ()

    @property
    def width(self) -> float:
        return self.xmax - self.xmin

    @property
    def height(self) -> float:
        return self.ymax - self.ymin

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)


@dataclass(frozen=True)
class DetectorSpec:
    """One SSD detector's decoding options, as its MediaPipe graph sets them."""

    name: str
    anchors: SsdAnchorOptions
    num_boxes: int
    num_coords: int
    num_keypoints: int
    x_scale: float
    y_scale: float
    w_scale: float
    h_scale: float
    min_score_thresh: float
    score_clipping_thresh: float = 100.0
    min_suppression_threshold: float = 0.3
    keypoint_coord_offset: int = 4
    anchor_table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.num_coords != self.keypoint_coord_offset + 2 * self.num_keypoints:
            raise ValueError(f"detector {self.name}: num_coords {self.num_coords} != "
                             f"{self.keypoint_coord_offset} + 2 * {self.num_keypoints} keypoints")
        table = ssd_anchors(self.anchors)
        if len(table) != self.num_boxes:
            raise ValueError(f"detector {self.name}: the anchor options give {len(table)} anchors, "
                             f"num_boxes is {self.num_boxes}")
        object.__setattr__(self, "anchor_table", table)

    @property
    def input_size(self) -> tuple[int, int]:
        """``(height, width)`` of the model input in pixels."""
        return self.anchors.input_size_height, self.anchors.input_size_width


def _decode_arrays(spec: DetectorSpec, raw_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``(N, 4)`` as (xmin, ymin, xmax, ymax) and keypoints ``(N, K, 2)``, in float32 as MediaPipe."""
    raw = np.asarray(raw_boxes, dtype=np.float32).reshape(spec.num_boxes, spec.num_coords)
    a = spec.anchor_table
    ax, ay, aw, ah = a[:, 0], a[:, 1], a[:, 2], a[:, 3]
    xc = raw[:, 0] / np.float32(spec.x_scale) * aw + ax
    yc = raw[:, 1] / np.float32(spec.y_scale) * ah + ay
    w = raw[:, 2] / np.float32(spec.w_scale) * aw
    h = raw[:, 3] / np.float32(spec.h_scale) * ah
    boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1)
    k = raw[:, spec.keypoint_coord_offset:].reshape(spec.num_boxes, spec.num_keypoints, 2)
    kx = k[:, :, 0] / np.float32(spec.x_scale) * aw[:, None] + ax[:, None]
    ky = k[:, :, 1] / np.float32(spec.y_scale) * ah[:, None] + ay[:, None]
    return boxes, np.stack([kx, ky], axis=-1)


def scores(spec: DetectorSpec, raw_scores: np.ndarray) -> np.ndarray:
    """Sigmoid of the clipped raw scores, ``(N,)`` float32."""
    s = np.asarray(raw_scores, dtype=np.float32).reshape(spec.num_boxes)
    c = np.float32(spec.score_clipping_thresh)
    with np.errstate(over="ignore"):  # exp(100) overflows float32 to inf: the score is 0, as in C++
        return (1.0 / (1.0 + np.exp(-np.clip(s, -c, c)))).astype(np.float32)


def decode_detections(spec: DetectorSpec, raw_boxes: np.ndarray, raw_scores: np.ndarray) -> list[Detection]:
    """Detections of one frame before NMS, in anchor order (``raw_*`` of any shape with the right size)."""
    boxes, kps = _decode_arrays(spec, raw_boxes)
    sc = scores(spec, raw_scores)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    keep = (sc >= np.float32(spec.min_score_thresh)) & (w >= 0) & (h >= 0) & np.isfinite(w) & np.isfinite(h)
    return [Detection(*(float(v) for v in boxes[i]), float(sc[i]), tuple((float(x), float(y)) for x, y in kps[i]))
            for i in np.flatnonzero(keep)]


def iou(a: Detection, b: Detection) -> float:
    """Intersection over union of two boxes (0 when they do not overlap or the union is empty)."""
    iw = min(a.xmax, b.xmax) - max(a.xmin, b.xmin)
    ih = min(a.ymax, b.ymax) - max(a.ymin, b.ymin)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _ious(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one box ``(4,)`` with each of ``boxes (n, 4)``, corners (xmin, ymin, xmax, ymax); as :func:`iou`."""
    iw = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    ih = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area = lambda b: np.maximum(b[..., 2] - b[..., 0], 0) * np.maximum(b[..., 3] - b[..., 1], 0)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def weighted_nms(detections: list[Detection], min_suppression_threshold: float) -> list[Detection]:
    """MediaPipe's weighted non-maximum suppression (see the module docstring), highest score first."""
    if not detections:
        return []
    order = sorted(range(len(detections)), key=lambda i: -detections[i].score)
    dets = [detections[i] for i in order]
    boxes = np.array([[d.xmin, d.ymin, d.xmax, d.ymax] for d in dets], dtype=np.float64)
    sc = np.array([d.score for d in dets], dtype=np.float64)
    n_kp = len(dets[0].keypoints)
    kps = np.array([d.keypoints for d in dets], dtype=np.float64).reshape(len(dets), n_kp, 2)
    remaining = np.arange(len(dets))
    out: list[Detection] = []
    while remaining.size:
        top = dets[remaining[0]]
        near = _ious(boxes[remaining[0]], boxes[remaining]) > min_suppression_threshold
        group = remaining[near]
        if group.size:
            w = sc[group]
            corners = (boxes[group] * w[:, None]).sum(axis=0) / w.sum()
            mean_kp = (kps[group] * w[:, None, None]).sum(axis=0) / w.sum()
            top = Detection(*(float(v) for v in corners), top.score, tuple((float(x), float(y)) for x, y in mean_kp))
        out.append(top)
        if not group.size:  # nothing removed (a zero-area top box): MediaPipe stops here
            break
        remaining = remaining[~near]
    return out


def detect(spec: DetectorSpec, raw_boxes: np.ndarray, raw_scores: np.ndarray) -> list[Detection]:
    """Decoded, score-filtered and weighted-NMS detections of one frame, highest score first."""
    return weighted_nms(decode_detections(spec, raw_boxes, raw_scores), spec.min_suppression_threshold)
