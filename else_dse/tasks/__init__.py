"""Tasks: decode the shipped networks' outputs as MediaPipe does and measure task fidelity.

A replay (:func:`else_dse.record.replay`) gives each output tensor of a network
under a suppression plan and in the float run; :func:`fidelity` says what the
difference means: the relative L2 error of every output tensor for any model,
and for the shipped MediaPipe networks (recognized by their output shapes)
detection precision/recall/IoU/keypoint displacement or landmark error/PCK.

Modules, in pipeline order: ``anchors`` (SSD anchors), ``detection`` (box
decoding, weighted NMS), ``landmarks`` (landmark decoding, heatmap
refinement), ``roi`` (pose ROI, crops, projection), ``networks`` (the shipped
networks' options, recognition), ``metrics``, ``tensors`` (relative L2),
``fidelity``, and ``crops`` (person crops from a clip through the detector).
See docs/tasks.md for every convention.

>>> from else_dse.tasks import fidelity          # doctest: +SKIP
>>> fidelity(model, rep.outputs, rep.reference)   # doctest: +SKIP
"""

from .anchors import SsdAnchorOptions, ssd_anchors
from .crops import PersonCrop, person_crops
from .detection import Detection, DetectorSpec, detect
from .fidelity import decode_frames, fidelity
from .landmarks import Landmarks, decode_landmarks
from .metrics import detection_metrics, landmark_metrics
from .networks import BLAZEFACE_SHORT_RANGE, POSE_DETECTOR, recognize
from .roi import Rect, pose_roi
from .tensors import rel_l2

__all__ = ["fidelity", "rel_l2", "decode_frames", "recognize", "BLAZEFACE_SHORT_RANGE", "POSE_DETECTOR",
           "SsdAnchorOptions", "ssd_anchors", "Detection", "DetectorSpec", "detect", "Landmarks",
           "decode_landmarks", "Rect", "pose_roi", "PersonCrop", "person_crops", "detection_metrics",
           "landmark_metrics"]
