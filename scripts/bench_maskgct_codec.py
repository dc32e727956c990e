"""Encode / decode speed of the MaskGCT acoustic codec (random weights, same compute as released).

    python scripts/bench_maskgct_codec.py                       # full size, CPU, 10 s of audio, batch 1
    python scripts/bench_maskgct_codec.py --device cuda --dtype bf16 --batch 16
    python scripts/bench_maskgct_codec.py --vocos-phase integrated   # the phase-integrating head

Reports seconds of audio processed per second of compute (x real time) and the real-time factor
(compute time / audio time) for encode (wav -> 12-level codes) and decode (codes -> wav), median
over --repeats timed runs after --warmup runs.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from avcodecs.maskgct import MaskGCTCodecConfig, build_maskgct_codec  # noqa: E402
from avcodecs.maskgct.config import VOCOS_PHASES  # noqa: E402
from avcodecs.maskgct.synthetic import synthesize_speech  # noqa: E402


def timed(fn, device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("paper", "tiny"), default="paper")
    parser.add_argument("--vocos-phase", choices=VOCOS_PHASES, default="predicted", help="the Vocos head's phase mode")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="autocast dtype on CUDA")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    cfg = (MaskGCTCodecConfig.paper if args.size == "paper" else MaskGCTCodecConfig.tiny)(vocos_phase=args.vocos_phase)
    codec = build_maskgct_codec(cfg).to(device)  # frozen: eval, no grad, weight norm folded
    num_samples = int(args.seconds * cfg.sample_rate)
    wav = torch.stack([torch.from_numpy(synthesize_speech(num_samples, cfg.sample_rate, i))
                       for i in range(args.batch)]).to(device)  # (B, N)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")

    with torch.inference_mode(), autocast:
        codes = codec.encode(wav)
        encode_s = timed(lambda: codec.encode(wav), device, args.warmup, args.repeats)
        decode_s = timed(lambda: codec.decode(codes), device, args.warmup, args.repeats)

    audio_s = args.batch * args.seconds
    threads = torch.get_num_threads() if device.type == "cpu" else None
    print(f"MaskGCT codec ({args.size}, {args.vocos_phase} phase), {device} {args.dtype}"
          + (f", {threads} thread(s)" if threads else "")
          + f", batch {args.batch} x {args.seconds:g} s, codes {tuple(codes.shape)}")
    figures = {}  # also printed as one JSON line (scripts/gpu_suite.py reads it)
    for name, seconds in (("encode", encode_s), ("decode", decode_s)):
        print(f"  {name}: {seconds:.3f} s -> {audio_s / seconds:7.1f} s of audio per s (x real time), "
              f"RTF {seconds / audio_s:.4f}")
        figures.update({f"{name}_s": seconds, f"{name}_audio_s_per_s": audio_s / seconds,
                        f"{name}_rtf": seconds / audio_s})
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
