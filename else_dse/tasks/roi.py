"""Regions of interest of MediaPipe's pose pipeline, and the crops taken from them.

A :class:`Rect` is MediaPipe's ``NormalizedRect``: centre, width and height
normalized to the image (``x / image_width``, ``y / image_height``) and a
rotation in radians, clockwise on screen (y points down).

Pose detection -> ROI (``pose_detection_to_roi.pbtxt``):

1. ``AlignmentPointsRectsCalculator`` with keypoints 0 (mid-hip, the centre)
   and 1 (the size/rotation point), target angle 90 degrees: in pixels, the
   centre is keypoint 0, the side is ``2 * |kp1 - kp0|`` (a square in
   pixels), the rotation ``normalize(pi/2 - atan2(-(y1 - y0), x1 - x0))``;
2. ``RectTransformationCalculator`` with ``scale_x = scale_y = 1.25``,
   ``square_long: true`` (no shift): the long side in pixels, times 1.25.

``normalize`` wraps an angle into ``[-pi, pi)``.

Crops (``ImageToTensorCalculator``, OpenCV path): the rotated rectangle's
corners go to the output's corners, ``(0, 0)`` to ``(width, height)``, and
the image is sampled bilinearly there. So output pixel ``(col, row)`` of an
``S x S`` crop samples the image at ``centre + R(rotation) @ ((col / S - 0.5)
* w, (row / S - 0.5) * h)`` in pixels, with pixel centres at integer
coordinates and ``R = [[cos, -sin], [sin, cos]]``. Border: replicate for the
landmark crops, zeros for the detector's letterbox (``BORDER_ZERO``). Values
stay ``uint8`` (OpenCV warps the 8-bit image, rounding to nearest) and are
mapped to the model's range afterwards.

Landmarks go back to the image as ``LandmarkProjectionCalculator`` does:
``p = R(rotation) @ (p_crop - 0.5) * (w, h) + centre`` in normalized units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .detection import Detection

__all__ = ["Rect", "normalize_radians", "alignment_rect", "transform_rect", "pose_roi", "crop",
           "letterbox_rect", "remove_letterbox", "project_to_image", "POSE_ROI_SCALE"]

POSE_ROI_SCALE = 1.25


@dataclass(frozen=True)
class Rect:
    """MediaPipe ``NormalizedRect``: centre and size normalized to the image, rotation (radians, clockwise)."""

    x_center: float
    y_center: float
    width: float
    height: float
    rotation: float = 0.0

    def pixels(self, image_size: tuple[int, int]) -> tuple[float, float, float, float]:
        """``(x_center, y_center, width, height)`` in pixels of an image ``(width, height)``."""
        w, h = image_size
        return self.x_center * w, self.y_center * h, self.width * w, self.height * h


def normalize_radians(angle: float) -> float:
    """``angle`` wrapped into ``[-pi, pi)``."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def alignment_rect(det: Detection, image_size: tuple[int, int], start: int = 0, end: int = 1,
                   target_angle: float = math.pi / 2) -> Rect:
    """``AlignmentPointsRectsCalculator``: square at keypoint ``start``, side twice the distance to ``end``."""
    w, h = image_size
    if len(det.keypoints) <= max(start, end):
        raise ValueError(f"roi: the detection has {len(det.keypoints)} keypoints, needs index {max(start, end)}")
    x0, y0 = det.keypoints[start][0] * w, det.keypoints[start][1] * h
    x1, y1 = det.keypoints[end][0] * w, det.keypoints[end][1] * h
    side = 2.0 * math.hypot(x1 - x0, y1 - y0)
    rotation = normalize_radians(target_angle - math.atan2(-(y1 - y0), x1 - x0))
    return Rect(x0 / w, y0 / h, side / w, side / h, rotation)


def transform_rect(rect: Rect, image_size: tuple[int, int], scale_x: float = 1.0, scale_y: float = 1.0,
                   shift_x: float = 0.0, shift_y: float = 0.0, square_long: bool = False) -> Rect:
    """``RectTransformationCalculator`` on a normalized rect (shift along the rotated axes, square, scale)."""
    iw, ih = image_size
    w, h, r = rect.width, rect.height, rect.rotation
    if r == 0.0:
        xc, yc = rect.x_center + w * shift_x, rect.y_center + h * shift_y
    else:
        xc = rect.x_center + (iw * w * shift_x * math.cos(r) - ih * h * shift_y * math.sin(r)) / iw
        yc = rect.y_center + (iw * w * shift_x * math.sin(r) + ih * h * shift_y * math.cos(r)) / ih
    if square_long:
        side = max(w * iw, h * ih)
        w, h = side / iw, side / ih
    return Rect(xc, yc, w * scale_x, h * scale_y, r)


def pose_roi(det: Detection, image_size: tuple[int, int]) -> Rect:
    """The landmark network's ROI from a pose detection (keypoints normalized to the image ``(width, height)``)."""
    raw = alignment_rect(det, image_size, 0, 1, math.pi / 2)
    return transform_rect(raw, image_size, POSE_ROI_SCALE, POSE_ROI_SCALE, square_long=True)


def _sample_points(rect: Rect, image_size: tuple[int, int], out_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    oh, ow = out_size
    cx, cy, w, h = rect.pixels(image_size)
    u = (np.arange(ow) / ow - 0.5) * w
    v = (np.arange(oh) / oh - 0.5) * h
    uu, vv = np.meshgrid(u, v)
    c, s = math.cos(rect.rotation), math.sin(rect.rotation)
    return cy + s * uu + c * vv, cx + c * uu - s * vv


def crop(image: np.ndarray, rect: Rect, out_size: tuple[int, int], border: str = "replicate") -> np.ndarray:
    """The rotated ``rect`` of an RGB ``uint8`` image as an ``out_size = (height, width)`` uint8 crop."""
    from scipy.ndimage import map_coordinates

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(f"crop: image must be uint8 (H, W, C), got {image.dtype} {image.shape}")
    if border not in ("replicate", "zero"):
        raise ValueError(f"crop: border must be 'replicate' or 'zero', got {border!r}")
    rows, cols = _sample_points(rect, (image.shape[1], image.shape[0]), out_size)
    mode = "nearest" if border == "replicate" else "constant"
    chans = [map_coordinates(image[:, :, ch].astype(np.float64), [rows, cols], order=1, mode=mode, cval=0.0)
             for ch in range(image.shape[2])]
    return np.clip(np.rint(np.stack(chans, axis=-1)), 0, 255).astype(np.uint8)


def letterbox_rect(image_size: tuple[int, int], aspect: float = 1.0) -> tuple[Rect, tuple[float, float, float, float]]:
    """The whole image fitted into an output of ``width / height == aspect`` (``keep_aspect_ratio``).

    Returns the rect to crop and the letterbox padding ``(left, top, right,
    bottom)`` as fractions of the output, as MediaPipe's ``LETTERBOX_PADDING``.
    """
    w, h = image_size
    if w / h > aspect:  # too wide: pad top and bottom
        rh = w / aspect / h
        pad = (1.0 - 1.0 / rh) / 2
        return Rect(0.5, 0.5, 1.0, rh), (0.0, pad, 0.0, pad)
    rw = h * aspect / w
    pad = (1.0 - 1.0 / rw) / 2
    return Rect(0.5, 0.5, rw, 1.0), (pad, 0.0, pad, 0.0)


def remove_letterbox(det: Detection, padding: tuple[float, float, float, float]) -> Detection:
    """``DetectionLetterboxRemovalCalculator``: a detection on the letterboxed input, in image coordinates."""
    left, top, right, bottom = padding
    sx, sy = 1.0 - left - right, 1.0 - top - bottom
    return Detection((det.xmin - left) / sx, (det.ymin - top) / sy, (det.xmax - left) / sx, (det.ymax - top) / sy,
                     det.score, tuple(((x - left) / sx, (y - top) / sy) for x, y in det.keypoints))


def project_to_image(xy: np.ndarray, rect: Rect) -> np.ndarray:
    """``LandmarkProjectionCalculator``: points ``(..., 2)`` normalized to the crop, normalized to the image."""
    p = np.asarray(xy, dtype=np.float64) - 0.5
    c, s = math.cos(rect.rotation), math.sin(rect.rotation)
    x = (c * p[..., 0] - s * p[..., 1]) * rect.width + rect.x_center
    y = (s * p[..., 0] + c * p[..., 1]) * rect.height + rect.y_center
    return np.stack([x, y], axis=-1)
