"""Throughput (frames/s, CPU) of the visual front-end: face detection + 68 landmarks per backend/detector,
mouth ROIs, alignment crops.

    python scripts/bench_face_tracking.py                      # 100 frames, 256 px, every backend installed
    python scripts/bench_face_tracking.py --frames 250 --size 512 --cnn-frames 5
    python scripts/bench_face_tracking.py --video clip.mp4     # a real clip instead (read at 25 fps)

The default clip is scikit-image's astronaut, moving, turning and scaling a little on a size x size canvas
(needs scikit-image). The CNN (MMOD) detector runs on the first --cnn-frames frames only: on a CPU it
costs seconds per frame. Set OMP_NUM_THREADS to fix the thread count; numbers on a shared machine vary.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, repo not installed
from visual.align import arcface_crops, expression_crops, syncnet_crops  # noqa: E402
from visual.mouth import crop_mouths  # noqa: E402
from visual.tracking import TrackerUnavailableError, build_tracker  # noqa: E402
from visual.warp import affine_grid, invert_transform, sample_bilinear, to_uint8  # noqa: E402


def astronaut_clip(frames: int, size: int) -> np.ndarray:
    """(T, size, size, 3) uint8: the astronaut's face (about 0.3 x size wide) swaying, turning and scaling."""
    from skimage import data

    image = data.astronaut()
    t = np.arange(frames)
    angle = np.deg2rad(8.0) * np.sin(2 * np.pi * t / 40)
    scale = (size / 256) * (0.82 + 0.07 * np.sin(2 * np.pi * t / 33))
    shift = np.stack([size / 2 + size / 10 * np.sin(2 * np.pi * t / 50),
                      size / 2 + size / 18 * np.cos(2 * np.pi * t / 29)], 1)
    matrix = np.zeros((frames, 3, 3))
    matrix[:, 0, 0] = matrix[:, 1, 1] = scale * np.cos(angle)
    matrix[:, 0, 1], matrix[:, 1, 0] = -scale * np.sin(angle), scale * np.sin(angle)
    matrix[:, 2, 2] = 1.0
    matrix[:, :2, 2] = shift - np.einsum("tij,j->ti", matrix[:, :2, :2], [220.0, 125.0])
    x, y = affine_grid(invert_transform(matrix), size, size)                 # (T, size, size) in the image
    source = np.broadcast_to(image, (16,) + image.shape)                     # one image for 16 frames at a time
    chunks = [sample_bilinear(source[:len(x[i:i + 16])], x[i:i + 16], y[i:i + 16]) for i in range(0, frames, 16)]
    return to_uint8(np.concatenate(chunks))


def rate(fn, frames: int, *args) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn(*args)
    return frames / (time.perf_counter() - start), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=256, help="canvas side of the generated clip (px)")
    parser.add_argument("--video", default=None, help="benchmark on this clip instead (first --frames frames)")
    parser.add_argument("--cnn-frames", type=int, default=3, help="frames for the CNN detector (0: skip)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    if args.video:
        from engine.media import read_video

        frames = read_video(args.video, fps=25).frames[:args.frames]
    else:
        frames = astronaut_clip(args.frames, args.size)
    count, height, width = frames.shape[:3]
    print(f"clip: {count} frames of {width}x{height}")
    results = {"frames": count, "width": width, "height": height, "fps": {}}

    runs = [("dlib hog, tracked between detections (default)", "dlib", {}, count),
            ("dlib hog, detect every frame (AV-HuBERT)", "dlib", {"redetect_every": 1}, count),
            ("dlib cnn (mmod), detect every frame", "dlib", {"detector": "cnn", "redetect_every": 1}, args.cnn_frames),
            ("mediapipe face mesh (video mode)", "mediapipe", {}, count)]
    track = None
    for name, backend, options, n in runs:
        if n <= 0:
            continue
        try:
            tracker = build_tracker(backend, **options)
        except TrackerUnavailableError as e:
            print(f"{name:52s} skipped: {e}")
            continue
        fps, found = rate(tracker.track, n, frames[:n], "bench")
        results["fps"][name] = round(fps, 2)
        print(f"{name:52s} {fps:8.1f} frames/s  ({found.detected.sum()}/{n} detected)")
        if track is None and n == count:
            track = found
    if track is None:
        print("no full-length track: crops not measured")
    else:
        for name, fn in [("mouth ROIs 96x96 (AV-HuBERT)", crop_mouths), ("arcface crops 112x112", arcface_crops),
                         ("expression crops 224x224", expression_crops), ("syncnet crops 224x224", syncnet_crops)]:
            fps, _ = rate(fn, count, frames, track)
            results["fps"][name] = round(fps, 2)
            print(f"{name:52s} {fps:8.1f} frames/s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
