"""AV-HuBERT lip-feature speed: video frames per second through ``AVHubertVideoEncoder.features``.

    python scripts/bench_avhubert.py --threads 2 --batch 2 --frames 75          # CPU, Large, fp32
    python scripts/bench_avhubert.py --device cuda --batch 16 --frames 250 --precision bf16

A batch of ``--batch`` clips of ``--frames`` 88x88 mouth crops (25 fps: 250 frames = 10 s) runs through
the ResNet front-end and the transformer; random weights unless ``--weights`` names a checkpoint.
``bf16`` is autocast (weights stay fp32), as the trainer runs. Prints one JSON line.
"""

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.utils import resolve_device  # noqa: E402
from visual.avhubert import AVHubertConfig, AVHubertVideoEncoder, load_avhubert  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=("large", "base", "tiny"), default="large")
    p.add_argument("--weights", default=None, help="a released checkpoint (default: random weights)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--batch", type=int, default=2, help="clips per forward")
    p.add_argument("--frames", type=int, default=75, help="frames per clip (25 fps)")
    p.add_argument("--repeats", type=int, default=3, help="timed forwards (after --warmup)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", help="also write the result here")
    return p.parse_args(argv)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    start = time.perf_counter()
    if args.weights:
        model = load_avhubert(args.weights).to(device)
    else:
        with torch.device(device):  # initialise where it runs
            model = AVHubertVideoEncoder(getattr(AVHubertConfig, args.model)()).eval()
    build_s = time.perf_counter() - start

    video = torch.randn(args.batch, args.frames, 88, 88, device=device)
    pad = torch.zeros(args.batch, args.frames, dtype=torch.bool, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def run():
        with torch.inference_mode(), autocast:
            return model.features(video, pad)

    for _ in range(args.warmup):
        run()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.repeats):
        out = run()
    sync(device)
    seconds = (time.perf_counter() - start) / args.repeats
    frames = args.batch * args.frames
    result = {
        "model": args.model if not args.weights else str(args.weights), "dim": model.dim,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
        "precision": args.precision, "batch": args.batch, "frames": args.frames, "out": list(out.shape),
        "build_s": round(build_s, 2), "forward_s": round(seconds, 3),
        "frames_per_s": round(frames / seconds, 1), "realtime_x": round(frames / seconds / 25.0, 2),
        "peak_host_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    if device.type == "cuda":
        result["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
