"""The MediaPipe models shipped in ``data/models`` (see data/README.md): one place that finds them."""

from __future__ import annotations

from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parents[1] / "data" / "models"

# file name -> value range of the model input, as in MediaPipe's graphs (and scripts/make_data.py)
SHIPPED = {
    "face_detection_short_range.tflite": (-1.0, 1.0),
    "pose_detection.tflite": (-1.0, 1.0),
    "pose_landmark_full.tflite": (0.0, 1.0),
}


def shipped_model(name: str) -> Path:
    """Path of a model shipped in ``data/models``; fails (not skips) when it is missing: it is in the repo."""
    if name not in SHIPPED:
        raise KeyError(f"{name!r} is not a shipped model; shipped: {sorted(SHIPPED)}")
    path = MODELS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: shipped model missing from the checkout (see data/README.md)")
    return path
