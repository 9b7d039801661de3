"""Pose ROIs, crops and the task metrics on constructed cases (golden values by hand)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from else_dse.tasks import fidelity
from else_dse.tasks.detection import Detection
from else_dse.tasks.landmarks import Landmarks
from else_dse.tasks.metrics import detection_metrics, landmark_metrics, match_detections
from else_dse.tasks.roi import (Rect, alignment_rect, crop, letterbox_rect, normalize_radians, pose_roi,
                                project_to_image, remove_letterbox, transform_rect)


def _det(kps, box=(0.0, 0.0, 1.0, 1.0), score=0.9):
    return Detection(*box, score, tuple(kps))


# ---------------------------------------------------------------- ROI

def test_normalize_radians():
    assert normalize_radians(math.pi) == pytest.approx(-math.pi)
    assert normalize_radians(-math.pi) == pytest.approx(-math.pi)
    assert normalize_radians(3 * math.pi / 2) == pytest.approx(-math.pi / 2)
    assert normalize_radians(0.3) == pytest.approx(0.3)


def test_alignment_rect_upright_and_lying():
    size = (200, 100)  # width, height
    # hip centre (100, 50) px, scale point 20 px straight up: upright person, no rotation, 40 px square
    r = alignment_rect(_det([(0.5, 0.5), (0.5, 0.3)]), size)
    assert (r.x_center, r.y_center, r.width, r.height) == pytest.approx((0.5, 0.5, 0.2, 0.4))
    assert r.rotation == pytest.approx(0.0)
    # scale point 10 px to the right: the body points right, rotated 90 degrees clockwise
    r = alignment_rect(_det([(0.5, 0.5), (0.55, 0.5)]), size)
    assert r.rotation == pytest.approx(math.pi / 2) and r.width * 200 == pytest.approx(20)
    # scale point below: upside down
    r = alignment_rect(_det([(0.5, 0.5), (0.5, 0.6)]), size)
    assert abs(r.rotation) == pytest.approx(math.pi)


def test_transform_rect_square_scale_shift():
    size = (200, 100)
    r = transform_rect(Rect(0.5, 0.5, 0.2, 0.6), size, 1.25, 1.25, square_long=True)
    # long side max(0.2*200, 0.6*100) = 60 px, times 1.25 = 75 px
    assert (r.width * 200, r.height * 100) == pytest.approx((75, 75))
    s = transform_rect(Rect(0.5, 0.5, 0.1, 0.2, 0.0), size, shift_y=-0.5)
    assert (s.x_center, s.y_center) == pytest.approx((0.5, 0.4))
    # rotated by 90 degrees: a shift along the rect's y moves the centre along the image's -x
    t = transform_rect(Rect(0.5, 0.5, 0.1, 0.2, math.pi / 2), size, shift_y=0.5)
    assert (t.x_center * 200, t.y_center * 100) == pytest.approx((100 - 0.2 * 100 * 0.5, 50))


def test_pose_roi_golden():
    r = pose_roi(_det([(0.5, 0.5), (0.5, 0.3)]), (200, 100))
    assert (r.width * 200, r.height * 100, r.rotation) == pytest.approx((50, 50, 0.0))


def test_letterbox_and_its_removal():
    rect, pad = letterbox_rect((640, 272))
    top = (1 - 272 / 640) / 2
    assert pad == pytest.approx((0.0, top, 0.0, top))
    assert (rect.width * 640, rect.height * 272) == pytest.approx((640, 640))
    d = remove_letterbox(Detection(0.25, top, 0.75, 0.5, 0.8, ((0.5, 0.5),)), pad)
    assert (d.xmin, d.ymin, d.xmax) == pytest.approx((0.25, 0.0, 0.75))
    assert d.ymax == pytest.approx((0.5 - top) / (1 - 2 * top)) and d.keypoints[0][1] == pytest.approx(0.5)
    tall, pad2 = letterbox_rect((100, 200))
    assert pad2 == pytest.approx((0.25, 0.0, 0.25, 0.0)) and tall.width == pytest.approx(2.0)


def test_crop_identity_rotation_and_border():
    img = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    whole = Rect(0.5, 0.5, 1.0, 1.0)
    np.testing.assert_array_equal(crop(img, whole, (8, 8)), img)
    # 90 degrees clockwise: output (row, col) samples image (y = col, x = 8 - row)
    rot = crop(img, Rect(0.5, 0.5, 1.0, 1.0, math.pi / 2), (8, 8))
    for row in range(1, 8):
        np.testing.assert_array_equal(rot[row], img[:, 8 - row])
    # zero border outside the image, replicate keeps the edge
    z = crop(img, Rect(0.5, 0.5, 2.0, 1.0), (8, 8), border="zero")
    assert (z[:, 0] == 0).all() and (z[:, 4] == img[:, 4]).all()
    rep = crop(img, Rect(0.5, 0.5, 2.0, 1.0), (8, 8), border="replicate")
    np.testing.assert_array_equal(rep[:, 0], img[:, 0])
    with pytest.raises(ValueError, match="uint8"):
        crop(img.astype(np.float32), whole, (8, 8))


@pytest.mark.parametrize("rotation", [0.0, 0.4, -2.0, math.pi / 2])
def test_projection_inverts_the_crop(rotation):
    """A bright pixel found in the crop projects back onto its place in the image."""
    img = np.zeros((60, 80, 3), np.uint8)
    img[31, 47] = 255
    rect = Rect(45 / 80, 30 / 60, 24 / 80, 24 / 60, rotation)
    c = crop(img, rect, (48, 48))
    row, col = np.unravel_index(np.argmax(c[:, :, 0]), c.shape[:2])
    x, y = project_to_image(np.array([col / 48, row / 48]), rect)
    assert (x * 80, y * 60) == pytest.approx((47, 31), abs=0.5)


# ---------------------------------------------------------------- detection metrics

def test_match_detections_greedy_by_iou():
    ref = [Detection(0, 0, 1, 1, 0.9), Detection(2, 2, 3, 3, 0.9)]
    out = [Detection(2, 2, 3, 3.2, 0.8), Detection(0, 0, 1, 1.1, 0.8), Detection(9, 9, 10, 10, 0.7)]
    m = match_detections(ref, out)
    assert [(i, j) for i, j, _ in m] == [(0, 1), (1, 0)]
    assert m[0][2] == pytest.approx(1 / 1.1)


def test_detection_metrics_golden():
    ref = [[Detection(0, 0, 0.5, 0.5, 0.9, ((0.25, 0.25),))], [Detection(0, 0, 0.5, 0.5, 0.9, ((0.1, 0.1),))]]
    out = [[Detection(0, 0, 0.5, 0.5, 0.9, ((0.25, 0.26),)), Detection(0.7, 0.7, 0.9, 0.9, 0.6, ((0.8, 0.8),))],
           [Detection(0.25, 0, 0.75, 0.5, 0.9, ((0.1, 0.1),))]]  # IoU 1/3: no match
    m = detection_metrics(ref, out, (100, 200))
    assert (m["precision"], m["recall"], m["n_matched"], m["n_replay"], m["n_reference"]) == (1 / 3, 0.5, 1, 3, 2)
    assert m["mean_iou"] == 1.0
    assert m["keypoint_px"] == pytest.approx(0.01 * 100)  # y offset scaled by the input height


def test_detection_metrics_empty_cases():
    one = [Detection(0, 0, 1, 1, 0.9)]
    both_empty = detection_metrics([[], []], [[], []], (128, 128))
    assert (both_empty["precision"], both_empty["recall"]) == (1.0, 1.0)
    assert math.isnan(both_empty["mean_iou"]) and math.isnan(both_empty["keypoint_px"])
    no_ref = detection_metrics([[]], [one], (128, 128))
    assert (no_ref["precision"], no_ref["recall"]) == (0.0, 1.0)
    no_replay = detection_metrics([one], [[]], (128, 128))
    assert (no_replay["precision"], no_replay["recall"]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="frames"):
        detection_metrics([[]], [], (128, 128))


# ---------------------------------------------------------------- landmark metrics

def _lm(xy, presence):
    xyz = np.zeros((39, 3))
    xyz[:33, :2] = xy
    return Landmarks(xyz, np.ones(39), np.ones(39), presence)


def test_landmark_metrics_golden():
    base = np.full((33, 2), 0.5)
    moved = base.copy()
    moved[:3, 0] += 0.06                     # 3 of 33 landmarks beyond 0.05
    moved[3:6, 1] += 0.04                    # within the threshold
    ref = [_lm(base, 0.9), _lm(base, 0.2)]   # the second frame has no person in the float run: not counted
    out = [_lm(moved, 0.9), _lm(base + 0.3, 0.7)]
    m = landmark_metrics(ref, out)
    assert m["pck@0.05"] == pytest.approx(30 / 33)
    assert m["nme"] == pytest.approx((3 * 0.06 + 3 * 0.04) / 33)
    assert (m["presence_agree"], m["n_frames"]) == (0.5, 1.0)
    none = landmark_metrics([_lm(base, 0.1)], [_lm(base, 0.1)])
    assert math.isnan(none["pck@0.05"]) and math.isnan(none["nme"]) and none["presence_agree"] == 1.0


def test_fidelity_dispatches_to_the_landmark_decoder():
    rng = np.random.default_rng(1)
    raw = rng.uniform(0, 256, (2, 1, 39, 5)).astype(np.float32)
    ref = {"Identity": raw.reshape(2, 1, 195), "Identity_1": np.array([[[0.9]], [[0.8]]], np.float32)}
    shifted = raw.copy()
    shifted[:, :, :, 0] += 256 * 0.1         # every landmark 0.1 of the crop to the right
    out = {"Identity": shifted.reshape(2, 1, 195), "Identity_1": ref["Identity_1"]}
    f = fidelity(None, out, ref)
    assert f["landmark.pck@0.05"] == 0.0 and f["landmark.nme"] == pytest.approx(0.1, rel=1e-5)
    assert f["rel_l2[Identity_1]"] == 0.0 and "rel_l2[Identity]" in f


def test_fidelity_missing_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model"):
        fidelity(tmp_path / "nope.tflite", {"a": np.ones((1, 2))}, {"a": np.ones((1, 2))})
