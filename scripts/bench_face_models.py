"""Face-model speed: frames per second of ArcFace (identity) and POSTER V2 (expression), random weights.

    python scripts/bench_face_models.py                                   # CPU, both full-size models
    python scripts/bench_face_models.py --device cuda --batch 64 --half   # GPU, fp16 weights and inputs
    python scripts/bench_face_models.py --models arcface --arch iresnet50 --threads 2

Each model runs the public entry point a feature-extraction job uses (``frame_embeddings`` on
aligned 112x112 uint8 crops; ``probabilities`` on 224x224 uint8 crops), so preprocessing is
included. ``--warmup`` untimed batches first, then ``--iters`` timed batches; reported: frames/s and
ms per frame. Weights are random (speed does not depend on them); BatchNorms run in eval mode.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.utils import resolve_device  # noqa: E402
from visual.arcface import IResNet, IResNetConfig, frame_embeddings  # noqa: E402
from visual.expression.poster_v2 import PosterV2, PosterV2Config  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="ArcFace / POSTER V2 frames per second (random weights)")
    p.add_argument("--models", nargs="+", choices=("arcface", "poster_v2"), default=["arcface", "poster_v2"])
    p.add_argument("--arch", default="iresnet100", choices=("iresnet50", "iresnet100"), help="ArcFace backbone")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--batch", type=int, default=16, help="frames per forward")
    p.add_argument("--iters", type=int, default=3, help="timed batches")
    p.add_argument("--warmup", type=int, default=1, help="untimed batches first")
    p.add_argument("--half", action="store_true", help="fp16 weights (GPU)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", help="also write the results here")
    return p.parse_args(argv)


def build(name: str, arch: str, device: torch.device, half: bool):
    if name == "arcface":
        model, size = IResNet(IResNetConfig.named(arch)), 112
        run = lambda faces: frame_embeddings(model, faces, batch_size=len(faces))  # noqa: E731
    else:
        model, size = PosterV2(PosterV2Config()), 224
        run = lambda faces: model.probabilities(faces, batch_size=len(faces))  # noqa: E731
    model.eval().requires_grad_(False).to(device)
    if half:
        model.half()
    return model, size, run


def bench(name: str, args, device: torch.device) -> dict:
    model, size, run = build(name, args.arch, device, args.half)
    faces = torch.randint(0, 256, (args.batch, size, size, 3), dtype=torch.uint8, device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(args.warmup):
        run(faces)
    sync()
    start = time.perf_counter()
    for _ in range(args.iters):
        run(faces)
    sync()
    seconds = time.perf_counter() - start
    frames = args.batch * args.iters
    return {"model": name if name != "arcface" else f"arcface-{args.arch}", "device": str(device),
            "dtype": "float16" if args.half else "float32", "batch": args.batch, "frames": frames,
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "frames_per_s": round(frames / seconds, 2), "ms_per_frame": round(1000 * seconds / frames, 2)}


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    results = []
    for name in args.models:
        row = bench(name, args, device)
        print(f"{row['model']:>18} {row['device']} {row['dtype']} batch {row['batch']}: "
              f"{row['frames_per_s']:.2f} frames/s, {row['ms_per_frame']:.2f} ms/frame ({row['params_M']} M params)")
        results.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": torch.get_num_threads(), "results": results}, indent=1))
    return results


if __name__ == "__main__":
    main()
