"""Speed of the video judges with random full-size weights: time per clip (and per frame for FID).

    python scripts/bench_video_judges.py                          # CPU, all three judges
    python scripts/bench_video_judges.py --device cuda --judges syncnet fvd --repeats 5

SyncNet: one ``--seconds`` clip of 224 x 224 face crops + 16 kHz audio through ``SyncScorer.score``
(MFCC, both towers, the 31-offset search). FID: ``--fid-frames`` 256 x 256 frames through
``FIDJudge.features`` (resize to 299, Inception-v3 pool3). FVD: ``--fvd-clips`` 16-frame 256 x 256
clips through ``FVDJudge.features`` (resize/crop to 224, I3D logits). One untimed warm-up call each,
then the median of ``--repeats`` timed calls. Random weights cost the same as the released ones.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.fid import FIDJudge  # noqa: E402
from evaluation.fvd import FVDJudge  # noqa: E402
from evaluation.i3d import InceptionI3d  # noqa: E402
from evaluation.inception import FIDInceptionV3  # noqa: E402
from evaluation.syncnet import SyncNet, SyncScorer  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Time the video judges (SyncNet LSE, FID, FVD) per clip")
    p.add_argument("--judges", nargs="+", choices=("syncnet", "fid", "fvd"), default=["syncnet", "fid", "fvd"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seconds", type=float, default=5.0, help="SyncNet clip length")
    p.add_argument("--fid-frames", type=int, default=16, help="frames per FID call")
    p.add_argument("--fvd-clips", type=int, default=2, help="16-frame clips per FVD call")
    p.add_argument("--batch-size", type=int, default=None, help="judge batch size (default: each judge's own)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", help="also write the results here")
    return p.parse_args(argv)


def timed(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    batch = {"batch_size": args.batch_size} if args.batch_size else {}
    results = {"device": str(device), "threads": torch.get_num_threads()}

    if "syncnet" in args.judges:
        frames = round(args.seconds * 25)
        faces = rng.integers(0, 256, (frames, 224, 224, 3), dtype=np.uint8)
        audio = rng.normal(0, 0.1, frames * 640).astype(np.float32)
        scorer = SyncScorer(model=SyncNet(), device=device, **batch)
        t = timed(lambda: scorer.score(faces, audio), args.repeats, device)
        results["syncnet"] = {"clip_seconds": args.seconds, "seconds_per_clip": t, "real_time_factor": t / args.seconds}
        print(f"SyncNet LSE: {t:.3f} s per {args.seconds:g} s clip (RTF {t / args.seconds:.3f})", flush=True)

    if "fid" in args.judges:
        images = rng.integers(0, 256, (args.fid_frames, 256, 256, 3), dtype=np.uint8)
        judge = FIDJudge(model=FIDInceptionV3(), device=device, **batch)
        t = timed(lambda: judge.features(images), args.repeats, device)
        results["fid"] = {"frames": args.fid_frames, "seconds_per_frame": t / args.fid_frames}
        print(f"FID Inception: {1000 * t / args.fid_frames:.1f} ms per frame ({args.fid_frames} frames a call)",
              flush=True)

    if "fvd" in args.judges:
        clips = rng.integers(0, 256, (args.fvd_clips, 16, 256, 256, 3), dtype=np.uint8)
        judge = FVDJudge(model=InceptionI3d(), device=device, **batch)
        t = timed(lambda: judge.features(clips), args.repeats, device)
        results["fvd"] = {"clips": args.fvd_clips, "seconds_per_clip": t / args.fvd_clips}
        print(f"FVD I3D: {t / args.fvd_clips:.3f} s per 16-frame clip ({args.fvd_clips} clips a call)", flush=True)

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main()
