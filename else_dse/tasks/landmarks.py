"""BlazePose landmarks as MediaPipe decodes them (``TensorsToLandmarksCalculator`` + heatmap refinement).

The landmark tensor holds 39 landmarks x 5 values ``(x, y, z, visibility,
presence)`` in pixels of the 256x256 crop (33 body landmarks, then 6
auxiliary ones). Decoding: ``x / 256``, ``y / 256``, ``z / 256`` (normalized
to the crop), ``visibility = sigmoid(raw)``, ``presence = sigmoid(raw)``. The
pose-flag tensor is the pose presence score as it is (the model applies the
sigmoid; MediaPipe thresholds it at 0.5 with no activation).

Refinement (``RefineLandmarksFromHeatmapCalculator``, ``kernel_size: 7``,
``min_confidence_to_refine`` at its default 0.5): for landmark ``k`` at
``(col, row) = (int(x * 64), int(y * 64))`` on the 64x64 heatmap, over the
7x7 window clipped to the map, ``c = sigmoid(heatmap[row, col, k])``; if
``max(c) >= 0.5`` the landmark moves to ``(sum(col * c) / sum(c) / 64,
sum(row * c) / sum(c) / 64)``. A landmark whose cell is outside the map keeps
its regression; the check of ``row`` is against the map's *width* and ``col``
against its height, as in MediaPipe (equal here, 64x64). Visibility and
presence are not refined (the defaults ``refine_presence/visibility: false``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Landmarks", "decode_landmarks", "refine_from_heatmap", "NUM_LANDMARKS", "NUM_BODY_LANDMARKS"]

NUM_LANDMARKS = 39
NUM_BODY_LANDMARKS = 33
CROP_SIZE = 256
KERNEL_SIZE = 7
MIN_CONFIDENCE_TO_REFINE = 0.5


@dataclass(frozen=True)
class Landmarks:
    """Landmarks of one crop: ``xyz (39, 3)``, ``visibility``, ``presence (39,)``, pose presence."""

    xyz: np.ndarray
    visibility: np.ndarray
    presence: np.ndarray
    pose_presence: float

    @property
    def body_xy(self) -> np.ndarray:
        """``(33, 2)`` x, y of the 33 body landmarks, normalized to the crop."""
        return self.xyz[:NUM_BODY_LANDMARKS, :2]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def refine_from_heatmap(xy: np.ndarray, heatmap: np.ndarray, kernel_size: int = KERNEL_SIZE,
                        min_confidence: float = MIN_CONFIDENCE_TO_REFINE) -> np.ndarray:
    """Landmarks ``(K, 2)`` (normalized) moved to the local weighted mean of the raw heatmap ``(H, W, K)``."""
    hm_h, hm_w, k = heatmap.shape
    if k != len(xy):
        raise ValueError(f"landmarks: heatmap has {k} channels for {len(xy)} landmarks")
    out = np.array(xy, dtype=np.float64, copy=True)
    off = (kernel_size - 1) // 2
    for i in range(k):
        col, row = int(xy[i, 0] * hm_w), int(xy[i, 1] * hm_h)  # truncation toward zero, as a C++ int cast
        if col < 0 or col >= hm_w or row < 0 or col >= hm_h:  # MediaPipe compares col with the height
            continue
        r0, r1 = max(0, row - off), min(hm_h, row + off + 1)
        c0, c1 = max(0, col - off), min(hm_w, col + off + 1)
        conf = _sigmoid(heatmap[r0:r1, c0:c1, i].astype(np.float64))
        total = conf.sum()
        if conf.size and conf.max() >= min_confidence and total > 0:
            rows, cols = np.mgrid[r0:r1, c0:c1]
            out[i, 0] = (cols * conf).sum() / hm_w / total
            out[i, 1] = (rows * conf).sum() / hm_h / total
    return out


def decode_landmarks(raw_landmarks: np.ndarray, pose_flag: np.ndarray | float,
                     heatmap: np.ndarray | None = None) -> Landmarks:
    """Decode one crop: raw landmark tensor (195 values), pose flag (1 value), optional heatmap ``(64, 64, 39)``."""
    raw = np.asarray(raw_landmarks, dtype=np.float64).reshape(-1)
    if raw.size != NUM_LANDMARKS * 5:
        raise ValueError(f"landmarks: expected {NUM_LANDMARKS * 5} values (39 x 5), got {raw.size}")
    raw = raw.reshape(NUM_LANDMARKS, 5)
    xyz = raw[:, :3] / CROP_SIZE
    if heatmap is not None:
        hm = np.asarray(heatmap)
        hm = hm.reshape(hm.shape[-3:]) if hm.ndim > 3 else hm
        xyz[:, :2] = refine_from_heatmap(xyz[:, :2], hm)
    flag = np.asarray(pose_flag, dtype=np.float64).reshape(-1)
    if flag.size != 1:
        raise ValueError(f"landmarks: the pose flag must be one value, got {flag.size}")
    return Landmarks(xyz, _sigmoid(raw[:, 3]), _sigmoid(raw[:, 4]), float(flag[0]))
