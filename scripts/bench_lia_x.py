"""Throughput of LIA-X motion encoding and rendering (frames/s) at full size.

    python scripts/bench_lia_x.py                       # CPU, released size (512 px), random weights
    python scripts/bench_lia_x.py --device cuda --frames 64 --chunk 16 --dtype bf16
    python scripts/bench_lia_x.py --weights lia-x.pt    # the released weights instead

Random weights cost the same time as the released ones; the full model is 3.6 GB in fp32.
"""

import argparse
import json
import logging
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, repo not installed
from avcodecs.lia_x import LIAX, LIAXConfig  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=DTYPES, default="fp32")
    parser.add_argument("--frames", type=int, default=2, help="frames to encode and to render")
    parser.add_argument("--chunk", type=int, default=2, help="frames per forward pass")
    parser.add_argument("--weights", default=None, help="lia-x.pt (default: random init)")
    parser.add_argument("--tiny", action="store_true", help="the 64 px test config (a smoke run)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes of one chunk each")
    parser.add_argument("--channels-last", action="store_true",
                        help="every 4-D weight (so every activation after the first convolution) in NHWC layout: "
                             "what cuDNN's bf16 tensor-core kernels want; no change on a CPU")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    device = torch.device(args.device)
    config = LIAXConfig(size=64, base_channels=8, max_channels=16, style_dim=64, norm_groups=4) if args.tiny \
        else LIAXConfig()
    torch.manual_seed(0)
    start = time.perf_counter()
    if args.weights:
        codec = LIAX.from_config(config, args.weights, device=device)
    else:
        with torch.device(device):  # initialise where it runs: no 3.6 GB host copy on GPU runs
            codec = LIAX(config).eval()
    codec = codec.to(DTYPES[args.dtype])
    if args.channels_last:  # .to() and load_state_dict keep a parameter's layout
        for param in codec.parameters():
            if param.dim() == 4:
                param.data = param.data.contiguous(memory_format=torch.channels_last)
    build_s = time.perf_counter() - start

    frames = torch.randint(0, 256, (args.frames, config.size, config.size, 3), dtype=torch.uint8)
    source = codec.encode_source(frames[0])
    motion = torch.randn(1, args.frames, codec.motion_dim) * 0.1
    for _ in range(args.warmup):
        codec.encode_motion(frames[:args.chunk], chunk=args.chunk)
        codec.render(source, motion[:, :args.chunk], chunk=args.chunk)

    encode_s = timed(lambda: codec.encode_motion(frames, chunk=args.chunk), device)
    render_s = timed(lambda: codec.render(source, motion, chunk=args.chunk), device)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
        "dtype": args.dtype, "channels_last": args.channels_last, "size": config.size, "frames": args.frames,
        "chunk": args.chunk,
        "build_s": round(build_s, 1),
        "encode_frames_per_s": round(args.frames / encode_s, 3),
        "render_frames_per_s": round(args.frames / render_s, 3),
        "peak_host_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    if device.type == "cuda":
        result["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
