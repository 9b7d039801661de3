"""SSD anchors as MediaPipe's ``SsdAnchorsCalculator`` generates them (non-multiscale path).

Layers with equal consecutive strides share one grid. For stride layer ``i``
of ``n`` the scale is ``min_scale + (max_scale - min_scale) * i / (n - 1)``
(the mean of both when ``n == 1``). Each layer adds one anchor per aspect
ratio at that scale and, when ``interpolated_scale_aspect_ratio > 0``, one
more at ``sqrt(scale * scale_next)`` (``scale_next = 1`` after the last layer).
The grid of stride ``s`` is ``ceil(H / s) x ceil(W / s)``; anchor centres are
``((x + offset_x) / grid_w, (y + offset_y) / grid_h)``, row-major over
``(y, x)``, the anchors of one cell consecutive. With ``fixed_anchor_size``
every anchor has ``w = h = 1`` (BlazeFace and BlazePose), else
``h = scale / sqrt(ratio)``, ``w = scale * sqrt(ratio)``.

>>> a = ssd_anchors(BLAZEFACE_SHORT_RANGE_ANCHORS)
>>> a.shape
(896, 4)
>>> a[0].tolist(), a[512].tolist()      # first cell of the stride-8 and the stride-16 grids
([0.03125, 0.03125, 1.0, 1.0], [0.0625, 0.0625, 1.0, 1.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SsdAnchorOptions", "ssd_anchors", "BLAZEFACE_SHORT_RANGE_ANCHORS", "POSE_DETECTOR_ANCHORS"]


@dataclass(frozen=True)
class SsdAnchorOptions:
    """The fields of MediaPipe's ``SsdAnchorsCalculatorOptions`` that the shipped detectors use."""

    input_size_height: int
    input_size_width: int
    strides: tuple[int, ...]
    min_scale: float
    max_scale: float
    aspect_ratios: tuple[float, ...] = (1.0,)
    anchor_offset_x: float = 0.5
    anchor_offset_y: float = 0.5
    interpolated_scale_aspect_ratio: float = 1.0
    reduce_boxes_in_lowest_layer: bool = False
    fixed_anchor_size: bool = False

    def __post_init__(self) -> None:
        if not self.strides or any(int(s) < 1 for s in self.strides):
            raise ValueError(f"ssd anchors: strides must be a non-empty tuple of ints >= 1, got {self.strides}")
        if self.input_size_height < 1 or self.input_size_width < 1:
            raise ValueError(f"ssd anchors: input size must be >= 1, got "
                             f"{self.input_size_height}x{self.input_size_width}")
        if not self.aspect_ratios or any(r <= 0 for r in self.aspect_ratios):
            raise ValueError(f"ssd anchors: aspect_ratios must be > 0, got {self.aspect_ratios}")


def _scale(opts: SsdAnchorOptions, i: int) -> float:
    n = len(opts.strides)
    if n == 1:
        return (opts.min_scale + opts.max_scale) * 0.5
    return opts.min_scale + (opts.max_scale - opts.min_scale) * i / (n - 1.0)


def _cell_shapes(opts: SsdAnchorOptions, first: int, last: int) -> list[tuple[float, float]]:
    """(w, h) of the anchors of one grid cell for the stride layers ``first .. last - 1``."""
    ratios: list[float] = []
    scales: list[float] = []
    for i in range(first, last):
        scale = _scale(opts, i)
        if i == 0 and opts.reduce_boxes_in_lowest_layer:
            ratios += [1.0, 2.0, 0.5]
            scales += [0.1, scale, scale]
            continue
        for r in opts.aspect_ratios:
            ratios.append(r)
            scales.append(scale)
        if opts.interpolated_scale_aspect_ratio > 0.0:
            nxt = 1.0 if i == len(opts.strides) - 1 else _scale(opts, i + 1)
            scales.append(math.sqrt(scale * nxt))
            ratios.append(opts.interpolated_scale_aspect_ratio)
    if opts.fixed_anchor_size:
        return [(1.0, 1.0)] * len(ratios)
    return [(s * math.sqrt(r), s / math.sqrt(r)) for s, r in zip(scales, ratios)]


def ssd_anchors(opts: SsdAnchorOptions) -> np.ndarray:
    """``(num_anchors, 4)`` float32 array of ``(x_center, y_center, w, h)``, normalized to the input."""
    out: list[np.ndarray] = []
    strides = opts.strides
    layer = 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        shapes = np.asarray(_cell_shapes(opts, layer, last), dtype=np.float64)
        gh = math.ceil(opts.input_size_height / strides[layer])
        gw = math.ceil(opts.input_size_width / strides[layer])
        yy, xx = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
        cx = ((xx + opts.anchor_offset_x) / gw).reshape(-1, 1).repeat(len(shapes), axis=1)
        cy = ((yy + opts.anchor_offset_y) / gh).reshape(-1, 1).repeat(len(shapes), axis=1)
        w = np.broadcast_to(shapes[:, 0], cx.shape)
        h = np.broadcast_to(shapes[:, 1], cx.shape)
        out.append(np.stack([cx, cy, w, h], axis=-1).reshape(-1, 4))
        layer = last
    return np.concatenate(out).astype(np.float32)


# face_detection_short_range.pbtxt (FaceDetectionOptions) + face_detection.pbtxt (SsdAnchorsCalculator)
BLAZEFACE_SHORT_RANGE_ANCHORS = SsdAnchorOptions(
    input_size_height=128, input_size_width=128, strides=(8, 16, 16, 16), min_scale=0.1484375,
    max_scale=0.75, interpolated_scale_aspect_ratio=1.0, fixed_anchor_size=True)

# pose_detection_cpu.pbtxt (SsdAnchorsCalculator; interpolated_scale_aspect_ratio at its proto default 1.0)
POSE_DETECTOR_ANCHORS = SsdAnchorOptions(
    input_size_height=224, input_size_width=224, strides=(8, 16, 32, 32, 32), min_scale=0.1484375,
    max_scale=0.75, fixed_anchor_size=True)
