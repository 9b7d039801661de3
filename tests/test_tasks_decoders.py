"""Task decoders against golden values worked out by hand from MediaPipe's documented options."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from else_dse.tasks.anchors import (BLAZEFACE_SHORT_RANGE_ANCHORS, POSE_DETECTOR_ANCHORS, SsdAnchorOptions,
                                    ssd_anchors)
from else_dse.tasks.detection import Detection, decode_detections, detect, iou, weighted_nms
from else_dse.tasks.landmarks import decode_landmarks, refine_from_heatmap
from else_dse.tasks.networks import BLAZEFACE_SHORT_RANGE, POSE_DETECTOR, recognize


# ---------------------------------------------------------------- anchors

def test_blazeface_anchor_count_and_positions():
    a = ssd_anchors(BLAZEFACE_SHORT_RANGE_ANCHORS)
    # stride 8: 16x16 cells x (1 ratio + 1 interpolated) = 512; strides 16,16,16 share an 8x8 grid, 3 x 2 per cell
    assert a.shape == (16 * 16 * 2 + 8 * 8 * 6, 4) == (896, 4)
    np.testing.assert_allclose(a[:, 2:], 1.0)  # fixed_anchor_size
    assert a[0, :2].tolist() == a[1, :2].tolist() == [0.5 / 16, 0.5 / 16]
    assert a[2, :2].tolist() == [1.5 / 16, 0.5 / 16]          # next cell along x
    assert a[32, :2].tolist() == [0.5 / 16, 1.5 / 16]         # next row
    assert a[511, :2].tolist() == [15.5 / 16, 15.5 / 16]
    np.testing.assert_array_equal(a[512:518, :2], [[0.5 / 8, 0.5 / 8]] * 6)
    assert a[518, :2].tolist() == [1.5 / 8, 0.5 / 8]
    assert a[-1, :2].tolist() == [7.5 / 8, 7.5 / 8]


def test_pose_detector_anchor_count_and_positions():
    a = ssd_anchors(POSE_DETECTOR_ANCHORS)
    # 224 / 8 = 28: 28*28*2 = 1568; 224 / 16 = 14: 14*14*2 = 392; three stride-32 layers: 7*7*6 = 294
    assert len(a) == 1568 + 392 + 294 == 2254
    assert a[1568, :2].tolist() == pytest.approx([0.5 / 14, 0.5 / 14])
    assert a[1960, :2].tolist() == pytest.approx([0.5 / 7, 0.5 / 7])
    assert a[1960 + 6, :2].tolist() == pytest.approx([1.5 / 7, 0.5 / 7])
    assert a[-1, :2].tolist() == pytest.approx([6.5 / 7, 6.5 / 7])


def test_anchor_sizes_without_fixed_size():
    o = SsdAnchorOptions(input_size_height=32, input_size_width=32, strides=(8, 16), min_scale=0.2, max_scale=0.6,
                         aspect_ratios=(1.0, 2.0))
    a = ssd_anchors(o)
    assert len(a) == 4 * 4 * 3 + 2 * 2 * 3
    r2 = math.sqrt(2.0)
    # layer 0 (scale 0.2): ratio 1, ratio 2, interpolated sqrt(0.2 * 0.6) at ratio 1; (w, h)
    np.testing.assert_allclose(a[:3, 2:], [[0.2, 0.2], [0.2 * r2, 0.2 / r2], [math.sqrt(0.12)] * 2], rtol=1e-6)
    # layer 1 (scale 0.6, the last: interpolated with 1.0)
    np.testing.assert_allclose(a[48:51, 2:], [[0.6, 0.6], [0.6 * r2, 0.6 / r2], [math.sqrt(0.6)] * 2], rtol=1e-6)
    low = ssd_anchors(SsdAnchorOptions(input_size_height=16, input_size_width=16, strides=(16,), min_scale=0.2,
                                       max_scale=0.6, reduce_boxes_in_lowest_layer=True))
    s = 0.4  # one stride: mean of min and max
    np.testing.assert_allclose(low[:, 2:], [[0.1, 0.1], [s * r2, s / r2], [s / r2, s * r2]], rtol=1e-6)


def test_anchor_options_checked():
    with pytest.raises(ValueError, match="strides"):
        SsdAnchorOptions(input_size_height=8, input_size_width=8, strides=(), min_scale=0.1, max_scale=0.5)


# ---------------------------------------------------------------- box decoding

def _raw_face(anchor: int, box: tuple[float, float, float, float], kps: list[tuple[float, float]], logit: float):
    """A BlazeFace output with one anchor set to ``box = (x_c, y_c, w, h)`` (normalized) and keypoints."""
    a = ssd_anchors(BLAZEFACE_SHORT_RANGE_ANCHORS)[anchor]
    raw = np.zeros((896, 16), np.float32)
    raw[anchor, :4] = [(box[0] - a[0]) * 128, (box[1] - a[1]) * 128, box[2] * 128, box[3] * 128]
    for k, (x, y) in enumerate(kps):
        raw[anchor, 4 + 2 * k: 6 + 2 * k] = [(x - a[0]) * 128, (y - a[1]) * 128]
    scores = np.full((896, 1), -20.0, np.float32)
    scores[anchor] = logit
    return raw, scores


def test_decode_constructed_box_and_keypoints():
    kps = [(0.4 + 0.02 * k, 0.45 + 0.01 * k) for k in range(6)]
    raw, sc = _raw_face(600, (0.5, 0.4, 0.25, 0.3), kps, 2.0)
    (d,) = decode_detections(BLAZEFACE_SHORT_RANGE, raw, sc)
    assert (d.xmin, d.ymin, d.xmax, d.ymax) == pytest.approx((0.375, 0.25, 0.625, 0.55), abs=1e-6)
    assert d.score == pytest.approx(1 / (1 + math.exp(-2.0)), rel=1e-6)
    np.testing.assert_allclose(d.keypoints, kps, atol=1e-6)
    # raw x = 12.8 px right of the anchor at scale 128 moves the centre by 0.1 of the anchor's width (1.0)
    raw2, _ = _raw_face(600, (0.5, 0.4, 0.25, 0.3), kps, 2.0)
    raw2[600, 0] += 12.8
    (d2,) = decode_detections(BLAZEFACE_SHORT_RANGE, raw2[None], sc[None])  # any leading size-1 axes
    assert (d2.xmin + d2.xmax) / 2 == pytest.approx(0.6, abs=1e-6)


def test_scores_clip_threshold_and_negative_boxes():
    raw, sc = _raw_face(10, (0.2, 0.2, 0.1, 0.1), [(0.2, 0.2)] * 6, 0.0)  # sigmoid(0) = 0.5: kept (>=)
    assert len(decode_detections(BLAZEFACE_SHORT_RANGE, raw, sc)) == 1
    sc[10] = -0.01
    assert decode_detections(BLAZEFACE_SHORT_RANGE, raw, sc) == []
    sc[10] = 1e6  # clipped to 100 before the sigmoid
    (d,) = decode_detections(BLAZEFACE_SHORT_RANGE, raw, sc)
    assert d.score == pytest.approx(1.0)
    raw[10, 2] = -1.0  # negative width: dropped as MediaPipe does
    assert decode_detections(BLAZEFACE_SHORT_RANGE, raw, sc) == []


# ---------------------------------------------------------------- IoU and weighted NMS

def _box(x0, y0, x1, y1, s, kps=()):
    return Detection(x0, y0, x1, y1, s, tuple(kps))


def test_iou_golden():
    a, b = _box(0, 0, 2, 2, 1), _box(1, 0, 3, 2, 1)
    assert iou(a, b) == pytest.approx(2 / 6)
    assert iou(a, _box(2, 0, 3, 1, 1)) == 0.0  # touching
    assert iou(a, a) == 1.0
    assert iou(_box(0, 0, 0, 0, 1), _box(0, 0, 0, 0, 1)) == 0.0


def test_weighted_nms_golden():
    a = _box(0.0, 0.0, 1.0, 1.0, 0.9, [(0.2, 0.2)])
    b = _box(0.1, 0.0, 1.1, 1.0, 0.6, [(0.5, 0.4)])   # IoU(a, b) = 0.9 / 1.1 > 0.3
    c = _box(5.0, 5.0, 6.0, 6.0, 0.7, [(5.5, 5.5)])   # apart
    out = weighted_nms([b, c, a], 0.3)
    assert [d.score for d in out] == [0.9, 0.7]       # the top score is kept, not averaged
    w = 0.9 + 0.6
    m = out[0]
    assert (m.xmin, m.ymin, m.xmax, m.ymax) == pytest.approx((0.06 / w, 0.0, (0.9 + 0.66) / w, 1.0))
    assert m.keypoints[0] == pytest.approx(((0.18 + 0.3) / w, (0.18 + 0.24) / w))
    assert (out[1].xmin, out[1].xmax, out[1].keypoints[0][0]) == pytest.approx((5.0, 6.0, 5.5))  # alone: itself


def test_weighted_nms_threshold_is_strict():
    a = _box(0, 0, 2, 2, 0.9)
    b = _box(1, 0, 3, 2, 0.8)  # IoU exactly 1/3
    assert len(weighted_nms([a, b], 1 / 3)) == 2
    assert len(weighted_nms([a, b], 0.33)) == 1
    assert weighted_nms([], 0.3) == []


def test_detect_merges_neighbouring_anchors():
    raw, sc = _raw_face(600, (0.5, 0.4, 0.25, 0.3), [(0.5, 0.4)] * 6, 3.0)
    raw2, sc2 = _raw_face(601, (0.52, 0.4, 0.25, 0.3), [(0.52, 0.4)] * 6, 1.0)
    raw[601], sc[601] = raw2[601], sc2[601]
    (d,) = detect(BLAZEFACE_SHORT_RANGE, raw, sc)
    s0, s1 = 1 / (1 + math.exp(-3.0)), 1 / (1 + math.exp(-1.0))
    assert (d.xmin + d.xmax) / 2 == pytest.approx((0.5 * s0 + 0.52 * s1) / (s0 + s1), abs=1e-6)


# ---------------------------------------------------------------- landmarks

def test_decode_landmarks_golden():
    raw = np.zeros((39, 5), np.float32)
    raw[0, :3] = [128.0, 64.0, -25.6]
    raw[0, 3:] = [2.0, -2.0]
    lm = decode_landmarks(raw.reshape(1, 195), np.array([[0.8]]))
    assert lm.xyz[0].tolist() == pytest.approx([0.5, 0.25, -0.1])
    assert lm.visibility[0] == pytest.approx(1 / (1 + math.exp(-2)))
    assert lm.presence[0] == pytest.approx(1 / (1 + math.exp(2)))
    assert lm.visibility[1] == 0.5 and lm.pose_presence == pytest.approx(0.8)
    assert lm.body_xy.shape == (33, 2)
    with pytest.raises(ValueError, match="195"):
        decode_landmarks(np.zeros(190), 0.5)


def test_heatmap_refinement_golden():
    hm = np.full((64, 64, 39), -10.0, np.float32)
    hm[20, 30, 0] = 10.0                      # one confident cell for landmark 0
    hm[20, 31, 0] = 10.0                      # and its right neighbour: the mean is col 30.5
    hm[40, 10, 1] = -1.0                      # landmark 1: max sigmoid 0.27 < 0.5, not refined
    xy = np.full((39, 2), 0.5)
    xy[0] = [30.9 / 64, 21.5 / 64]            # cell (col 30, row 21): the window reaches rows 18..24
    xy[1] = [10.2 / 64, 40.2 / 64]
    xy[2] = [-0.1, 0.5]                       # outside: kept
    out = refine_from_heatmap(xy, hm)
    c_hi, c_lo = 1 / (1 + math.exp(-10)), 1 / (1 + math.exp(10))
    total = 2 * c_hi + 47 * c_lo
    exp_col = (c_hi * 61 + c_lo * (sum(range(27, 34)) * 7 - 61)) / total
    exp_row = (c_hi * 40 + c_lo * (sum(range(18, 25)) * 7 - 40)) / total
    assert out[0] == pytest.approx([exp_col / 64, exp_row / 64])
    assert out[1].tolist() == xy[1].tolist() and out[2].tolist() == xy[2].tolist()


# ---------------------------------------------------------------- recognition

def test_recognize_by_shapes():
    face = {"a": np.zeros((2, 1, 896, 16)), "b": np.zeros((2, 1, 896, 1))}
    f = recognize(face)
    assert f.kind == "detector" and f.detector is BLAZEFACE_SHORT_RANGE and (f.boxes, f.scores) == ("a", "b")
    pose = {"s": np.zeros((3, 2254)), "x": np.zeros((3, 2254, 12))}  # names and order do not matter
    f = recognize(pose)
    assert f.detector is POSE_DETECTOR and (f.boxes, f.scores) == ("x", "s")
    lm = {"Identity": np.zeros((1, 1, 195)), "Identity_1": np.zeros((1, 1, 1)),
          "Identity_2": np.zeros((1, 1, 256, 256, 1)), "Identity_3": np.zeros((1, 1, 64, 64, 39)),
          "Identity_4": np.zeros((1, 1, 117))}
    f = recognize(lm)
    assert (f.kind, f.landmarks, f.pose_flag, f.heatmap) == ("landmark", "Identity", "Identity_1", "Identity_3")
    assert recognize({"y": np.zeros((2, 10))}).kind == "unknown"
    assert recognize({"a": np.zeros((2, 896, 16)), "b": np.zeros((2, 895))}).kind == "unknown"


def _nms_reference(dets, thr):
    """Weighted NMS in plain Python, step by step as NonMaxSuppressionCalculator describes it."""
    remaining = sorted(dets, key=lambda d: -d.score)
    out = []
    while remaining:
        top = remaining[0]
        cand = [d for d in remaining if iou(d, top) > thr]
        rest = [d for d in remaining if not iou(d, top) > thr]
        if cand:
            t = sum(d.score for d in cand)
            box = [sum(getattr(d, c) * d.score for d in cand) / t for c in ("xmin", "ymin", "xmax", "ymax")]
            kp = tuple((sum(d.keypoints[k][0] * d.score for d in cand) / t,
                        sum(d.keypoints[k][1] * d.score for d in cand) / t) for k in range(len(top.keypoints)))
            top = Detection(*box, top.score, kp)
        out.append(top)
        if len(rest) == len(remaining):
            break
        remaining = rest
    return out


_coord = st.floats(0.0, 1.0, allow_nan=False)


@st.composite
def _detections(draw):
    n = draw(st.integers(0, 12))
    out = []
    for i in range(n):
        x0, y0 = draw(_coord), draw(_coord)
        w, h = draw(st.floats(0.0, 0.5)), draw(st.floats(0.0, 0.5))
        s = draw(st.floats(0.01, 1.0))
        out.append(Detection(x0, y0, x0 + w, y0 + h, s + i * 1e-6, ((x0 + w / 2, y0), (x0, y0 + h))))
    return out


@settings(max_examples=200, deadline=None)
@given(_detections(), st.sampled_from([0.0, 0.3, 0.5, 0.9]))
def test_weighted_nms_matches_plain_reference(dets, thr):
    got, want = weighted_nms(dets, thr), _nms_reference(dets, thr)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g.xmin, g.ymin, g.xmax, g.ymax, g.score) == pytest.approx((w.xmin, w.ymin, w.xmax, w.ymax, w.score))
        np.testing.assert_allclose(g.keypoints, w.keypoints, atol=1e-12)
