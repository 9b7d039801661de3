"""What the TFLite and ONNX recorders share: errors, frame checks, progress, provenance."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from .media import Preprocess

__all__ = ["RecorderError", "SegmentError", "check_float_frame", "model_frames", "provenance", "progress",
           "tf_same_padding"]


class RecorderError(ValueError):
    """A model or frame the recorder cannot handle; the message names the layer or frame."""


class SegmentError(RecorderError):
    """A frame, a consumer's array or a cut the segmented runner cannot take; the message names it."""


def tf_same_padding(n: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF/TFLite ``SAME`` padding of one axis: ``(before, after)``.

    ``pad_total = max((ceil(n/s) - 1)*s + (k-1)*d + 1 - n, 0)``, ``before = pad_total // 2``,
    ``after = pad_total - before`` (the odd pixel goes after, i.e. bottom/right).
    """
    n_out = -(-n // s)
    total = max((n_out - 1) * s + (k - 1) * d + 1 - n, 0)
    return total // 2, total - total // 2


def model_frames(frames: Iterable[Any], height: int, width: int, channels: int,
                 value_range: tuple[float, float]) -> Iterator[np.ndarray]:
    """Yield each frame as a float32 ``(height, width, channels)`` model input.

    A ``uint8`` image of any size is prepared (centre crop, resize, scaling to
    ``value_range``, see :mod:`else_dse.record.media`); a float frame must already
    have exactly the model's input shape.
    """
    prep = Preprocess(height, width, value_range)
    for i, frame in enumerate(frames):
        a = np.asarray(frame)
        if a.dtype == np.uint8:
            if channels != 3:
                raise RecorderError(f"frame {i}: uint8 images are prepared as RGB, the model input has "
                                    f"{channels} channels; pass float frames of shape {(height, width, channels)}")
            try:
                yield prep(a)
            except ValueError as exc:
                raise RecorderError(f"frame {i}: {exc}") from None
        elif np.issubdtype(a.dtype, np.floating):
            yield check_float_frame(a, (height, width, channels), f"frame {i}",
                                    " (or pass a uint8 image to have it cropped and resized)")
        else:
            raise RecorderError(f"frame {i}: dtype {a.dtype}; frames must be uint8 images or float arrays")


def check_float_frame(a: Any, hwc: tuple[int, int, int], what: str, hint: str = "") -> np.ndarray:
    """``a`` as a float32 model input of shape ``hwc``; a one-line :class:`RecorderError` otherwise."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.floating):
        raise RecorderError(f"{what}: dtype {a.dtype}; a prepared frame is a float array of shape "
                            f"(height, width, channels) = {hwc} (uint8 images: prepare them with "
                            "else_dse.record.media.Preprocess)")
    if a.shape != hwc:
        raise RecorderError(f"{what}: float frame of shape {a.shape}; the model input needs "
                            f"(height, width, channels) = {hwc}{hint}")
    if not np.isfinite(a).all():
        raise RecorderError(f"{what}: non-finite values")
    return a.astype(np.float32)


def progress(it: Iterable[Any], total: int | None, desc: str, enabled: bool) -> Iterable[Any]:
    """A tqdm progress bar over frames (``enabled=False`` returns ``it`` untouched)."""
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=total, desc=desc, unit="frame", leave=False)


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def provenance(model_path: Path, recorder: str, runtime_pkgs: tuple[str, ...], preprocessing: str,
               layer_info: dict[str, Any], unhandled: list[str]) -> dict[str, Any]:
    """Recording attrs naming the model file, its hash, package versions and preprocessing."""
    pkgs = ("else-dse", "numpy", *runtime_pkgs, "scikit-image", "av")
    return {
        "recorder": recorder,
        "model_file": model_path.name,
        "model_sha256": hashlib.sha256(model_path.read_bytes()).hexdigest(),
        "packages": json.dumps({p: _version(p) for p in pkgs}),
        "preprocessing": preprocessing,
        "layer_info": json.dumps(layer_info),
        "unhandled_ops": json.dumps(unhandled),
    }
